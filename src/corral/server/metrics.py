"""In-process counters rendered in the Prometheus text format for ``GET /metrics``.

Each server process counts what it ingested itself; a fleet sums the replicas (the usual
Prometheus way). Store size and log size are read from the store at scrape time.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

_MAX_DEVICES = 10_000


class Metrics:
    def __init__(self) -> None:
        self.started = time.time()
        self.events = 0
        self.duplicates = 0
        self.flagged = 0
        self.requests = 0
        self.rejects: Counter[str] = Counter()
        # device -> (newest event time ns, when received ns)
        self.devices: dict[str, tuple[int, int]] = {}
        self._window: list[tuple[float, int]] = []

    def stored(self, res: Any) -> None:
        self.events += res.stored
        self.duplicates += res.duplicates
        self.flagged += res.flagged
        now = time.time()
        self._window.append((now, res.stored))
        while self._window and self._window[0][0] < now - 60:
            self._window.pop(0)

    def ingested(self, decoded: Any) -> None:
        self.requests += 1
        now = time.time_ns()
        for dev, t in decoded.devices.items():
            if dev in self.devices or len(self.devices) < _MAX_DEVICES:
                prev = self.devices.get(dev, (0, 0))[0]
                self.devices[dev] = (max(prev, t), now)

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejects[reason] += n

    def rate(self) -> float:
        now = time.time()
        recent = [(t, n) for t, n in self._window if t >= now - 60]
        if not recent:
            return 0.0
        span = max(1.0, min(60.0, now - self.started))
        return sum(n for _, n in recent) / span

    def render(self, log_size: int, store_bytes: int, queued: int) -> str:
        out = [
            "# HELP corral_server_events_ingested_total Events stored by this process.",
            "# TYPE corral_server_events_ingested_total counter",
            f"corral_server_events_ingested_total {self.events}",
            "# HELP corral_server_events_duplicate_total Events acknowledged as already stored.",
            "# TYPE corral_server_events_duplicate_total counter",
            f"corral_server_events_duplicate_total {self.duplicates}",
            "# HELP corral_server_events_flagged_total Events stored with an integrity flag.",
            "# TYPE corral_server_events_flagged_total counter",
            f"corral_server_events_flagged_total {self.flagged}",
            "# HELP corral_server_ingest_rate Events stored per second, last minute.",
            "# TYPE corral_server_ingest_rate gauge",
            f"corral_server_ingest_rate {self.rate():.1f}",
            "# HELP corral_server_rejects_total Refused requests and records, by reason.",
            "# TYPE corral_server_rejects_total counter",
        ]
        for reason, n in sorted(self.rejects.items()):
            out.append(f'corral_server_rejects_total{{reason="{_label(reason)}"}} {n}')
        out += [
            "# HELP corral_server_forward_lag_seconds Receive time minus the newest event "
            "time, per device.",
            "# TYPE corral_server_forward_lag_seconds gauge",
        ]
        for dev, (t, recv) in sorted(self.devices.items()):
            lag = max(0.0, (recv - t) / 1e9) if t else 0.0
            out.append(f'corral_server_forward_lag_seconds{{device="{_label(dev)}"}} {lag:.3f}')
        out += [
            "# HELP corral_server_log_size Events in the log (tree size).",
            "# TYPE corral_server_log_size gauge",
            f"corral_server_log_size {log_size}",
            "# HELP corral_server_store_bytes Bytes the store takes on disk.",
            "# TYPE corral_server_store_bytes gauge",
            f"corral_server_store_bytes {store_bytes}",
            "# HELP corral_server_queued_events Events waiting for the writer.",
            "# TYPE corral_server_queued_events gauge",
            f"corral_server_queued_events {queued}",
        ]
        return "\n".join(out) + "\n"


def _label(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")[:200]
