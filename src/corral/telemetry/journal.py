"""The journal: an append-only SQLite file (WAL) of events, hash-chained and checkpointed.

Record hash = sha256(prev_hash_hex || canonical_json), canonical JSON = sorted keys, no
whitespace, UTF-8. The first record chains from 64 zeros. Every ``checkpoint_every`` records (and
when a session closes) a checkpoint signs (journal id, seq, head hash, previous checkpoint seq)
with Ed25519, so a rewrite behind a checkpoint, or a truncation past it, is detectable even by
someone who recomputed the whole chain.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from corral.record import Frozen, Record
from corral.telemetry.keys import public_hex
from corral.telemetry.schema import Event
from corral.telemetry.sha import sha256_hex

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:  # cryptography is imported where a key is used (ms per corral exec)
    from typing import Any

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from corral.telemetry.keys import SigningKey

GENESIS = "0" * 64
DEFAULT_CHECKPOINT_EVERY = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    name TEXT NOT NULL,
    time_unix_nano INTEGER NOT NULL,
    body BLOB NOT NULL,
    hash TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS events_session ON events(session_id, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY,
    head_hash TEXT NOT NULL,
    prev_checkpoint INTEGER NOT NULL,
    time_unix_nano INTEGER NOT NULL,
    public_key TEXT NOT NULL,
    signature TEXT NOT NULL
) STRICT;
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
"""


def canonical(record: dict[str, Any]) -> bytes:
    """Canonical JSON bytes of a record: what the chain hashes and what is stored."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return text.encode("utf-8", "backslashreplace")


def chain_hash(prev_hex: str, body: bytes) -> str:
    return sha256_hex(prev_hex.encode("ascii") + body)


def checkpoint_message(journal_id: str, seq: int, head: str, prev_cp: int, t_ns: int) -> bytes:
    return f"corral-journal-checkpoint/v1\n{journal_id}\n{seq}\n{head}\n{prev_cp}\n{t_ns}\n".encode()


class Checkpoint(Frozen):
    """A signed checkpoint, as exported off the machine (``agent.journal.checkpoint``)."""

    _fields = ("journal_id", "seq", "head_hash", "prev_checkpoint", "time_unix_nano",
               "public_key", "signature")
    journal_id: str
    seq: int
    head_hash: str
    prev_checkpoint: int
    time_unix_nano: int
    public_key: str
    signature: str

    def __init__(self, journal_id: str, seq: int, head_hash: str, prev_checkpoint: int,
                 time_unix_nano: int, public_key: str, signature: str) -> None:
        self._set(journal_id=journal_id, seq=seq, head_hash=head_hash,
                  prev_checkpoint=prev_checkpoint, time_unix_nano=time_unix_nano,
                  public_key=public_key, signature=signature)

    def attributes(self) -> dict[str, str | int]:
        return {
            "corral.journal.id": self.journal_id, "corral.journal.checkpoint.seq": self.seq,
            "corral.journal.checkpoint.head_hash": self.head_hash,
            "corral.journal.checkpoint.prev_seq": self.prev_checkpoint,
            "corral.journal.checkpoint.time_unix_nano": self.time_unix_nano,
            "corral.journal.checkpoint.public_key": self.public_key,
            "corral.journal.checkpoint.signature": self.signature,
        }


class Problem(Frozen):
    """One integrity problem: where (seq, event id when known) and what."""

    _fields = ("seq", "event_id", "message")
    seq: int | None
    event_id: str | None
    message: str

    def __init__(self, seq: int | None, event_id: str | None, message: str) -> None:
        self._set(seq=seq, event_id=event_id, message=message)

    def line(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "journal"
        if self.event_id:
            where += f" (event {self.event_id})"
        return f"{where}: {self.message}"


class VerifyResult(Record):
    __slots__ = _fields = ("ok", "records", "checkpoints", "last_seq", "last_checkpoint_seq",
                           "problems")

    def __init__(self, ok: bool, records: int = 0, checkpoints: int = 0, last_seq: int = 0,
                 last_checkpoint_seq: int = 0, problems: list[Problem] | None = None) -> None:
        self.ok = ok
        self.records = records
        self.checkpoints = checkpoints
        self.last_seq = last_seq
        self.last_checkpoint_seq = last_checkpoint_seq
        self.problems: list[Problem] = [] if problems is None else problems


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


class JournalWriter:
    """Appends batches of events. Safe for several processes on one file: each batch reads the
    chain head inside a ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, path: Path, key: Ed25519PrivateKey | SigningKey,
                 checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY) -> None:
        self.path = path
        self._key = key
        self._pub_hex: str | None = None
        self.checkpoint_every = checkpoint_every
        self._conn = connect(path)
        with contextlib.suppress(OSError):  # best effort: never readable by other users
            os.chmod(path.parent, 0o700)
        self._conn.executescript(_SCHEMA)
        row = self._conn.execute("SELECT value FROM meta WHERE key='journal_id'").fetchone()
        if row is None:  # a new journal
            import uuid

            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('journal_id', ?)",
                               (str(uuid.uuid4()),))
            row = self._conn.execute(
                "SELECT value FROM meta WHERE key='journal_id'").fetchone()
        self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', '1')")
        self.journal_id = str(row[0])
        self._pending: list[Checkpoint] = []
        self.signed: list[Checkpoint] = []  # committed since last read; for off-box export

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: on any failure nothing of it stays (the rows are rolled back
        and its checkpoints are forgotten); on success its checkpoints become ``signed``."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            self._pending.clear()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.signed.extend(self._pending)
        self._pending.clear()

    def append(self, events: Sequence[Event]) -> list[int]:
        """Write events as one transaction; returns their seqs. Raises sqlite3.Error on failure
        (full disk, read-only file), leaving the journal as it was."""
        with self._transaction() as conn:
            seq, prev = self._head()
            last_cp = self._last_checkpoint()
            every = self.checkpoint_every
            rows = []
            seqs = []
            cps = []
            for ev in events:
                seq += 1
                body = canonical(ev.to_record(seq))
                prev = chain_hash(prev, body)
                rows.append((seq, ev.id, ev.session_id, ev.name, ev.time_unix_nano, body, prev))
                seqs.append(seq)
                if seq - last_cp >= every:
                    cps.append((seq, prev, last_cp))
                    last_cp = seq
            conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?)", rows)
            for cp in cps:
                self._insert_checkpoint(*cp)
        return seqs

    def checkpoint(self) -> int | None:
        """Sign the current head unless it is already checkpointed. Returns the seq signed."""
        with self._transaction():
            seq, head = self._head()
            last_cp = self._last_checkpoint()
            signed = None
            if seq > last_cp:
                self._insert_checkpoint(seq, head, last_cp)
                signed = seq
        return signed

    def close(self) -> None:
        self._conn.close()

    def _head(self) -> tuple[int, str]:
        row = self._conn.execute(
            "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, GENESIS) if row is None else (int(row[0]), str(row[1]))

    def _last_checkpoint(self) -> int:
        row = self._conn.execute("SELECT MAX(seq) FROM checkpoints").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def prepare_signing(self) -> None:
        """Make the key object now (``keys.SigningKey`` imports cryptography on first use), so
        that the checkpoint at close does not wait for it. A failure shows at that checkpoint."""
        with contextlib.suppress(Exception):
            _ = self._pub

    @property
    def _pub(self) -> str:
        if self._pub_hex is None:
            self._pub_hex = public_hex(self._key.public_key())
        return self._pub_hex

    def _insert_checkpoint(self, seq: int, head: str, prev_cp: int) -> None:
        t_ns = time.time_ns()
        sig = self._key.sign(checkpoint_message(self.journal_id, seq, head, prev_cp, t_ns)).hex()
        self._conn.execute("INSERT INTO checkpoints VALUES (?,?,?,?,?,?)",
                           (seq, head, prev_cp, t_ns, self._pub, sig))
        self._pending.append(Checkpoint(self.journal_id, seq, head, prev_cp, t_ns, self._pub, sig))


class Journal:
    """Read side: events, sessions and verification. Opens the database read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _conn(self) -> sqlite3.Connection:
        from corral.errors import CorralError

        if not self.path.exists():
            raise CorralError("telemetry", f"no journal at {self.path}",
                              hint="nothing has been recorded under this CORRAL_HOME yet")
        return connect(self.path, readonly=True)

    def events(self, session_id: str | None = None, after_seq: int = 0,
               until_seq: int | None = None) -> Iterator[Event]:
        """Events in journal order, optionally of one session and within (after, until]."""
        conn = self._conn()
        until = until_seq if until_seq is not None else 2**62
        try:
            if session_id is None:
                cur = conn.execute("SELECT body FROM events WHERE seq > ? AND seq <= ? "
                                   "ORDER BY seq", (after_seq, until))
            else:
                cur = conn.execute(
                    "SELECT body FROM events WHERE session_id = ? AND seq > ? AND seq <= ? "
                    "ORDER BY seq", (session_id, after_seq, until))
            for (body,) in cur:
                yield Event.from_record(json.loads(body))
        finally:
            conn.close()

    def last_seq(self) -> int:
        conn = self._conn()
        try:
            row = conn.execute("SELECT MAX(seq) FROM events").fetchone()
        finally:
            conn.close()
        return int(row[0]) if row and row[0] is not None else 0

    def sessions(self) -> list[tuple[str, int, int]]:
        """(session id, first time ns, event count) for each session, oldest first."""
        conn = self._conn()
        try:
            rows = conn.execute(
                "SELECT session_id, MIN(time_unix_nano), COUNT(*) FROM events "
                "GROUP BY session_id ORDER BY MIN(seq)").fetchall()
        finally:
            conn.close()
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    def verify(self, public_key: Ed25519PublicKey | None = None) -> VerifyResult:
        """Check the whole chain and every checkpoint. ``public_key`` is the trusted key; by
        default it is read from the ``keys/`` directory beside ``journal/`` (``$CORRAL_HOME``).
        Without one, checkpoints cannot be trusted and that is a problem in itself."""
        if public_key is None:
            from corral.telemetry.keys import load_public_key

            public_key = load_public_key(self.path.parent.parent)
        res = VerifyResult(ok=False)
        try:
            conn = self._conn()
        except Exception as exc:
            res.problems.append(Problem(None, None, f"cannot open journal: {exc}"))
            return res
        try:
            conn.execute("BEGIN")  # one snapshot for checkpoints and records
            _verify(conn, public_key, res)
        except sqlite3.DatabaseError as exc:
            res.problems.append(Problem(None, None, f"database is corrupt or unreadable: {exc}"))
        finally:
            conn.close()
        res.ok = not res.problems
        return res


def _verify(conn: sqlite3.Connection, pub: Ed25519PublicKey | None, res: VerifyResult) -> None:
    import hashlib

    from cryptography.exceptions import InvalidSignature

    problems = res.problems
    row = conn.execute("SELECT value FROM meta WHERE key='journal_id'").fetchone()
    journal_id = str(row[0]) if row else ""
    cps = conn.execute(
        "SELECT seq, head_hash, prev_checkpoint, time_unix_nano, public_key, signature "
        "FROM checkpoints ORDER BY seq").fetchall()
    cp_seqs = {int(c[0]) for c in cps}
    computed_at: dict[int, str] = {}
    ids_at: dict[int, str] = {}

    prev = GENESIS.encode()
    expected = 1
    count = 0
    sha = hashlib.sha256
    # ids and hashes come back as bytes: no per-record encoding in this loop (1M records < 10 s)
    cur = conn.execute("SELECT seq, CAST(id AS BLOB), CAST(session_id AS BLOB), body, "
                       "CAST(hash AS BLOB) FROM events ORDER BY seq")
    for seq, eid, sid, body, stored in cur:
        if seq != expected or not isinstance(body, bytes):
            if not isinstance(body, bytes):
                body = str(body).encode()
            if seq > expected:
                problems.append(Problem(seq, eid.decode(), f"records {expected}..{seq - 1} are "
                                        "missing (deleted)"))
            elif seq != expected:
                problems.append(Problem(seq, eid.decode(), "sequence out of order"))
        h = sha(prev + body).hexdigest().encode()
        if h != stored:
            problems.append(Problem(seq, eid.decode(), "hash does not match the chain: record "
                                    "modified, inserted or reordered here"))
        elif (b'"seq":%d,' % seq not in body or b'"id":"' + eid + b'"' not in body
              or b'"session_id":"' + sid + b'"' not in body):
            problems.append(Problem(seq, eid.decode(), "indexed columns do not match the record "
                                    "(seq, id or session id modified)"))
        if seq in cp_seqs:
            computed_at[seq] = h.decode()
            ids_at[seq] = eid.decode()
        if len(problems) > 1000:
            problems.append(Problem(None, None, "too many problems; stopped"))
            return
        prev = stored
        expected = seq + 1
        count += 1
    res.records = count
    res.last_seq = expected - 1

    trusted = public_hex(pub) if pub is not None else None
    if trusted is None and cps:
        problems.append(Problem(None, None, "no journal public key found: checkpoint signatures "
                                "cannot be verified"))
    prev_cp = 0
    for seq, head, prev_checkpoint, t_ns, pk, sig in cps:
        res.checkpoints += 1
        res.last_checkpoint_seq = seq
        if prev_checkpoint != prev_cp:
            problems.append(Problem(seq, None, f"checkpoint chain broken: expected previous "
                                    f"checkpoint {prev_cp}, found {prev_checkpoint} "
                                    "(a checkpoint was deleted)"))
        prev_cp = seq
        if pub is not None:
            if pk != trusted:
                problems.append(Problem(seq, None, "checkpoint signed by an unknown key"))
            else:
                try:
                    pub.verify(bytes.fromhex(sig), checkpoint_message(
                        journal_id, seq, head, prev_checkpoint, t_ns))
                except (InvalidSignature, ValueError):
                    problems.append(Problem(seq, None, "checkpoint signature is invalid"))
        if seq > res.last_seq:
            problems.append(Problem(seq, None, f"journal truncated: checkpoint covers seq {seq} "
                                    f"but the last record is seq {res.last_seq}"))
        elif seq not in computed_at:
            problems.append(Problem(seq, None, "checkpointed record is missing (deleted)"))
        elif computed_at[seq] != head:
            problems.append(Problem(seq, ids_at.get(seq), "records up to this checkpoint were "
                                    "rewritten (head hash differs from the signed checkpoint)"))


def journal_file(home: Path) -> Path:
    return home / "journal" / "journal.db"
