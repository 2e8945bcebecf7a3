"""Journal rows to the wire (docs/server.md, "Forwarding wire contract").

Rows are read straight from the journal's SQLite file: the stored ``body`` is already the
record's canonical JSON, exactly the bytes the chain hashes, so nothing is re-encoded and the
server can recompute the machine's chain. Checkpoints travel after the records they cover.
"""

from __future__ import annotations

import gzip
import os
import sqlite3
from pathlib import Path

from corral.forward.cursor import Cursor
from corral.record import Frozen
from corral.telemetry.journal import GENESIS, Checkpoint, connect

SCOPE_NAME = "corral.forward"
CHECKPOINT = "agent.journal.checkpoint"
MAX_BATCH = 512


class Source(Frozen):
    """What identifies this machine's journal to the server. ``device_id``: the enrolled
    device (corral enroll); the journal id until then."""

    _fields = ("journal_id", "public_key", "host", "corral_version", "device_id")
    journal_id: str
    public_key: str
    host: str
    corral_version: str
    device_id: str

    def __init__(self, journal_id: str, public_key: str, host: str, corral_version: str,
                 device_id: str = "") -> None:
        self._set(journal_id=journal_id, public_key=public_key, host=host,
                  corral_version=corral_version, device_id=device_id)


class Batch(Frozen):
    """One request's worth of records (``body``: an ExportLogsServiceRequest, serialized), and
    the cursor to store once it is acknowledged."""

    _fields = ("records", "checkpoints", "body", "after")
    records: int
    checkpoints: int
    body: bytes
    after: Cursor

    def __init__(self, records: int, checkpoints: int, body: bytes, after: Cursor) -> None:
        self._set(records=records, checkpoints=checkpoints, body=body, after=after)


def journal_id(conn: sqlite3.Connection) -> str | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='journal_id'").fetchone()
    except sqlite3.OperationalError:  # no tables yet: nothing recorded
        return None
    return str(row[0]) if row else None


def open_journal(path: Path) -> sqlite3.Connection:
    return connect(path, readonly=True)


def hash_at(conn: sqlite3.Connection, seq: int) -> str | None:
    """The chain hash after record ``seq`` (genesis for 0); None when there is no such record."""
    if seq == 0:
        return GENESIS
    row = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
    return str(row[0]) if row else None


def next_batch(conn: sqlite3.Connection, cur: Cursor, src: Source,
               limit: int = MAX_BATCH) -> Batch | None:
    """The records after ``cur`` (at most ``limit``, checkpoints included), in journal order;
    None when the server already has everything."""
    conn.execute("BEGIN")  # one snapshot for records and checkpoints
    try:
        rows = conn.execute(
            "SELECT seq, id, name, time_unix_nano, body, hash FROM events WHERE seq > ? "
            "ORDER BY seq LIMIT ?", (cur.seq, limit)).fetchall()
        last = rows[-1][0] if rows else cur.seq
        cps = conn.execute(
            "SELECT seq, head_hash, prev_checkpoint, time_unix_nano, public_key, signature "
            "FROM checkpoints WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (cur.checkpoint_seq, last, limit)).fetchall()
    finally:
        conn.execute("COMMIT")
    if not rows and not cps:
        return None
    out: list[bytes] = []
    prev = cur.hash
    seq, cp_seq, n_rec, n_cp = cur.seq, cur.checkpoint_seq, 0, 0
    ci = 0
    for r_seq, eid, name, t_ns, body, h in rows:
        while ci < len(cps) and cps[ci][0] <= seq and len(out) < limit:
            out.append(_checkpoint(src, cps[ci]))
            cp_seq, n_cp, ci = cps[ci][0], n_cp + 1, ci + 1
        if len(out) >= limit:
            break
        raw = body if isinstance(body, bytes) else str(body).encode()
        out.append(_record(t_ns, name, raw, eid, r_seq, h, prev))
        prev, seq, n_rec = h, r_seq, n_rec + 1
    while ci < len(cps) and cps[ci][0] <= seq and len(out) < limit:
        out.append(_checkpoint(src, cps[ci]))
        cp_seq, n_cp, ci = cps[ci][0], n_cp + 1, ci + 1
    resource = b"".join(_field(1, _kv(k, v)) for k, v in (
        ("service.name", "corral"), ("service.version", src.corral_version),
        ("host.name", src.host), ("corral.device.id", src.device_id or src.journal_id),
        ("corral.journal.id", src.journal_id), ("corral.journal.public_key", src.public_key)))
    scope_logs = _field(1, _field(1, SCOPE_NAME.encode())) + b"".join(out)
    resource_logs = _field(1, resource) + _field(2, scope_logs)
    return Batch(n_rec, n_cp, _field(1, resource_logs),
                 Cursor(cur.journal_id, seq, prev, cp_seq))


# -- protobuf wire format, by hand ------------------------------------------------------------
# Building 512 LogRecords through the protobuf runtime costs ~55 us a record, three times the
# whole budget of the forwarder (20,000 records/s); these few message shapes are encoded
# directly (tests/forward/test_wire.py checks every byte against the runtime's parse).

def _varint(n: int) -> bytes:
    if n < _SMALL_N:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _varint_slow(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL_N = 1 << 14  # every length up to 16 KiB in one lookup
_SMALL = [_varint_slow(n) for n in range(_SMALL_N)]


def _field(num: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, messages)."""
    n = len(payload)
    return _SMALL[num << 3 | 2] + (_SMALL[n] if n < _SMALL_N else _varint(n)) + payload


def _kv(key: str, value: str | int) -> bytes:
    """A KeyValue: key, and an AnyValue with string_value (1) or int_value (3)."""
    if isinstance(value, int):
        any_value = b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    else:
        any_value = _field(1, value.encode())
    return _field(1, key.encode()) + _field(2, any_value)


def _log_record(t_ns: int, name: str, body: bytes | None, attrs: bytes) -> bytes:
    """A LogRecord inside ScopeLogs.log_records (field 2): time_unix_nano (1, fixed64), body
    (5), attributes (6), event_name (12)."""
    rec = b"\x09" + (t_ns & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
    if body is not None:
        rec += _field(5, _field(1, body))
    rec += attrs + _field(12, name.encode())
    return _field(2, rec)


_PREFIXES: dict[tuple[str, int], bytes] = {}


def _str_attr(key: str, value: bytes) -> bytes:
    """``attributes`` field (6) holding KeyValue(key, AnyValue(string_value=value)). Its bytes
    before the value depend only on (key, len(value)): cached, so a record costs a few
    concatenations (ids and hashes have fixed lengths)."""
    prefix = _PREFIXES.get((key, len(value)))
    if prefix is None:
        whole = _field(6, _kv(key, value.decode()))
        prefix = whole[:len(whole) - len(value)]
        if len(_PREFIXES) > 4096:
            _PREFIXES.clear()
        _PREFIXES[(key, len(value))] = prefix
    return prefix + value


_SEQ_KEY = _field(1, b"corral.journal.seq") + b"\x12"


def _record(t_ns: int, name: str, body: bytes, eid: str, seq: int, h: str, prev: str) -> bytes:
    bname = name.encode()
    any_seq = b"\x18" + _varint(seq)  # AnyValue.int_value (seq > 0)
    seq_kv = _SEQ_KEY + _SMALL[len(any_seq)] + any_seq
    rec = b"".join((
        b"\x09", (t_ns & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little"), _field(5, _field(1, body)),
        _str_attr("event.name", bname), _str_attr("event.id", eid.encode()),
        b"\x32", _SMALL[len(seq_kv)], seq_kv,
        _str_attr("corral.journal.hash", h.encode()),
        _str_attr("corral.journal.prev_hash", prev.encode()), _field(12, bname)))
    return _field(2, rec)


def _checkpoint(src: Source, row: tuple[int, str, int, int, str, str]) -> bytes:
    cp = Checkpoint(src.journal_id, *row)
    attrs: dict[str, str | int] = {"event.name": CHECKPOINT,
                                   "event.id": f"cp-{src.journal_id}-{cp.seq}",
                                   **cp.attributes()}
    return _log_record(cp.time_unix_nano, CHECKPOINT, None,
                       b"".join(_field(6, _kv(k, v)) for k, v in attrs.items()))


def gzipped(body: bytes) -> bytes:
    """Level 1: the wire is loopback or LAN; level 6 costs 3x the CPU for ~15% less."""
    return gzip.compress(body, compresslevel=1, mtime=0)


def hostname() -> str:
    """``socket.gethostname()`` (the kernel's node name) without importing socket."""
    return os.uname().nodename


# -- the acknowledgement, read by hand --------------------------------------------------------
# ExportLogsServiceResponse { ExportLogsPartialSuccess partial_success = 1 }, and inside it
# { int64 rejected_log_records = 1; string error_message = 2 }. Importing the protobuf runtime
# to read these two fields cost `corral exec` ~70 ms of CPU per forwarded session
# (tests/forward/test_ack.py checks the reader against the runtime's parse).

def _read_varint(data: bytes, i: int, most: int = 10) -> tuple[int, int]:
    """A varint of at most ``most`` bytes: the runtime reads values in up to 10, and field keys
    and lengths (32-bit) in up to 5."""
    value = shift = 0
    while True:
        if i >= len(data) or shift >= 7 * most:
            raise ValueError("truncated or overlong varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value & 0xFFFFFFFFFFFFFFFF, i
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field; unknown types are a ValueError."""
    out: list[tuple[int, int, int | bytes]] = []
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i, 5)
        if key > 0xFFFFFFFF:
            raise ValueError("field key past 32 bits")
        num, kind = key >> 3, key & 7
        if num == 0:
            raise ValueError("field number 0")
        value: int | bytes
        if kind == 0:
            value, i = _read_varint(data, i)
        elif kind == 2:
            n, i = _read_varint(data, i, 5)
            if n > len(data) - i:
                raise ValueError("length past the end")
            value, i = data[i:i + n], i + n
        elif kind in (1, 5):
            n = 8 if kind == 1 else 4
            if n > len(data) - i:
                raise ValueError("fixed field past the end")
            value, i = int.from_bytes(data[i:i + n], "little"), i + n
        else:
            raise ValueError(f"wire type {kind}")
        out.append((num, kind, value))
    return out


def read_export_response(data: bytes) -> tuple[int, str]:
    """(rejected_log_records, error_message) of an OTLP ExportLogsServiceResponse; ValueError
    when it is not one (the protobuf runtime's rules: last value wins, messages merge)."""
    partial = b""
    for num, kind, value in _fields(data):
        if num == 1:
            if kind != 2:
                raise ValueError("partial_success is not a message")
            assert isinstance(value, bytes)
            partial += value  # repeated occurrences of a message field merge
    rejected, message = 0, ""
    for num, kind, value in _fields(partial):
        if num == 1:
            if kind != 0:
                raise ValueError("rejected_log_records is not a varint")
            assert isinstance(value, int)
            rejected = value - (1 << 64) if value >= 1 << 63 else value
        elif num == 2:
            if kind != 2:
                raise ValueError("error_message is not a string")
            assert isinstance(value, bytes)
            message = value.decode("utf-8")  # UnicodeDecodeError is a ValueError
    return rejected, message
