"""The forwarder: ships the journal to ``corral server`` from a persisted cursor.

The journal is the buffer, so nothing is held in memory that is not also on disk: each step
reads the next batch after the cursor, POSTs it, and moves the cursor only when the server
acknowledged every record of it (HTTP 200 without rejected records). A crash between the POST
and the cursor update re-sends that batch; the server de-duplicates by event id. Retryable
failures (connection errors, 408/429/5xx) back off exponentially with jitter and honour
``Retry-After``; refusals (400/401/403/413, rejected records) stop with one line.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corral.forward import cursor as cursors
from corral.forward.settings import ForwardError, ServerSettings
from corral.forward.wire import (
    MAX_BATCH,
    Batch,
    Source,
    gzipped,
    hash_at,
    hostname,
    journal_id,
    next_batch,
    open_journal,
    read_export_response,
)
from corral.record import Record

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER = 600.0
# The cursor is renamed into place after every acknowledgement (atomic against kill -9) but
# fsynced at most this often: a power cut can then only move it back, which re-sends.
SYNC_SECONDS = 1.0
MAX_RESPONSE = 1 << 20  # an acknowledgement is a few bytes; never buffer a hostile server's


class Retryable(Exception):
    """The server could not take the batch now; try again after ``retry_after`` at least."""

    def __init__(self, reason: str, retry_after: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Stats(Record):
    """What a catch-up sent; ``seq``: the acknowledged journal seq at the end."""

    _fields = ("records", "checkpoints", "batches", "retries", "seq")

    def __init__(self, records: int = 0, checkpoints: int = 0, batches: int = 0,
                 retries: int = 0, seq: int = 0) -> None:
        self.records = records
        self.checkpoints = checkpoints
        self.batches = batches
        self.retries = retries
        self.seq = seq


class Backoff:
    """Exponential backoff with "equal jitter": half the step fixed, half random, capped."""

    def __init__(self, base: float = 0.25, cap: float = 30.0,
                 rng: random.Random | None = None) -> None:
        self.base, self.cap, self.attempt = base, cap, 0
        self._rng = rng or random.Random()

    def next(self, retry_after: float = 0.0) -> float:
        step = min(self.cap, self.base * (2 ** self.attempt))
        self.attempt += 1
        jittered: float = step / 2 + self._rng.uniform(0, step / 2)
        return max(jittered, retry_after)

    def reset(self) -> None:
        self.attempt = 0


def _corral_version() -> str:
    from corral import __version__  # not importlib.metadata: ~85 ms of CPU per session

    return __version__


def _printable(text: str, limit: int = 200) -> str:
    """A server's words, made safe for one terminal line."""
    text = " ".join(text.split())
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]


def retry_after_seconds(value: str | None, now: float | None = None) -> float:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; 0 when absent or garbage."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return min(float(value), _MAX_RETRY_AFTER)
    try:
        import email.utils  # an HTTP-date Retry-After only: rare

        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0.0
    return max(0.0, min(when - (now if now is not None else time.time()), _MAX_RETRY_AFTER))


class _Post(threading.Thread):
    """One POST on a daemon thread (a pool's worker would hold up interpreter exit for as long
    as a hanging server keeps the request open)."""

    def __init__(self, post: Callable[[bytes, int], None], body: bytes, count: int) -> None:
        super().__init__(name="corral-forward-post", daemon=True)
        self._args = (post, body, count)
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        post, body, count = self._args
        try:
            post(body, count)
        except BaseException as exc:
            self._error = exc

    def result(self) -> None:
        self.join()
        if self._error is not None:
            raise self._error


def device_id(home: Path, url: str) -> str:
    """The enrolled device's id when ``url`` is the server this machine enrolled with (its
    ingest token is bound to that id); "" otherwise (the journal id stands in)."""
    from corral.config.enrolment import read_enrolment
    from corral.errors import CorralError

    try:
        enr = read_enrolment(home)
    except CorralError:
        return ""
    return enr.device_id if enr is not None and enr.server == url else ""


class Forwarder:
    """Forwards one journal to one server. Not thread-safe: one forwarder per thread (several
    forwarders on one journal are safe; they share the cursor without moving it back)."""

    def __init__(self, settings: ServerSettings, journal_path: Path, *,
                 batch_size: int = MAX_BATCH, timeout: float = 10.0,
                 home: Path | None = None, tls: Any = None) -> None:
        """``tls``: the TLS context for ``settings`` made beforehand (``trust.tls_for``);
        made on the first POST otherwise."""
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}")
        self.settings = settings
        self.journal_path = journal_path
        self.home = home or journal_path.parent.parent
        self.batch_size = batch_size
        self.timeout = timeout
        self.cursor_path = cursors.cursor_file(journal_path, settings.url)
        self._conn: sqlite3.Connection | None = None
        self._source: Source | None = None
        self._client: Any = None
        self._tls = tls
        self._synced = 0.0
        self._unsynced = False
        self._next: tuple[cursors.Cursor, Batch, bytes] | None = None

    # -- one step --------------------------------------------------------------------------

    def _open(self) -> tuple[sqlite3.Connection, Source] | None:
        if self._conn is None:
            if not self.journal_path.exists():
                return None
            conn = open_journal(self.journal_path)
            jid = journal_id(conn)
            if jid is None:
                conn.close()
                return None
            from corral.telemetry.keys import load_public_key, public_hex

            pub = load_public_key(self.home)
            self._conn = conn
            self._source = Source(jid, public_hex(pub) if pub else "", hostname(),
                                  _corral_version(), device_id(self.home, self.settings.url))
        assert self._source is not None
        return self._conn, self._source

    def position(self) -> cursors.Cursor | None:
        """The acknowledged position, checked against the journal (None: no journal yet). A
        cursor the journal no longer agrees with is moved back to the start, never skipped."""
        opened = self._open()
        if opened is None:
            return None
        conn, src = opened
        cur = cursors.load(self.cursor_path, src.journal_id)
        if hash_at(conn, cur.seq) != cur.hash:
            cur = cursors.save(self.cursor_path, cursors.Cursor(src.journal_id), self.settings.url,
                               force=True)
        return cur

    def lag(self) -> tuple[int, int]:
        """(acknowledged seq, journal head seq)."""
        cur = self.position()
        if cur is None or self._conn is None:
            return 0, 0
        row = self._conn.execute("SELECT MAX(seq) FROM events").fetchone()
        return cur.seq, int(row[0] or 0)

    def step(self) -> tuple[int, int]:
        """Send the next batch; (records, checkpoints) acknowledged, (0, 0) when caught up.
        Raises ``Retryable`` or ``ForwardError``.

        While the server works on this batch the next one is read and encoded (one request in
        flight, never more): it is used only if the cursor is then exactly where it starts."""
        cur = self.position()
        if cur is None:
            return 0, 0
        conn, src = self._conn, self._source
        assert conn is not None and src is not None
        ready, self._next = self._next, None
        if ready is not None and ready[0] == cur:
            batch, body = ready[1], ready[2]
        else:
            fresh = next_batch(conn, cur, src, self.batch_size)
            if fresh is None:
                return 0, 0
            batch, body = fresh, gzipped(fresh.body)
        sent = _Post(self._post, body, batch.records + batch.checkpoints)
        try:
            nxt = next_batch(conn, batch.after, src, self.batch_size)
            if nxt is not None:
                self._next = (batch.after, nxt, gzipped(nxt.body))
        finally:
            sent.result()  # raises what the post raised
        now = time.monotonic()
        durable = now - self._synced >= SYNC_SECONDS
        cursors.save(self.cursor_path, batch.after, self.settings.url, durable=durable)
        if durable:
            self._synced = now
        else:
            self._unsynced = True
        return batch.records, batch.checkpoints

    def sync(self) -> None:
        """fsync the cursor if a save since the last one was not durable."""
        if self._unsynced:
            cursors.sync(self.cursor_path)
            self._unsynced = False
            self._synced = time.monotonic()

    def _http(self) -> Any:
        if self._client is None:
            import ssl

            from corral.forward.transport import Connection, ProxyRefused
            from corral.forward.trust import tls_for

            try:
                tls = self._tls or tls_for(self.settings.logs_url, self.settings.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ForwardError("forward", f"server.ca_file {self.settings.ca_file!r} is "
                                   f"unusable: {exc}") from exc
            try:
                self._client = Connection(
                    self.settings.logs_url, tls,
                    {"Authorization": f"Bearer {self.settings.token}",
                     "Content-Type": "application/x-protobuf", "Content-Encoding": "gzip",
                     "User-Agent": f"corral-forward/{_corral_version()}"},
                    connect_timeout=min(5.0, self.timeout), read_timeout=self.timeout)
            except ProxyRefused as exc:
                raise ForwardError("forward", str(exc), hint="set HTTPS_PROXY to an http:// "
                                   "proxy, or NO_PROXY to the server's host") from exc
        return self._client

    def _post(self, body: bytes, count: int) -> None:
        from corral.forward.transport import TransportError

        try:
            status, headers, data = self._http().post(body, MAX_RESPONSE)
        except TransportError as exc:
            what = "answered with broken HTTP" if exc.broken else "unreachable"
            raise Retryable(f"server {self.settings.url} {what}: "
                            f"{_printable(str(exc)) or type(exc).__name__}") from exc
        if status == 200:
            self._check_ack(bytes(data), headers.get("content-type", ""), count)
            return
        text = _printable(bytes(data[:4096]).decode("utf-8", "replace"))
        why = f"HTTP {status}: {text}" if text else f"HTTP {status}"
        if status in _RETRY_STATUS:
            raise Retryable(f"server busy or failing ({why})",
                            retry_after_seconds(headers.get("retry-after")))
        if status in (401, 403):
            raise ForwardError("forward", f"server {self.settings.url} refused the token "
                               f"({why})",
                               hint="corral login --server URL, or set CORRAL_SERVER_TOKEN")
        if status == 413:
            raise ForwardError("forward", f"server {self.settings.url} refused a batch of "
                               f"{count} records as too large (HTTP 413)")
        raise ForwardError("forward", f"server {self.settings.url} refused the batch ({why})")

    def _check_ack(self, data: bytes, ctype: str, count: int) -> None:
        """HTTP 200 is an acknowledgement only as an OTLP response without rejected records
        (a 200 from something else, a captive portal or a wrong URL, is not one)."""
        kind = ctype.split(";")[0].strip().lower()
        if kind not in ("application/x-protobuf", "application/json"):
            raise ForwardError("forward", f"server {self.settings.url} answered 200 without an "
                               f"OTLP acknowledgement (Content-Type {_printable(ctype, 60)!r})",
                               hint="is server.url the corral server?")
        if len(data) > MAX_RESPONSE:
            raise Retryable(f"server {self.settings.url} sent an acknowledgement over "
                            f"{MAX_RESPONSE} bytes")
        rejected, message = 0, ""
        try:
            if kind == "application/json":
                doc = json.loads(data) if data.strip() else {}
                ps = (doc.get("partialSuccess") or doc.get("partial_success") or {}) \
                    if isinstance(doc, dict) else None
                if not isinstance(ps, dict):
                    raise ValueError("not an ExportLogsServiceResponse")
                rejected = int(ps.get("rejectedLogRecords") or ps.get("rejected_log_records")
                               or 0)
                message = str(ps.get("errorMessage") or ps.get("error_message") or "")
            else:
                rejected, message = read_export_response(data)
        except Exception as exc:
            raise Retryable(f"server {self.settings.url} sent an unreadable acknowledgement: "
                            f"{_printable(str(exc))}") from exc
        if rejected:
            raise ForwardError("forward", f"server {self.settings.url} rejected {rejected} of "
                               f"{count} records ({_printable(message) or 'no reason given'}); "
                               "the cursor stays before them")

    # -- catching up -----------------------------------------------------------------------

    def catch_up(self, retry_for: float = 30.0, stop: threading.Event | None = None,
                 backoff: Backoff | None = None) -> Stats:
        """Forward until everything in the journal is acknowledged. Retries for at most
        ``retry_for`` seconds in a row without progress, then raises ``ForwardError``."""
        stats = Stats()
        backoff = backoff or Backoff()
        give_up = time.monotonic() + retry_for
        while stop is None or not stop.is_set():
            try:
                recs, cps = self.step()
            except Retryable as exc:
                wait = backoff.next(exc.retry_after)
                if time.monotonic() + wait > give_up:
                    raise ForwardError("forward", f"{exc.reason}; gave up after "
                                       f"{backoff.attempt} attempts", hint="the journal keeps "
                                       "everything: run `corral forward` again later") from exc
                stats.retries += 1
                if stop is not None:
                    stop.wait(wait)
                else:
                    time.sleep(wait)
                continue
            if not recs and not cps:
                break
            backoff.reset()
            give_up = time.monotonic() + retry_for
            stats.records += recs
            stats.checkpoints += cps
            stats.batches += 1
        self.sync()
        cur = self.position()
        stats.seq = cur.seq if cur else 0
        return stats

    def close(self) -> None:
        self.sync()
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
