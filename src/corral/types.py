"""Data shared between the controls (rules, approvals, review, sandbox, netproxy, telemetry).

These are plain data: no control imports another control, only these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
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


@dataclass(frozen=True)
class Provenance:
    """Where a decision came from: ``"<file>:<line>"``, ``"heuristic:<name>"``,
    ``"requirements"``, ``"unparsed"``, ``"automated_reviewer"``, ``"user"``, ``"hook"``."""

    source: str
    justification: str | None = None


@dataclass(frozen=True)
class Action:
    """One thing an agent wants to do, as the pipeline sees it."""

    kind: ActionKind
    argv: tuple[str, ...] = ()
    cwd: str = "."
    session_id: str | None = None
    call_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The pipeline's answer for an action, with every reason that contributed."""

    decision: RuleDecision
    reasons: tuple[Provenance, ...] = ()
    summary: str = ""
