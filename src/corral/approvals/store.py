"""The grants store: SQLite (WAL) under ``$CORRAL_HOME/state/grants.db``.

Only the supervisor side (outside the sandbox) opens it. Every read-modify-write runs in a
``BEGIN IMMEDIATE`` transaction, so two processes consuming the same once-grant cannot both
win, and adding a persistent grant writes the rules line inside the same transaction.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from corral.approvals import rulesfile
from corral.approvals.broad import shown, why_too_broad
from corral.approvals.model import (
    CONTROL,
    GRANTED_BY,
    Choice,
    Grant,
    Kind,
    Question,
    Scope,
    refuse,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY, scope TEXT NOT NULL, kind TEXT NOT NULL, pattern TEXT NOT NULL,
    session_id TEXT, project TEXT, granted_by TEXT NOT NULL, granted_at REAL NOT NULL,
    expires_at REAL, revoked_at REAL, revoked_by TEXT, consumed_at REAL, note TEXT NOT NULL,
    rule TEXT, head TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_head ON grants(kind, head);
CREATE TABLE IF NOT EXISTS pending (
    id TEXT PRIMARY KEY, session_id TEXT, kind TEXT NOT NULL, action TEXT NOT NULL,
    digest TEXT NOT NULL, reason TEXT NOT NULL, reviewer TEXT, created_at REAL NOT NULL,
    expires_at REAL NOT NULL, answered TEXT, answered_by TEXT, answered_at REAL,
    grant_expires REAL
);
CREATE TABLE IF NOT EXISTS token_nonces (
    nonce TEXT PRIMARY KEY, pending_id TEXT NOT NULL, used_at REAL NOT NULL
);
"""

# Lookup order: grants that are not used up first, then once-grants (oldest first).
_SCOPE_ORDER = {Scope.PERSISTENT: 0, Scope.PROJECT: 1, Scope.SESSION: 2, Scope.ONCE: 3}


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


class GrantStore:
    """Grants for every session of one ``$CORRAL_HOME``.

    ``GrantStore()`` opens ``$CORRAL_HOME/state/grants.db``; ``GrantStore(path)`` opens ``path``
    and treats ``path/../..`` as the home (for ``rules/default.rules`` and ``keys/``)."""

    def __init__(self, path: Path | str | None = None, *, home: Path | str | None = None,
                 busy_timeout_ms: int = 10_000) -> None:
        if path is None:
            from corral.paths import corral_home

            self.home = Path(home) if home is not None else corral_home()
            self.path = self.home / "state" / "grants.db"
        else:
            self.path = Path(path).absolute()
            self.home = Path(home) if home is not None else self.path.parent.parent
        self.rules_file = self.home / "rules" / "default.rules"
        self.key_file = self.home / "keys" / "approvals.key"
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(str(self.path), timeout=busy_timeout_ms / 1000,
                                       isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self.transaction() as db:
                for statement in _statements():
                    db.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            from corral.paths import unreachable

            raise unreachable(CONTROL, self.path, exc, "the grants database") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> GrantStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): serialised across processes."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- grants -----------------------------------------------------------------------------

    def add(self, kind: Kind | str, scope: Scope | str, pattern: tuple[str, ...] | list[str], *,
            session_id: str | None = None, project: str | None = None,
            granted_by: str = "user", expires_at: float | None = None, note: str = "",
            now: float | None = None) -> Grant:
        """Record a grant, refusing over-broad or ill-formed ones with a one-line reason."""
        t = time.time() if now is None else now
        kind, scope = _kind(kind), _scope(scope)
        pat = tuple(pattern)
        _validate(kind, scope, pat, session_id, project, granted_by, expires_at, t)
        grant = Grant(id=new_id("g-"), scope=scope, kind=kind, pattern=pat,
                      session_id=session_id, project=project, granted_by=granted_by,
                      granted_at=t, expires_at=expires_at, note=note)
        rule = _rule_for(grant)
        with self.transaction() as db:
            db.execute(
                "INSERT INTO grants (id, scope, kind, pattern, session_id, project, granted_by,"
                " granted_at, expires_at, note, rule, head) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (grant.id, scope.value, kind.value, json.dumps(list(pat)), session_id,
                 project, granted_by, t, expires_at, note, rule, _head(kind, pat)),
            )
            if rule is not None:
                from corral.approvals.model import fmt_time

                rulesfile.append_rule(self.rules_file, rule,
                                      f"corral grant {grant.id} by {granted_by} at {fmt_time(t)}")
        return grant

    def record_choice(self, question: Question, choice: Choice, *, granted_by: str = "user",
                      expires_at: float | None = None, now: float | None = None) -> Grant | None:
        """Turn a person's answer into a standing grant (None for once and deny: the pipeline
        runs the one action it asked about and stores nothing)."""
        if choice in (Choice.ONCE, Choice.DENY):
            return None
        return self.add(question.kind, Scope(choice.value), question.grant_pattern,
                        session_id=question.session_id, project=question.project,
                        granted_by=granted_by, expires_at=expires_at, now=now,
                        note=question.reason[:200])

    def find(self, kind: Kind | str, argv: tuple[str, ...] | list[str], *,
             session_id: str | None = None, project: str | None = None,
             now: float | None = None) -> Grant | None:
        """The grant covering this action, or None. A once-grant is consumed by being found;
        expired, revoked and used grants are ignored."""
        t = time.time() if now is None else now
        kind = _kind(kind)
        args = tuple(argv)
        if not args:
            return None
        while True:
            # A plain read first: most lookups find nothing or a standing grant, and need
            # no write lock. Only a once-grant is claimed, in a write transaction.
            with self._lock:
                rows = self._db.execute(
                    "SELECT * FROM grants WHERE kind = ? AND head = ? AND revoked_at IS NULL "
                    "AND consumed_at IS NULL AND (expires_at IS NULL OR expires_at > ?) AND ("
                    "scope = 'persistent' OR (scope = 'project' AND project = ?) OR "
                    "(scope = 'session' AND session_id = ?) OR "
                    "(scope = 'once' AND (session_id IS NULL OR session_id = ?)))",
                    (kind.value, _head(kind, args), t, project, session_id, session_id),
                ).fetchall()
            cands = [g for g in map(_row_grant, rows)
                     if g.matches(args) and _in_scope(g, session_id, project)]
            if not cands:
                return None
            cands.sort(key=lambda g: (_SCOPE_ORDER[g.scope], g.granted_at))
            best = cands[0]
            if best.scope is not Scope.ONCE:
                return best
            with self.transaction() as db:
                cur = db.execute("UPDATE grants SET consumed_at = ? WHERE id = ? AND "
                                 "consumed_at IS NULL AND revoked_at IS NULL", (t, best.id))
            if cur.rowcount == 1:
                return _replace(best, consumed_at=t)
            # another process claimed it first: look again

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """A read outside any write transaction (used by the pending queue)."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def get(self, grant_id: str) -> Grant | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM grants WHERE id = ?", (grant_id,)).fetchone()
        return None if row is None else _row_grant(row)

    def list(self, active_only: bool = True, now: float | None = None) -> list[Grant]:
        t = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute("SELECT * FROM grants ORDER BY granted_at, id").fetchall()
        grants = [_row_grant(r) for r in rows]
        return [g for g in grants if g.active(t)] if active_only else grants

    def revoke(self, grant_id: str, by: str = "user", now: float | None = None) -> Grant:
        """Revoke a grant (and remove its rules line). Unknown or already-ended grants are
        refused with a one-line reason."""
        t = time.time() if now is None else now
        with self.transaction() as db:
            row = db.execute("SELECT * FROM grants WHERE id = ?", (grant_id,)).fetchone()
            if row is None:
                raise refuse(f"no grant with id {grant_id!r}", "see `corral grants list --all`")
            g = _row_grant(row)
            if g.revoked_at is not None:
                raise refuse(f"grant {grant_id} was already revoked")
            if g.consumed_at is not None:
                raise refuse(f"grant {grant_id} was a once-grant and is already used")
            db.execute("UPDATE grants SET revoked_at = ?, revoked_by = ? WHERE id = ?",
                       (t, by, grant_id))
            rule = row[13]
            if rule is not None:
                others = db.execute(
                    "SELECT COUNT(*) FROM grants WHERE rule = ? AND id != ? AND revoked_at IS "
                    "NULL", (rule, grant_id)).fetchone()[0]
                if not others:
                    rulesfile.remove_rule(self.rules_file, rule)
        return _replace(g, revoked_at=t, revoked_by=by)

    def rule_of(self, grant_id: str) -> str | None:
        """The rules-file line a persistent grant wrote (None for the other scopes)."""
        with self._lock:
            row = self._db.execute("SELECT rule FROM grants WHERE id = ?",
                                   (grant_id,)).fetchone()
        return None if row is None else row[0]


def _statements() -> list[str]:
    return [s.strip() for s in SCHEMA.split(";") if s.strip()]


def _kind(value: Kind | str) -> Kind:
    try:
        return Kind(value)
    except ValueError:
        raise refuse(f"unknown grant kind {value!r}",
                     "expected shell, network, mcp, patch or escalation") from None


def _scope(value: Scope | str) -> Scope:
    try:
        return Scope(value)
    except ValueError:
        raise refuse(f"unknown grant scope {value!r}",
                     "expected once, session, project or persistent") from None


def _validate(kind: Kind, scope: Scope, pat: tuple[str, ...], session_id: str | None,
              project: str | None, granted_by: str, expires_at: float | None,
              now: float) -> None:
    if granted_by not in GRANTED_BY:
        raise refuse(f"unknown granter {granted_by!r}", "expected " + ", ".join(GRANTED_BY))
    if not pat or not all(isinstance(t, str) for t in pat):
        raise refuse("a grant needs a non-empty pattern of strings")
    try:
        for t in pat:
            t.encode("utf-8")
    except UnicodeEncodeError:
        raise refuse("a grant pattern must be valid text (it holds a lone surrogate)") from None
    if scope is Scope.SESSION and not session_id:
        raise refuse("a session grant needs the session id")
    if scope is Scope.PROJECT and (not project or not os.path.isabs(project)):
        raise refuse("a project grant needs the project's absolute path")
    if expires_at is not None and expires_at <= now:
        raise refuse("the grant's expiry is not in the future")
    if kind in (Kind.SHELL, Kind.ESCALATION):
        reason = why_too_broad(pat)
        if reason:
            raise refuse(f"refusing to grant `{shown(pat)}`: {reason}",
                         "approve this one command instead")
    if kind is Kind.ESCALATION:
        if scope not in (Scope.ONCE, Scope.SESSION):
            raise refuse("escalation (running outside the sandbox) can be granted once or for "
                         "the session only")
        if granted_by == "automated_reviewer":
            raise refuse("escalation needs a person's approval, not the automated reviewer's")
    if kind is Kind.NETWORK:
        host = pat[0].strip().lower()
        if not host or host == "*" or "*" in host:
            raise refuse("a network grant needs one host name (no wildcards)")
        if len(pat) > 3:
            raise refuse("a network grant pattern is (host, port, protocol)")
    if kind is Kind.MCP and pat[0] in ("", "*"):
        raise refuse("an mcp grant needs a server name (no wildcard)")
    if scope is Scope.PERSISTENT:
        if expires_at is not None:
            raise refuse("persistent grants live in rules files, which cannot expire",
                         "grant it for the project or session with --expires instead")
        if kind is Kind.NETWORK and (len(pat) != 3 or pat[1] != "*" or pat[2] == "*"):
            raise refuse("a persistent network grant is written as network_rule(host, "
                         "protocol), which cannot pin a port",
                         "use pattern (host, *, protocol), or grant for the project")


def _rule_for(grant: Grant) -> str | None:
    if grant.scope is not Scope.PERSISTENT:
        return None
    if grant.kind is Kind.SHELL:
        return rulesfile.prefix_rule_text(grant.pattern)
    if grant.kind is Kind.NETWORK:
        return rulesfile.network_rule_text(grant.pattern[0].lower(), grant.pattern[2])
    return None  # mcp and patch grants live in the store only


def _head(kind: Kind, pattern: tuple[str, ...]) -> str:
    """The indexed first token (hosts compare case-insensitively, without a trailing dot)."""
    return pattern[0].lower().rstrip(".") if kind is Kind.NETWORK else pattern[0]


def _in_scope(g: Grant, session_id: str | None, project: str | None) -> bool:
    if g.scope is Scope.PERSISTENT:
        return True
    if g.scope is Scope.PROJECT:
        return project is not None and g.project == project
    if g.scope is Scope.SESSION:
        return session_id is not None and g.session_id == session_id
    return g.session_id is None or g.session_id == session_id


def _row_grant(row: tuple[object, ...]) -> Grant:
    (gid, scope, kind, pattern, session_id, project, granted_by, granted_at, expires_at,
     revoked_at, revoked_by, consumed_at, note, _rule, _indexed) = row
    return Grant(
        id=str(gid), scope=Scope(str(scope)), kind=Kind(str(kind)),
        pattern=tuple(json.loads(str(pattern))),
        session_id=None if session_id is None else str(session_id),
        project=None if project is None else str(project), granted_by=str(granted_by),
        granted_at=float(granted_at),  # type: ignore[arg-type]
        expires_at=None if expires_at is None else float(expires_at),  # type: ignore[arg-type]
        revoked_at=None if revoked_at is None else float(revoked_at),  # type: ignore[arg-type]
        revoked_by=None if revoked_by is None else str(revoked_by),
        consumed_at=None if consumed_at is None else float(consumed_at),  # type: ignore[arg-type]
        note=str(note),
    )


def _replace(g: Grant, **changes: object) -> Grant:
    from dataclasses import replace

    return replace(g, **changes)  # type: ignore[arg-type]
