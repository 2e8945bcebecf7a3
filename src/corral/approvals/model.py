"""Plain data for approvals: scopes, kinds, choices, grants, questions, and time parsing.

No I/O here: the store, queue, prompt and tokens modules take and return these values.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from corral.approvals.policy import CONTROL as CONTROL  # the control's name and
from corral.approvals.policy import refuse as refuse  # one-line refusal


class Scope(StrEnum):
    """How long a grant lasts."""

    ONCE = "once"
    SESSION = "session"
    PROJECT = "project"
    PERSISTENT = "persistent"


class Kind(StrEnum):
    """What a grant covers. Grants of one kind never satisfy a request of another kind."""

    SHELL = "shell"
    NETWORK = "network"
    MCP = "mcp"
    PATCH = "patch"
    ESCALATION = "escalation"


GRANTED_BY = ("user", "automated_reviewer", "hook", "remote")


class Choice(StrEnum):
    """A person's answer to one question."""

    ONCE = "once"
    SESSION = "session"
    PROJECT = "project"
    PERSISTENT = "persistent"
    DENY = "deny"

    @property
    def approved(self) -> bool:
        return self is not Choice.DENY

    @property
    def scope(self) -> Scope | None:
        return None if self is Choice.DENY else Scope(self.value)


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


fmt_time = _fmt_time


@dataclass(frozen=True)
class Grant:
    """One standing approval. ``pattern`` is a token prefix: a command prefix for shell and
    escalation, ``(host, port, protocol)`` for network (``*`` matches any port or protocol),
    ``(server, tool)`` for mcp, ``(path, ...)`` for patch."""

    id: str
    scope: Scope
    kind: Kind
    pattern: tuple[str, ...]
    session_id: str | None
    project: str | None
    granted_by: str
    granted_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    note: str = ""
    revoked_by: str | None = None
    consumed_at: float | None = None

    def active(self, now: float | None = None) -> bool:
        t = time.time() if now is None else now
        if self.revoked_at is not None or self.consumed_at is not None:
            return False
        return self.expires_at is None or self.expires_at > t

    def matches(self, argv: tuple[str, ...] | list[str]) -> bool:
        """Prefix semantics: every pattern token equals the argument at its position."""
        if len(argv) < len(self.pattern):
            return False
        for i, tok in enumerate(self.pattern):
            arg = argv[i]
            if self.kind is Kind.NETWORK:
                if tok == "*" and i > 0:
                    continue
                if i == 0:
                    arg, tok = arg.lower().rstrip("."), tok.lower().rstrip(".")
            if arg != tok:
                return False
        return True

    def pattern_text(self) -> str:
        if self.kind is Kind.NETWORK:
            from corral.display import shown as safe

            host, port, proto = ([*list(self.pattern), "*", "*"])[:3]
            return safe(f"{proto}://{host}:{port}")
        from corral.approvals.broad import shown

        return shown(self.pattern)

    def event(self) -> dict[str, Any]:
        """Attributes for the ``agent.approval.grant`` event (telemetry ApprovalGrant fields).

        The event schema knows user | automated_reviewer | hook; a remote approval is a
        person's, so it is reported as ``user`` (the grant row keeps ``remote``)."""
        who = "user" if self.granted_by == "remote" else self.granted_by
        return {
            "grant_id": self.id, "scope": self.scope.value, "pattern": self.pattern_text(),
            "granted_by": who,
            "expires_unix": None if self.expires_at is None else int(self.expires_at),
        }

    def revoke_event(self, reason: str | None = None) -> dict[str, Any]:
        """Attributes for the ``agent.approval.revoke`` event (telemetry ApprovalRevoke)."""
        return {"grant_id": self.id, "scope": self.scope.value, "pattern": self.pattern_text(),
                "reason": reason or (f"revoked by {self.revoked_by}" if self.revoked_by else None)}

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "scope": self.scope.value, "kind": self.kind.value,
            "pattern": list(self.pattern), "session_id": self.session_id,
            "project": self.project, "granted_by": self.granted_by,
            "granted_at": _fmt_time(self.granted_at),
            "expires_at": None if self.expires_at is None else _fmt_time(self.expires_at),
            "revoked_at": None if self.revoked_at is None else _fmt_time(self.revoked_at),
            "revoked_by": self.revoked_by,
            "consumed_at": None if self.consumed_at is None else _fmt_time(self.consumed_at),
            "note": self.note,
        }


@dataclass(frozen=True)
class Question:
    """What a person is asked about one action.

    ``pattern`` is the prefix a session/project/persistent answer would grant (default: the
    whole ``argv``); ``reviewer_view`` is the auto-reviewer's opinion, shown when given."""

    kind: Kind
    argv: tuple[str, ...]
    reason: str
    cwd: str = ""
    session_id: str | None = None
    project: str | None = None
    reviewer_view: str | None = None
    pattern: tuple[str, ...] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def grant_pattern(self) -> tuple[str, ...]:
        return self.pattern if self.pattern is not None else self.argv

    def action(self) -> dict[str, Any]:
        """The action as canonical data: what a remote token is bound to."""
        return {
            "kind": self.kind.value, "argv": list(self.argv), "cwd": self.cwd,
            "session_id": self.session_id, "project": self.project,
            "pattern": list(self.grant_pattern), "reason": self.reason,
            "details": self.details,
        }

    def action_json(self) -> str:
        return canonical_json(self.action())

    def digest(self) -> str:
        return action_digest(self.action_json())


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def action_digest(action_json: str) -> str:
    return hashlib.sha256(action_json.encode("utf-8")).hexdigest()


_REL = re.compile(r"^\s*(\d{1,6})\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_expiry(text: str, now: float | None = None) -> float:
    """``30m``, ``1h``, ``2d``, ``1w``, ``90s``, or an absolute ISO 8601 time (a time without a
    zone is UTC) -> epoch seconds. A time not in the future is refused."""
    t = time.time() if now is None else now
    m = _REL.match(text)
    if m:
        amount = int(m.group(1))
        if amount == 0:
            raise refuse(f"expiry {text!r} is zero", "use e.g. 30m, 1h, 2d")
        return t + amount * _UNIT[m.group(2)]
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise refuse(f"cannot read expiry {text!r}",
                     "use a duration (30m, 1h, 2d, 1w) or an ISO time like "
                     "2026-12-01T18:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ts = when.timestamp()
    if ts <= t:
        raise refuse(f"expiry {text!r} is not in the future")
    return ts
