"""Per-session quotas on what the agent may put into the journal (session API reports, OTLP
imports).

Without them one 10 MiB OTLP request becomes 100,000 journal records, and a full disk stops
every approval. Going over is recorded once (``agent.import.quota_exceeded``, with the counts);
later excess is only counted, and the totals are recorded once more when the session ends.
"""

from __future__ import annotations

import threading
from typing import Any

DEFAULT_MAX_RECORDS = 20_000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


def limits_from_config(cfg: Any | None) -> tuple[int, int]:
    """(max records, max bytes) per session and channel: ``telemetry.import_max_records`` and
    ``telemetry.import_max_bytes``, else the defaults."""
    out = []
    for key, default in (("telemetry.import_max_records", DEFAULT_MAX_RECORDS),
                         ("telemetry.import_max_bytes", DEFAULT_MAX_BYTES)):
        value = cfg.get(key) if cfg is not None else None
        out.append(default if value is None or isinstance(value, bool) else int(value))
    return out[0], out[1]


class Quota:
    """Counts one channel's records and bytes for one session; thread-safe."""

    def __init__(self, telemetry: Any, channel: str, max_records: int = DEFAULT_MAX_RECORDS,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_records < 0 or max_bytes < 0:
            raise ValueError("import quotas must not be negative")
        self.telemetry = telemetry
        self.channel = channel
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.records = 0
        self.bytes = 0
        self.refused_records = 0
        self.refused_bytes = 0
        self.exceeded: str | None = None  # which quota, once it has been exceeded
        self._lock = threading.Lock()

    def admit(self, size: int) -> bool:
        """Whether one more record of ``size`` bytes may be journaled. The first refusal
        records one ``agent.import.quota_exceeded`` event; later ones are only counted."""
        with self._lock:
            if self.exceeded is None:
                if self.records + 1 > self.max_records:
                    self.exceeded = "records"
                elif self.bytes + size > self.max_bytes:
                    self.exceeded = "bytes"
                else:
                    self.records += 1
                    self.bytes += size
                    return True
                first = True
            else:
                first = False
            self.refused_records += 1
            self.refused_bytes += size
        if first:
            self._record(final=False)
        return False

    def close(self) -> None:
        """At the session's end: the totals, once, if anything was refused."""
        if self.refused_records:
            self._record(final=True)

    def _record(self, *, final: bool) -> None:
        from corral.telemetry.schema import ImportQuotaExceeded

        with self._lock:
            body = ImportQuotaExceeded(
                channel=self.channel, quota=self.exceeded or "records", records=self.records,
                record_bytes=self.bytes, refused_records=self.refused_records,
                refused_bytes=self.refused_bytes, max_records=self.max_records,
                max_bytes=self.max_bytes, final=True if final else None)
        self.telemetry.emit_event(body)
