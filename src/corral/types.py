"""Data shared between the controls (rules, approvals, review, sandbox, netproxy, telemetry).

These are plain data: no control imports another control, only these types.
"""

from __future__ import annotations

from enum import StrEnum

from corral.record import Frozen

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:
    from typing import Any


class RuleDecision(StrEnum):
    """What the rules say about an action. Ordered: allow < prompt < forbidden."""

    ALLOW = "allow"
    PROMPT = "prompt"
    FORBIDDEN = "forbidden"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @classmethod
    def strictest(cls, decisions: list[RuleDecision]) -> RuleDecision:
        return max(decisions, key=lambda d: d.severity, default=cls.ALLOW)


_SEVERITY = {RuleDecision.ALLOW: 0, RuleDecision.PROMPT: 1, RuleDecision.FORBIDDEN: 2}


class ActionKind(StrEnum):
    SHELL = "shell"
    PATCH = "patch"
    NETWORK = "network"
    MCP = "mcp"
    ESCALATION = "escalation"


class Provenance(Frozen):
    """Where a decision came from: ``"<file>:<line>"``, ``"heuristic:<name>"``,
    ``"requirements"``, ``"unparsed"``, ``"automated_reviewer"``, ``"user"``, ``"hook"``."""

    _fields = ("source", "justification")
    source: str
    justification: str | None

    def __init__(self, source: str, justification: str | None = None) -> None:
        self._set(source=source, justification=justification)


class Action(Frozen):
    """One thing an agent wants to do, as the pipeline sees it."""

    _fields = ("kind", "argv", "cwd", "session_id", "call_id", "details")
    kind: ActionKind
    argv: tuple[str, ...]
    cwd: str
    session_id: str | None
    call_id: str | None
    details: dict[str, Any]

    def __init__(self, kind: ActionKind, argv: tuple[str, ...] = (), cwd: str = ".",
                 session_id: str | None = None, call_id: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        self._set(kind=kind, argv=argv, cwd=cwd, session_id=session_id, call_id=call_id,
                  details={} if details is None else details)


class Decision(Frozen):
    """The pipeline's answer for an action, with every reason that contributed."""

    _fields = ("decision", "reasons", "summary")
    decision: RuleDecision
    reasons: tuple[Provenance, ...]
    summary: str

    def __init__(self, decision: RuleDecision, reasons: tuple[Provenance, ...] = (),
                 summary: str = "") -> None:
        self._set(decision=decision, reasons=reasons, summary=summary)
