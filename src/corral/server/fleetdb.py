"""The fleet's state on the server: enrolment tokens, devices, policies, what each device said.

Kept beside the log, in the same engine: ``store/fleet.db`` next to the SQLite log, or
``fleet_*`` tables in the PostgreSQL database. The log itself stays insert-only and
tamper-evident; what must be audited about the fleet (an enrolment, a revocation, a policy
change with its diff) is also appended to the log as an event (``corral.fleet.*``, see
``record``). The status table (last seen, versions, lag) is a mutable cache of the newest
report per device.

Enrolment tokens and ingest tokens are random secrets shown once; only their SHA-256 is kept.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.server.store.base import Incoming, Store

ENROL_PREFIX = "corral_enrol_"
ALL = "*"  # the group every device is in

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS fleet_enrol_tokens (
        id TEXT PRIMARY KEY, digest TEXT UNIQUE NOT NULL, name TEXT NOT NULL,
        groups TEXT NOT NULL, created_ns BIGINT NOT NULL, expires_ns BIGINT,
        uses_left INTEGER, revoked_ns BIGINT)""",
    """CREATE TABLE IF NOT EXISTS fleet_devices (
        id TEXT PRIMARY KEY, public_key TEXT UNIQUE NOT NULL, hostname TEXT NOT NULL,
        groups TEXT NOT NULL, server_url TEXT NOT NULL, token_id TEXT NOT NULL,
        token_digest TEXT NOT NULL, enrolled_ns BIGINT NOT NULL, enrol_token TEXT NOT NULL,
        revoked_ns BIGINT)""",
    """CREATE TABLE IF NOT EXISTS fleet_status (
        device_id TEXT PRIMARY KEY, seen_ns BIGINT, report TEXT, policy_applied BIGINT,
        policy_served BIGINT, ingest_ns BIGINT, newest_event_ns BIGINT, corral_version TEXT)""",
    """CREATE TABLE IF NOT EXISTS fleet_policies (
        version BIGINT PRIMARY KEY, grp TEXT NOT NULL, body TEXT NOT NULL,
        sha256 TEXT NOT NULL, author TEXT NOT NULL, created_ns BIGINT NOT NULL)""",
)


class FleetRefused(Exception):
    """A fleet request that is refused; ``status`` is the HTTP status, the message the line."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Device:
    id: str
    public_key: str
    hostname: str
    groups: tuple[str, ...]
    server_url: str
    token_id: str
    enrolled_ns: int
    revoked_ns: int | None = None

    @property
    def targets(self) -> tuple[str, ...]:
        """The policy groups that apply, in composition order (broadest first)."""
        return (ALL, *sorted(self.groups), f"device:{self.id}")


@dataclass(frozen=True)
class Status:
    seen_ns: int | None = None
    report: dict[str, Any] = field(default_factory=dict)
    policy_applied: int | None = None
    policy_served: int | None = None
    ingest_ns: int | None = None
    newest_event_ns: int | None = None
    corral_version: str = ""


@dataclass(frozen=True)
class Policy:
    version: int
    group: str
    body: str
    sha256: str
    author: str
    created_ns: int


def device_id_for(public_key_b64: str) -> str:
    return "dev-" + hashlib.sha256(public_key_b64.encode()).hexdigest()[:16]


class FleetStore:
    """The fleet tables, on SQLite (a file beside the log) or PostgreSQL (same database)."""

    def __init__(self, database: str, sqlite_path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self.pg = database != "sqlite"
        if self.pg:
            import psycopg

            self._c: Any = psycopg.connect(database, autocommit=True)
        else:
            assert sqlite_path is not None
            sqlite_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._c = sqlite3.connect(str(sqlite_path), isolation_level=None,
                                      check_same_thread=False, timeout=30)
            self._c.execute("PRAGMA journal_mode=WAL")
            self._c.execute("PRAGMA synchronous=FULL")
        for stmt in _SCHEMA:
            self._q(stmt)

    def close(self) -> None:
        with self._lock:
            self._c.close()

    def _q(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.pg:
            sql = sql.replace("?", "%s")
        with self._lock:
            cur = self._c.execute(sql, args)
            rows = cur.fetchall() if cur.description else []
        return [tuple(r) for r in rows]

    # -- enrolment tokens ---------------------------------------------------------------------
    def create_enrol_token(self, groups: list[str], name: str = "", uses: int | None = None,
                           expires_days: float | None = None) -> tuple[str, str]:
        """(token id, secret): the secret is shown once."""
        for g in groups:
            if not g or g == ALL or g.startswith("device:") or not all(
                    c.isalnum() or c in "._-" for c in g):
                raise ValueError(f"bad group name {g!r} (letters, digits, . _ -)")
        secret = ENROL_PREFIX + secrets.token_urlsafe(32)
        d = digest(secret)
        now = time.time_ns()
        exp = now + int(expires_days * 86400e9) if expires_days else None
        self._q("INSERT INTO fleet_enrol_tokens VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (d[:12], d, name or "enrolment", json.dumps(sorted(set(groups))), now, exp,
                 uses))
        return d[:12], secret

    def enrol_tokens(self) -> list[dict[str, Any]]:
        rows = self._q("SELECT id, name, groups, created_ns, expires_ns, uses_left, revoked_ns "
                       "FROM fleet_enrol_tokens ORDER BY created_ns")
        return [{"id": r[0], "name": r[1], "groups": json.loads(r[2]), "created_ns": r[3],
                 "expires_ns": r[4], "uses_left": r[5], "revoked_ns": r[6]} for r in rows]

    def revoke_enrol_token(self, token_id: str) -> bool:
        if not self._q("SELECT id FROM fleet_enrol_tokens WHERE id = ?", (token_id,)):
            return False
        self._q("UPDATE fleet_enrol_tokens SET revoked_ns = ? WHERE id = ? AND revoked_ns IS "
                "NULL", (time.time_ns(), token_id))
        return True

    def use_enrol_token(self, secret: str) -> tuple[str, list[str]]:
        """Spend one use of an enrolment token: (token id, groups), or FleetRefused."""
        rows = self._q("SELECT id, groups, expires_ns, uses_left, revoked_ns FROM "
                       "fleet_enrol_tokens WHERE digest = ?", (digest(secret.strip()),))
        if not rows:
            raise FleetRefused(401, "unknown enrolment token")
        tid, groups, exp, uses, revoked = rows[0]
        if revoked is not None:
            raise FleetRefused(401, "enrolment token revoked")
        if exp is not None and exp < time.time_ns():
            raise FleetRefused(401, "enrolment token expired")
        # one statement, so two machines enrolling at once cannot both take the last use
        if uses is not None and not self._q(
                "UPDATE fleet_enrol_tokens SET uses_left = uses_left - 1 WHERE id = ? AND "
                "uses_left > 0 RETURNING uses_left", (tid,)):
            raise FleetRefused(401, "enrolment token used up")
        return str(tid), list(json.loads(groups))

    # -- devices ------------------------------------------------------------------------------
    def add_device(self, dev: Device, token_digest: str, enrol_token: str) -> None:
        self._q("INSERT INTO fleet_devices VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                (dev.id, dev.public_key, dev.hostname, json.dumps(list(dev.groups)),
                 dev.server_url, dev.token_id, token_digest, dev.enrolled_ns, enrol_token))

    _DEV = ("SELECT id, public_key, hostname, groups, server_url, token_id, enrolled_ns, "
            "revoked_ns FROM fleet_devices")

    @staticmethod
    def _device(r: tuple[Any, ...]) -> Device:
        return Device(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5], r[6], r[7])

    def device(self, device_id: str) -> Device | None:
        rows = self._q(self._DEV + " WHERE id = ?", (device_id,))
        return self._device(rows[0]) if rows else None

    def device_by_key(self, public_key: str) -> Device | None:
        rows = self._q(self._DEV + " WHERE public_key = ?", (public_key,))
        return self._device(rows[0]) if rows else None

    def device_by_token(self, token_digest: str) -> Device | None:
        rows = self._q(self._DEV + " WHERE token_digest = ?", (token_digest,))
        return self._device(rows[0]) if rows else None

    def devices(self) -> list[Device]:
        return [self._device(r) for r in self._q(self._DEV + " ORDER BY enrolled_ns")]

    def revoke_device(self, device_id: str) -> None:
        self._q("UPDATE fleet_devices SET revoked_ns = ? WHERE id = ? AND revoked_ns IS NULL",
                (time.time_ns(), device_id))

    def set_groups(self, device_id: str, groups: list[str]) -> None:
        self._q("UPDATE fleet_devices SET groups = ? WHERE id = ?",
                (json.dumps(sorted(set(groups))), device_id))

    # -- status -------------------------------------------------------------------------------
    def seen(self, device_id: str, *, report: dict[str, Any] | None = None,
             policy_applied: int | None = None, policy_served: int | None = None,
             ingest_ns: int | None = None, newest_event_ns: int | None = None,
             corral_version: str | None = None) -> None:
        """Record that the device called in, with whatever it said (None: unchanged)."""
        now = time.time_ns()
        self._q("INSERT INTO fleet_status (device_id, seen_ns) VALUES (?, ?) ON CONFLICT "
                "(device_id) DO UPDATE SET seen_ns = excluded.seen_ns", (device_id, now))
        sets: list[str] = []
        args: list[Any] = []
        for col, val in (("report", json.dumps(report) if report is not None else None),
                         ("policy_applied", policy_applied), ("policy_served", policy_served),
                         ("ingest_ns", ingest_ns), ("corral_version", corral_version)):
            if val is not None:
                sets.append(f"{col} = ?")
                args.append(val)
        if newest_event_ns is not None:
            sets.append("newest_event_ns = CASE WHEN newest_event_ns IS NULL OR "
                        "newest_event_ns < ? THEN ? ELSE newest_event_ns END")
            args += [newest_event_ns, newest_event_ns]
        if sets:
            self._q(f"UPDATE fleet_status SET {', '.join(sets)} WHERE device_id = ?",
                    (*args, device_id))

    def status(self, device_id: str) -> Status:
        rows = self._q("SELECT seen_ns, report, policy_applied, policy_served, ingest_ns, "
                       "newest_event_ns, corral_version FROM fleet_status WHERE device_id = ?",
                       (device_id,))
        if not rows:
            return Status()
        r = rows[0]
        return Status(r[0], json.loads(r[1]) if r[1] else {}, r[2], r[3], r[4], r[5],
                      r[6] or "")

    # -- policies -----------------------------------------------------------------------------
    def add_policy(self, group: str, body: str, author: str) -> Policy:
        for _ in range(20):  # the version is the primary key: a concurrent writer takes the next
            version = self.policy_version() + 1
            p = Policy(version, group, body, hashlib.sha256(body.encode()).hexdigest(), author,
                       time.time_ns())
            try:
                self._q("INSERT INTO fleet_policies VALUES (?, ?, ?, ?, ?, ?)",
                        (p.version, p.group, p.body, p.sha256, p.author, p.created_ns))
                return p
            except Exception as exc:  # another writer took this version: take the next
                if "unique" not in str(exc).lower() and "duplicate" not in str(exc).lower():
                    raise
        raise FleetRefused(503, "could not allocate a policy version")

    def policy_version(self) -> int:
        rows = self._q("SELECT MAX(version) FROM fleet_policies")
        return int(rows[0][0] or 0)

    def current_policies(self) -> dict[str, Policy]:
        """The newest policy of every group (an empty body: the group's policy was cleared)."""
        rows = self._q("SELECT p.version, p.grp, p.body, p.sha256, p.author, p.created_ns FROM "
                       "fleet_policies p WHERE p.version = (SELECT MAX(version) FROM "
                       "fleet_policies q WHERE q.grp = p.grp)")
        return {r[1]: Policy(*r) for r in rows}

    def policy_history(self, group: str | None = None) -> list[Policy]:
        if group is None:
            rows = self._q("SELECT version, grp, body, sha256, author, created_ns FROM "
                           "fleet_policies ORDER BY version")
        else:
            rows = self._q("SELECT version, grp, body, sha256, author, created_ns FROM "
                           "fleet_policies WHERE grp = ? ORDER BY version", (group,))
        return [Policy(*r) for r in rows]


def open_fleet(cfg: Any) -> FleetStore:
    """The fleet store of a server's data directory (``cfg``: a ServerConfig)."""
    return FleetStore(cfg.database, cfg.data / "store" / "fleet.db")


def record(store: Store, name: str, attrs: dict[str, Any]) -> None:
    """Append an audit event about the fleet to the log (who did what, and the diff)."""
    now = time.time_ns()
    eid = f"fleet-{now}-{secrets.token_hex(4)}"
    store.append([Incoming(eid, name, now, "server", "corral.fleet",
                           {"name": name, "attributes": attrs})], now)
