"""The fleet engine: PostgreSQL through psycopg 3 and a connection pool.

Several ``corral server run`` processes may share one database: each append runs in one
transaction that first takes a transaction-level advisory lock, so appends are serialized by
the database itself and the log stays one chain and one tree (no coordination of our own).

The schema is created and migrated here. Events are range-partitioned by receive time (one
partition a month, created ahead, plus a default partition so an insert never fails for want of
one). Ingest runs as the ``corral_ingest`` role, which may SELECT and INSERT only; triggers
refuse UPDATE and DELETE on the log for everyone else.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from corral.server.store.base import (
    COLUMNS,
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

APPEND_LOCK = 0x636F7272616C01  # "corral" + 1: the advisory lock serializing appends
CUT_LOCK = 0x636F7272616C03  # serializes compliance file cuts across replicas
MIGRATE_LOCK = 0x636F7272616C02
SCHEMA_VERSION = 2  # 2: retention (tombstone column, expiry trigger), holds
ROLE = "corral_ingest"
_TYPES = ["int8", "text", "int8", "text", "text", "int8", "text", "text", "text", "int8", "text",
          "bytea", "text", "bytea"]  # COLUMNS, in order
_TABLES = ("event_ids", "journals", "checkpoints", "tokens", "token_revocations",
           "compliance_cuts", "compliance_files", "withdrawn_files", "holds", "hold_releases")

_DDL = f"""
CREATE TABLE IF NOT EXISTS corral_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq bigint NOT NULL, event_id text NOT NULL, received_ns bigint NOT NULL,
    device_id text NOT NULL, journal_id text, journal_seq bigint, journal_hash text,
    kind text NOT NULL, name text NOT NULL, time_unix_nano bigint NOT NULL, flag text,
    leaf bytea NOT NULL, chain text NOT NULL, tree bytea NOT NULL,
    PRIMARY KEY (seq, received_ns)
) PARTITION BY RANGE (received_ns);
DROP INDEX IF EXISTS events_seq;
ALTER TABLE events ALTER COLUMN leaf SET COMPRESSION lz4;
CREATE INDEX IF NOT EXISTS events_journal ON events (journal_id, journal_seq)
    WHERE journal_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS events_default PARTITION OF events DEFAULT;
CREATE TABLE IF NOT EXISTS event_ids (
    event_id text PRIMARY KEY, seq bigint NOT NULL, journal_hash text);
CREATE TABLE IF NOT EXISTS journals (
    journal_id text PRIMARY KEY, device_id text NOT NULL, public_key text NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    size bigint PRIMARY KEY, note text NOT NULL, time_ns bigint NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    id text PRIMARY KEY, digest text NOT NULL UNIQUE, name text NOT NULL, scope text NOT NULL,
    created_ns bigint NOT NULL, expires_ns bigint);
CREATE TABLE IF NOT EXISTS token_revocations (id text PRIMARY KEY, revoked_ns bigint NOT NULL);
CREATE TABLE IF NOT EXISTS compliance_cuts (
    end_ns bigint PRIMARY KEY, start_ns bigint NOT NULL, last_seq bigint NOT NULL);
CREATE TABLE IF NOT EXISTS compliance_files (
    id text PRIMARY KEY, event_type text NOT NULL, start_ns bigint NOT NULL,
    end_ns bigint NOT NULL, first_seq bigint NOT NULL, last_seq bigint NOT NULL,
    count bigint NOT NULL, sha256 text NOT NULL);
CREATE INDEX IF NOT EXISTS compliance_files_end ON compliance_files (end_ns, event_type);
ALTER TABLE events ADD COLUMN IF NOT EXISTS tombstone text;
CREATE TABLE IF NOT EXISTS withdrawn_files (
    file_id text PRIMARY KEY, tombstone text NOT NULL, time_ns bigint NOT NULL);
CREATE TABLE IF NOT EXISTS holds (
    id text PRIMARY KEY, created_ns bigint NOT NULL, created_by text NOT NULL,
    reason text NOT NULL, user_name text, session_id text, device text, since_ns bigint,
    until_ns bigint);
CREATE TABLE IF NOT EXISTS hold_releases (
    id text PRIMARY KEY, released_ns bigint NOT NULL, released_by text NOT NULL);
CREATE OR REPLACE FUNCTION corral_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the log is append-only'; END $$;
-- The one change the log allows: expiry clears an event's content (leaf) and names the
-- tombstone event, already stored, that records it; a tombstone itself never expires.
CREATE OR REPLACE FUNCTION corral_expiry_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND length(NEW.leaf) = 0 AND OLD.tombstone IS NULL
       AND NEW.tombstone IS NOT NULL AND OLD.name <> 'server.tombstone'
       AND (NEW.seq, NEW.event_id, NEW.received_ns, NEW.device_id, NEW.journal_id,
            NEW.journal_seq, NEW.journal_hash, NEW.kind, NEW.name, NEW.time_unix_nano,
            NEW.flag, NEW.chain, NEW.tree)
           IS NOT DISTINCT FROM
           (OLD.seq, OLD.event_id, OLD.received_ns, OLD.device_id, OLD.journal_id,
            OLD.journal_seq, OLD.journal_hash, OLD.kind, OLD.name, OLD.time_unix_nano,
            OLD.flag, OLD.chain, OLD.tree)
       AND EXISTS (SELECT 1 FROM event_ids i JOIN events t ON t.seq = i.seq
                   WHERE i.event_id = NEW.tombstone AND t.name = 'server.tombstone') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the log is append-only (only expiry under a stored tombstone may clear an event''s content)';
END $$;
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
        CREATE ROLE {ROLE} NOLOGIN;
    END IF;
END $$;
"""


def _month_bounds(year: int, month: int) -> tuple[int, int, str]:
    start = datetime.datetime(year, month, 1, tzinfo=datetime.UTC)
    ny, nm = (year + 1, 1) if month == 12 else (year, month + 1)
    end = datetime.datetime(ny, nm, 1, tzinfo=datetime.UTC)
    return (int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9,
            f"events_{year:04d}_{month:02d}")


def migrate(conn: psycopg.Connection[Any], months_ahead: int = 3) -> None:
    """Create or upgrade the schema (idempotent; serialized across servers)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute(_DDL)
        now = datetime.datetime.now(datetime.UTC)
        y, m = now.year, now.month
        for _ in range(months_ahead + 1):
            lo, hi, name = _month_bounds(y, m)
            exists = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
            if exists and exists[0] is None:
                conn.execute(f"CREATE TABLE {name} PARTITION OF events "
                             f"FOR VALUES FROM ({lo}) TO ({hi})")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        for t in _TABLES:
            conn.execute(f"DROP TRIGGER IF EXISTS {t}_append_only ON {t}")
            conn.execute(f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                         "FOR EACH ROW EXECUTE FUNCTION corral_append_only()")
            conn.execute(f"REVOKE ALL ON {t} FROM {ROLE}")
            conn.execute(f"GRANT SELECT, INSERT ON {t} TO {ROLE}")
        conn.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        conn.execute("DROP TRIGGER IF EXISTS events_expiry_only ON events")
        conn.execute("CREATE TRIGGER events_expiry_only BEFORE UPDATE OR DELETE ON events "
                     "FOR EACH ROW EXECUTE FUNCTION corral_expiry_only()")
        conn.execute(f"REVOKE ALL ON events FROM {ROLE}")
        # ingest may insert events and, through the trigger, only expire them
        conn.execute(f"GRANT SELECT, INSERT, UPDATE (leaf, tombstone) ON events TO {ROLE}")
        conn.execute(f"GRANT SELECT ON corral_meta TO {ROLE}")
        conn.execute(f"GRANT {ROLE} TO CURRENT_USER")
        conn.execute("INSERT INTO corral_meta VALUES ('schema', %s) ON CONFLICT (key) DO "
                     "UPDATE SET value = EXCLUDED.value", (str(SCHEMA_VERSION),))


class _Tx:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.c = conn

    def head(self) -> tuple[int, str]:
        row = self.c.execute("SELECT seq, chain FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, "0" * 64) if row is None else (int(row[0]), str(row[1]))

    def nodes(self, need: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return _nodes(self.c, need)

    def existing(self, ids: list[str]) -> dict[str, str | None]:
        return {str(e): h for e, h in self.c.execute(
            "SELECT event_id, journal_hash FROM event_ids WHERE event_id = ANY(%s)", (ids,))}

    def journal_heads(self, ids: list[str]) -> dict[str, tuple[int, str]]:
        out = {}
        for jid in ids:
            row = self.c.execute(
                "SELECT journal_seq, journal_hash FROM events WHERE journal_id = %s AND "
                "kind = 'record' ORDER BY journal_seq DESC LIMIT 1", (jid,)).fetchone()
            if row:
                out[jid] = (int(row[0]), str(row[1]))
        return out

    def journal_keys(self, ids: list[str]) -> dict[str, str]:
        return {str(j): str(k) for j, k in self.c.execute(
            "SELECT journal_id, public_key FROM journals WHERE journal_id = ANY(%s)", (ids,))}

    def journal_hash_at(self, journal_id: str, seq: int) -> str | None:
        row = self.c.execute(
            "SELECT journal_hash FROM events WHERE journal_id = %s AND journal_seq = %s AND "
            "kind = 'record' ORDER BY seq LIMIT 1", (journal_id, seq)).fetchone()
        return None if row is None else str(row[0])

    def insert(self, rows: list[tuple[Any, ...]], journals: list[tuple[str, str, str]]) -> None:
        cur = self.c.cursor()
        # binary COPY: no hex round trip for the ~2 KB leaf and the tree nodes
        with cur.copy(f"COPY events ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(_TYPES)
            for r in rows:
                cp.write_row(r)
        with cur.copy("COPY event_ids (event_id, seq, journal_hash) FROM STDIN "
                      "(FORMAT BINARY)") as cp:
            cp.set_types(["text", "int8", "text"])
            for r in rows:
                cp.write_row((r[1], r[0], r[6]))
        if journals:
            cur.executemany("INSERT INTO journals VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                            journals)

    def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        return self.c.execute(_pg(sql), args).rowcount

    def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.c.execute(_pg(sql), args).fetchall()


def _pg(sql: str) -> str:
    """``?`` placeholders (the engine-neutral statements in store.base) as psycopg's."""
    return sql.replace("?", "%s")


def _nodes(c: psycopg.Connection[Any],
           need: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    want = {((j + 1) << k): (k, j) for k, j in need}
    got = dict(c.execute("SELECT seq, tree FROM events WHERE seq = ANY(%s)",
                         (list(want),)).fetchall())
    out = {}
    for seq, (k, j) in want.items():
        tree = got.get(seq)
        if tree is None or len(tree) < 32 * k + 32:
            raise LookupError(f"tree node ({k}, {j}) is missing from the store")
        out[(k, j)] = bytes(tree[32 * k:32 * k + 32])
    return out


class PostgresStore(Store):
    engine = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        self._size = pool_size
        with psycopg.connect(url, autocommit=True) as conn:
            migrate(conn)
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True,
                                   configure=self._configure, kwargs={"autocommit": True})
        self._scans: ConnectionPool | None = None  # cursor reads: opened on the first one
        self._scans_lock = threading.Lock()

    @staticmethod
    def _configure(conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"SET ROLE {ROLE}")

    @staticmethod
    def _configure_scans(conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"SET ROLE {ROLE}")
        # A cursor read wants the first rows in seq order: an ordered index scan that stops at
        # the limit. Without fresh statistics (a partition autovacuum has not analyzed yet)
        # the planner chose a bitmap scan of the whole range plus a sort: 155 ms instead of
        # 9 ms per 1,000-event page (benchmarks/README.md). Set once per connection of the
        # scan pool (it was SET LOCAL in a transaction: three more round trips per read).
        conn.execute("SET enable_bitmapscan = off")

    def _scan_pool(self) -> ConnectionPool:
        with self._scans_lock:
            if self._scans is None:
                self._scans = ConnectionPool(self.url, min_size=1, max_size=self._size,
                                             open=True, configure=self._configure_scans,
                                             kwargs={"autocommit": True})
            return self._scans

    def append(self, items: list[Incoming], received_ns: int) -> AppendResult:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
            return append_batch(_Tx(conn), items, received_ns)

    def head(self) -> tuple[int, str]:
        with self.pool.connection() as conn:
            return _Tx(conn).head()

    def nodes(self, need: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        with self.pool.connection() as conn:
            return _nodes(conn, need)

    def leaf(self, seq: int) -> bytes | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT leaf FROM events WHERE seq = %s", (seq,)).fetchone()
        return None if row is None else bytes(row[0])

    def rows(self, after: int = 0, until: int | None = None) -> Iterator[Row]:
        with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(name="corral_verify")
            cur.itersize = 20_000
            cur.execute("SELECT seq, event_id, leaf, convert_to(chain, 'UTF8'), tree, "
                        "journal_id, journal_seq, journal_hash, kind, flag, name, tombstone "
                        "FROM events WHERE seq > %s AND seq <= %s ORDER BY seq",
                        (after, 2**62 if until is None else until))
            yield from cur

    def chain_before(self, seq: int) -> str:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT chain FROM events WHERE seq < %s ORDER BY seq DESC "
                               "LIMIT 1", (seq,)).fetchone()
        return "0" * 64 if row is None else str(row[0])

    def add_checkpoint(self, size: int, note: str, t_ns: int) -> None:
        with self.pool.connection() as conn:
            conn.execute("INSERT INTO checkpoints VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                         (size, note, t_ns))

    def checkpoints(self) -> list[tuple[int, str]]:
        with self.pool.connection() as conn:
            return [(int(s), str(n)) for s, n in
                    conn.execute("SELECT size, note FROM checkpoints ORDER BY size")]

    def latest_checkpoint(self) -> tuple[int, str] | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def add_token(self, token: Token, digest: str) -> None:
        with self.pool.connection() as conn:
            conn.execute("INSERT INTO tokens VALUES (%s, %s, %s, %s, %s, %s)", (
                token.id, digest, token.name, token.scope, token.created_ns, token.expires_ns))

    def revoke_token(self, token_id: str, t_ns: int) -> bool:
        with self.pool.connection() as conn:
            if not conn.execute("SELECT 1 FROM tokens WHERE id = %s", (token_id,)).fetchone():
                return False
            conn.execute("INSERT INTO token_revocations VALUES (%s, %s) ON CONFLICT DO NOTHING",
                         (token_id, t_ns))
        return True

    def tokens(self) -> list[Token]:
        with self.pool.connection() as conn:
            return [Token(*r) for r in conn.execute(
                "SELECT t.id, t.name, t.scope, t.created_ns, t.expires_ns, r.revoked_ns FROM "
                "tokens t LEFT JOIN token_revocations r ON r.id = t.id ORDER BY t.created_ns")]

    def token_by_digest(self, digest: str) -> Token | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT t.id, t.name, t.scope, t.created_ns, t.expires_ns, r.revoked_ns FROM "
                "tokens t LEFT JOIN token_revocations r ON r.id = t.id WHERE t.digest = %s",
                (digest,)).fetchone()
        return None if row is None else Token(*row)

    def size_bytes(self) -> int:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0

    def scan(self, q: Scan) -> list[tuple[int, bytes]]:
        sql, args = scan_sql(q, "%s")
        with self._scan_pool().connection() as conn:
            # binary results: the leaves arrive as they are stored, not hex-encoded and decoded
            return conn.execute(sql, args, binary=True).fetchall()

    def last_seq_before(self, received_ns: int, after: int) -> int:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT seq FROM events WHERE seq > %s AND received_ns >= %s "
                               "ORDER BY seq LIMIT 1", (after, received_ns)).fetchone()
            if row is not None:
                return int(row[0]) - 1
            top = conn.execute("SELECT max(seq) FROM events").fetchone()
        return after if top is None or top[0] is None else max(after, int(top[0]))

    def received_at(self, seq: int) -> int | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT received_ns FROM events WHERE seq = %s",
                               (seq,)).fetchone()
        return None if row is None else int(row[0])

    def name_counts(self, first: int, last: int) -> dict[str, int]:
        with self.pool.connection() as conn:
            return {str(n): int(c) for n, c in conn.execute(
                "SELECT name, count(*) FROM events WHERE seq >= %s AND seq <= %s AND "
                "tombstone IS NULL GROUP BY name", (first, last))}

    def add_compliance_cut(self, start_ns: int, end_ns: int, last_seq: int,
                           files: list[ComplianceFile]) -> bool:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (CUT_LOCK,))
            if conn.execute("SELECT 1 FROM compliance_cuts WHERE end_ns >= %s",
                            (end_ns,)).fetchone():
                return False
            conn.execute("INSERT INTO compliance_cuts VALUES (%s, %s, %s)",
                         (end_ns, start_ns, last_seq))
            conn.cursor().executemany(
                "INSERT INTO compliance_files VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(f.id, f.event_type, f.start_ns, f.end_ns, f.first_seq, f.last_seq, f.count,
                  f.sha256) for f in files])
        return True

    def last_compliance_cut(self) -> tuple[int, int] | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT end_ns, last_seq FROM compliance_cuts ORDER BY end_ns "
                               "DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def compliance_files(self, event_type: str | None, after_ns: int,
                         limit: int) -> list[ComplianceFile]:
        with self.pool.connection() as conn:
            sql, args = files_sql(event_type, after_ns, limit, "%s")
            return [ComplianceFile(*r) for r in conn.execute(sql, args)]

    def compliance_file(self, file_id: str) -> ComplianceFile | None:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT * FROM compliance_files WHERE id = %s",
                               (file_id,)).fetchone()
        return None if row is None else ComplianceFile(*row)

    _ID_TABLE = "event_ids"

    def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.pool.connection() as conn:
            return conn.execute(_pg(sql), args).fetchall()

    @contextlib.contextmanager
    def _write_tx(self) -> Iterator[_Tx]:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
            yield _Tx(conn)

    def close(self) -> None:
        self.pool.close()
        if self._scans is not None:
            self._scans.close()
