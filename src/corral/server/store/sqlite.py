"""The embedded engine: one SQLite file in WAL mode; each batch is one ``BEGIN IMMEDIATE``
transaction, so several processes on one file still append one chain."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from corral.server.store.base import (
    AppendResult,
    ComplianceFile,
    Incoming,
    Row,
    Scan,
    Store,
    Token,
    append_batch,
    files_sql,
    scan_sql,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    received_ns INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    journal_id TEXT,
    journal_seq INTEGER,
    journal_hash TEXT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    time_unix_nano INTEGER NOT NULL,
    flag TEXT,
    leaf BLOB NOT NULL,
    chain TEXT NOT NULL,
    tree BLOB NOT NULL,
    tombstone TEXT
) STRICT;
CREATE INDEX IF NOT EXISTS events_journal ON events(journal_id, journal_seq)
    WHERE journal_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS journals (
    journal_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, public_key TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY, note TEXT NOT NULL, time_ns INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, name TEXT NOT NULL, scope TEXT NOT NULL,
    created_ns INTEGER NOT NULL, expires_ns INTEGER) STRICT;
CREATE TABLE IF NOT EXISTS token_revocations (
    id TEXT PRIMARY KEY, revoked_ns INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS compliance_cuts (
    end_ns INTEGER PRIMARY KEY, start_ns INTEGER NOT NULL, last_seq INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS compliance_files (
    id TEXT PRIMARY KEY, event_type TEXT NOT NULL, start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    count INTEGER NOT NULL, sha256 TEXT NOT NULL) STRICT;
CREATE INDEX IF NOT EXISTS compliance_files_end ON compliance_files(end_ns, event_type);
CREATE TABLE IF NOT EXISTS withdrawn_files (
    file_id TEXT PRIMARY KEY, tombstone TEXT NOT NULL, time_ns INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS holds (
    id TEXT PRIMARY KEY, created_ns INTEGER NOT NULL, created_by TEXT NOT NULL,
    reason TEXT NOT NULL, user_name TEXT, session_id TEXT, device TEXT, since_ns INTEGER,
    until_ns INTEGER) STRICT;
CREATE TABLE IF NOT EXISTS hold_releases (
    id TEXT PRIMARY KEY, released_ns INTEGER NOT NULL, released_by TEXT NOT NULL) STRICT;
"""
_APPEND_ONLY = ("journals", "checkpoints", "tokens", "token_revocations",
                "compliance_cuts", "compliance_files", "withdrawn_files", "holds",
                "hold_releases")
_COLS = ("seq, event_id, received_ns, device_id, journal_id, journal_seq, journal_hash, kind, "
         "name, time_unix_nano, flag, leaf, chain, tree")
# The one change the log allows: expiry clears an event's content (leaf) and names the
# tombstone event, already stored, that records it; every other column stays as it was, and a
# tombstone itself never expires.
_EXPIRY_ONLY = ("""
CREATE TRIGGER IF NOT EXISTS events_expiry_only BEFORE UPDATE ON events WHEN NOT (
    NEW.leaf = x'' AND OLD.tombstone IS NULL AND NEW.tombstone IS NOT NULL
    AND OLD.name <> 'server.tombstone'
    AND NEW.seq IS OLD.seq AND NEW.event_id IS OLD.event_id
    AND NEW.received_ns IS OLD.received_ns AND NEW.device_id IS OLD.device_id
    AND NEW.journal_id IS OLD.journal_id AND NEW.journal_seq IS OLD.journal_seq
    AND NEW.journal_hash IS OLD.journal_hash AND NEW.kind IS OLD.kind AND NEW.name IS OLD.name
    AND NEW.time_unix_nano IS OLD.time_unix_nano AND NEW.flag IS OLD.flag
    AND NEW.chain IS OLD.chain AND NEW.tree IS OLD.tree
    AND EXISTS (SELECT 1 FROM events t WHERE t.event_id = NEW.tombstone
                AND t.name = 'server.tombstone'))
BEGIN SELECT RAISE(ABORT, 'the log is append-only (only expiry under a stored tombstone may clear an event''s content)'); END;""",
                """CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events BEGIN
    SELECT RAISE(ABORT, 'the log is append-only'); END;""")


class _Tx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.c = conn

    def head(self) -> tuple[int, str]:
        row = self.c.execute("SELECT seq, chain FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, "0" * 64) if row is None else (int(row[0]), str(row[1]))

    def nodes(self, need: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return _nodes(self.c, need)

    def existing(self, ids: list[str]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            q = ",".join("?" * len(part))
            for eid, jh in self.c.execute(
                    f"SELECT event_id, journal_hash FROM events WHERE event_id IN ({q})", part):
                out[eid] = jh
        return out

    def journal_heads(self, ids: list[str]) -> dict[str, tuple[int, str]]:
        out = {}
        for jid in ids:
            row = self.c.execute(
                "SELECT journal_seq, journal_hash FROM events WHERE journal_id = ? AND "
                "kind = 'record' ORDER BY journal_seq DESC LIMIT 1", (jid,)).fetchone()
            if row:
                out[jid] = (int(row[0]), str(row[1]))
        return out

    def journal_keys(self, ids: list[str]) -> dict[str, str]:
        q = ",".join("?" * len(ids))
        return dict(self.c.execute(
            f"SELECT journal_id, public_key FROM journals WHERE journal_id IN ({q})", ids))

    def journal_hash_at(self, journal_id: str, seq: int) -> str | None:
        row = self.c.execute(
            "SELECT journal_hash FROM events WHERE journal_id = ? AND journal_seq = ? AND "
            "kind = 'record' ORDER BY seq LIMIT 1", (journal_id, seq)).fetchone()
        return None if row is None else str(row[0])

    def insert(self, rows: list[tuple[Any, ...]], journals: list[tuple[str, str, str]]) -> None:
        self.c.executemany(f"INSERT INTO events ({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           rows)
        if journals:
            self.c.executemany("INSERT OR IGNORE INTO journals VALUES (?,?,?)", journals)

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.c.execute(sql, args).rowcount

    def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.c.execute(sql, args).fetchall()


def _nodes(c: sqlite3.Connection, need: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    out = {}
    for k, j in dict.fromkeys(need):
        seq = (j + 1) << k
        row = c.execute("SELECT substr(tree, ?, 32) FROM events WHERE seq = ?",
                        (32 * k + 1, seq)).fetchone()
        if row is None or len(row[0]) != 32:
            raise LookupError(f"tree node ({k}, {j}) is missing from the store")
        out[(k, j)] = bytes(row[0])
    return out


class SqliteStore(Store):
    engine = "sqlite"

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            self._c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                      check_same_thread=False)
        else:
            self._c = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            # rows are ~1.5 KB: 4 KB pages hold two (a quarter wasted); 16 KB pages hold ten
            # (only takes effect when the file is created)
            self._c.execute("PRAGMA page_size=16384")
            self._c.execute("PRAGMA journal_mode=WAL")
            # FULL: a 200 to the sender means on disk, power cut included; group commit
            # amortizes the fsync
            self._c.execute("PRAGMA synchronous=FULL")
            self._c.execute("PRAGMA wal_autocheckpoint=10000")
        self._c.execute("PRAGMA busy_timeout=10000")
        if not readonly:
            self._c.executescript(_SCHEMA)
            self._migrate()
            for t in _APPEND_ONLY:
                self._c.executescript(
                    f"CREATE TRIGGER IF NOT EXISTS {t}_no_update BEFORE UPDATE ON {t} BEGIN "
                    "SELECT RAISE(ABORT, 'the log is append-only'); END;"
                    f"CREATE TRIGGER IF NOT EXISTS {t}_no_delete BEFORE DELETE ON {t} BEGIN "
                    "SELECT RAISE(ABORT, 'the log is append-only'); END;")

    def _migrate(self) -> None:
        """Stores made before retention: the tombstone column, and the events trigger that
        allows expiry (and nothing else) instead of refusing every update."""
        if self._c.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = "
                           "'events_expiry_only'").fetchone() and self._has_tombstones():
            return
        with self._write() as c:
            if not self._has_tombstones():
                c.execute("ALTER TABLE events ADD COLUMN tombstone TEXT")
            c.execute("DROP TRIGGER IF EXISTS events_no_update")
            for stmt in _EXPIRY_ONLY:
                c.execute(stmt)

    def _has_tombstones(self) -> bool:
        return any(r[1] == "tombstone" for r in self._c.execute("PRAGMA table_info(events)"))

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        c = self._c
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise

    def append(self, items: list[Incoming], received_ns: int) -> AppendResult:
        with self._write() as c:
            return append_batch(_Tx(c), items, received_ns)

    def head(self) -> tuple[int, str]:
        return _Tx(self._c).head()

    def nodes(self, need: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return _nodes(self._c, need)

    def leaf(self, seq: int) -> bytes | None:
        row = self._c.execute("SELECT leaf FROM events WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else bytes(row[0])

    def rows(self, after: int = 0, until: int | None = None) -> Iterator[Row]:
        tomb = "tombstone" if self._has_tombstones() else "NULL"  # a store from before
        cur = self._c.execute(
            "SELECT seq, event_id, leaf, CAST(chain AS BLOB), tree, journal_id, journal_seq, "
            f"journal_hash, kind, flag, name, {tomb} FROM events WHERE seq > ? AND seq <= ? "
            "ORDER BY seq", (after, 2**62 if until is None else until))
        yield from cur  # plain tuples in Row's order: verify reads a million of them

    def chain_before(self, seq: int) -> str:
        row = self._c.execute("SELECT chain FROM events WHERE seq < ? ORDER BY seq DESC LIMIT 1",
                              (seq,)).fetchone()
        return "0" * 64 if row is None else str(row[0])

    def add_checkpoint(self, size: int, note: str, t_ns: int) -> None:
        self._c.execute("INSERT OR IGNORE INTO checkpoints VALUES (?,?,?)", (size, note, t_ns))

    def checkpoints(self) -> list[tuple[int, str]]:
        return [(int(s), str(n)) for s, n in
                self._c.execute("SELECT size, note FROM checkpoints ORDER BY size")]

    def latest_checkpoint(self) -> tuple[int, str] | None:
        row = self._c.execute(
            "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def add_token(self, token: Token, digest: str) -> None:
        self._c.execute("INSERT INTO tokens VALUES (?,?,?,?,?,?)", (
            token.id, digest, token.name, token.scope, token.created_ns, token.expires_ns))

    def revoke_token(self, token_id: str, t_ns: int) -> bool:
        if not self._c.execute("SELECT 1 FROM tokens WHERE id = ?", (token_id,)).fetchone():
            return False
        self._c.execute("INSERT OR IGNORE INTO token_revocations VALUES (?,?)", (token_id, t_ns))
        return True

    def tokens(self) -> list[Token]:
        return [Token(*r) for r in self._c.execute(
            "SELECT t.id, t.name, t.scope, t.created_ns, t.expires_ns, r.revoked_ns FROM tokens "
            "t LEFT JOIN token_revocations r ON r.id = t.id ORDER BY t.created_ns")]

    def token_by_digest(self, digest: str) -> Token | None:
        row = self._c.execute(
            "SELECT t.id, t.name, t.scope, t.created_ns, t.expires_ns, r.revoked_ns FROM tokens "
            "t LEFT JOIN token_revocations r ON r.id = t.id WHERE t.digest = ?",
            (digest,)).fetchone()
        return None if row is None else Token(*row)

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                total += Path(str(self.path) + suffix).stat().st_size
        return total

    def scan(self, q: Scan) -> list[tuple[int, bytes]]:
        sql, args = scan_sql(q, "?")
        return self._c.execute(sql, args).fetchall()

    def last_seq_before(self, received_ns: int, after: int) -> int:
        row = self._c.execute("SELECT seq FROM events WHERE seq > ? AND received_ns >= ? "
                              "ORDER BY seq LIMIT 1", (after, received_ns)).fetchone()
        if row is not None:
            return int(row[0]) - 1
        top = self._c.execute("SELECT max(seq) FROM events").fetchone()
        return after if top is None or top[0] is None else max(after, int(top[0]))

    def received_at(self, seq: int) -> int | None:
        row = self._c.execute("SELECT received_ns FROM events WHERE seq = ?",
                              (seq,)).fetchone()
        return None if row is None else int(row[0])

    def name_counts(self, first: int, last: int) -> dict[str, int]:
        return {str(n): int(c) for n, c in self._c.execute(
            "SELECT name, count(*) FROM events WHERE seq >= ? AND seq <= ? AND tombstone IS "
            "NULL GROUP BY name", (first, last))}

    def add_compliance_cut(self, start_ns: int, end_ns: int, last_seq: int,
                           files: list[ComplianceFile]) -> bool:
        with self._write() as c:
            if c.execute("SELECT 1 FROM compliance_cuts WHERE end_ns >= ?",
                         (end_ns,)).fetchone():
                return False
            c.execute("INSERT INTO compliance_cuts VALUES (?,?,?)", (end_ns, start_ns, last_seq))
            c.executemany("INSERT INTO compliance_files VALUES (?,?,?,?,?,?,?,?)", [
                (f.id, f.event_type, f.start_ns, f.end_ns, f.first_seq, f.last_seq, f.count,
                 f.sha256) for f in files])
        return True

    def last_compliance_cut(self) -> tuple[int, int] | None:
        row = self._c.execute("SELECT end_ns, last_seq FROM compliance_cuts ORDER BY end_ns "
                              "DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def compliance_files(self, event_type: str | None, after_ns: int,
                         limit: int) -> list[ComplianceFile]:
        sql, args = files_sql(event_type, after_ns, limit, "?")
        return [ComplianceFile(*r) for r in self._c.execute(sql, args)]

    def compliance_file(self, file_id: str) -> ComplianceFile | None:
        row = self._c.execute("SELECT * FROM compliance_files WHERE id = ?",
                              (file_id,)).fetchone()
        return None if row is None else ComplianceFile(*row)

    def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._c.execute(sql, args).fetchall()

    @contextlib.contextmanager
    def _write_tx(self) -> Iterator[_Tx]:
        with self._write() as c:
            yield _Tx(c)

    def close(self) -> None:
        self._c.close()
