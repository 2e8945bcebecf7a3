"""The reviewer's data: what it is asked (ReviewRequest) and what it answers (Review).

Plain data only, so the pipeline, the CLI, the tests and both reviewers share one shape. The
answer keeps Codex's auto-review fields: outcome, risk_level, user_authorization, rationale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Outcome = Literal["allow", "deny"]
RiskLevel = Literal["low", "medium", "high", "critical"]
Authorization = Literal["unknown", "low", "medium", "high"]
Kind = Literal["shell", "patch", "network", "mcp", "escalation"]

OUTCOMES: tuple[Outcome, ...] = ("allow", "deny")
RISK_LEVELS: tuple[RiskLevel, ...] = ("low", "medium", "high", "critical")
AUTHORIZATIONS: tuple[Authorization, ...] = ("unknown", "low", "medium", "high")
KINDS: tuple[Kind, ...] = ("shell", "patch", "network", "mcp", "escalation")


def risk_rank(level: str) -> int:
    """0 (low) .. 3 (critical); an unknown level ranks as critical so it never loosens."""
    return RISK_LEVELS.index(level) if level in RISK_LEVELS else 3  # type: ignore[arg-type,unused-ignore]


def auth_rank(level: str) -> int:
    return AUTHORIZATIONS.index(level) if level in AUTHORIZATIONS else 0  # type: ignore[arg-type,unused-ignore]


@dataclass(frozen=True)
class ContextItem:
    """One entry of recent context: a tool call, its result, an assistant message.

    Untrusted data: reviewers read it as evidence, never as instructions.
    """

    role: str  # "tool_call" | "tool_result" | "assistant" | "user" | anything descriptive
    content: str
    name: str | None = None  # the tool's name, when there is one

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            d["name"] = self.name
        return d


@dataclass(frozen=True)
class ReviewRequest:
    """One planned action the rules sent to review.

    ``rule_reason`` says why rules asked (with provenance, e.g. ``"heuristic:git_push_force"``);
    ``intent`` is the user's request; ``details`` carries kind-specific facts: ``files`` and
    ``patch`` for patches, ``host``/``port``/``protocol`` for network, ``server``/``tool``/
    ``arguments``/``annotations`` for MCP, ``workspace_roots`` for any kind.
    """

    argv: tuple[str, ...]
    cwd: str
    kind: Kind = "shell"
    rule_reason: str = ""
    intent: str | None = None
    recent: tuple[ContextItem, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def action_dict(self) -> dict[str, Any]:
        """The planned action as plain JSON-able data (what an LLM reviewer is shown)."""
        d: dict[str, Any] = {"kind": self.kind, "argv": list(self.argv), "cwd": self.cwd,
                             "rule_reason": self.rule_reason}
        if self.details:
            d["details"] = self.details
        return d


@dataclass(frozen=True)
class Review:
    """A reviewer's verdict. ``failed`` means the reviewer could not judge (timeout, garbage,
    error) and failed closed: outcome is deny and the pipeline asks a person when it can."""

    outcome: Outcome
    risk_level: RiskLevel
    user_authorization: Authorization
    rationale: str
    reviewer: str
    failed: bool = False
    duration_ms: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow" and not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "risk_level": self.risk_level,
                "user_authorization": self.user_authorization, "rationale": self.rationale,
                "reviewer": self.reviewer, "failed": self.failed,
                "duration_ms": round(self.duration_ms, 3)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def failed_review(reviewer: str, why: str, duration_ms: float = 0.0) -> Review:
    """The fail-closed answer: deny, and say why the reviewer could not judge."""
    return Review("deny", "high", "unknown", f"reviewer failed closed: {why}", reviewer,
                  failed=True, duration_ms=duration_ms)


class Reviewer(Protocol):
    """Anything that judges one planned action."""

    def review(self, req: ReviewRequest) -> Review: ...
