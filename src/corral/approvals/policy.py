"""Approval policies: may a prompt of this category be shown to someone, or is it refused?

Categories: ``rules`` (a rule said prompt), ``heuristic`` (an unmatched command looked risky),
``sandbox`` (retry outside the sandbox after a denial), ``network``, ``mcp``, ``permissions``
(a request for more permissions), ``escalation`` (run outside the sandbox), ``patch``.

Whether a prompt is *needed* is the rules' decision; this only says whether one may be shown.
A prompt that may not be shown is a refusal (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping

from corral.errors import CorralError
from corral.record import Frozen

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:
    from typing import Any

CONTROL = "approvals"
POLICY_NAMES = ("untrusted", "on-request", "on-failure", "never")
CATEGORIES = ("rules", "heuristic", "sandbox", "network", "mcp", "permissions", "escalation",
              "patch")
GRANULAR_KEYS = ("sandbox_approval", "rules", "mcp_elicitations", "request_permissions",
                 "network", "escalation", "patch")


def refuse(message: str, hint: str | None = None) -> CorralError:
    """The one-line refusal of this control (here, not in ``model``: every ``corral exec``
    reads its approval policy, and ``model`` brings datetime, enum and dataclasses)."""
    return CorralError(CONTROL, message, hint)


# Which granular flag governs each category.
_FLAG_OF = {
    "rules": "rules", "heuristic": "sandbox_approval", "sandbox": "sandbox_approval",
    "network": "network", "mcp": "mcp_elicitations", "permissions": "request_permissions",
    "escalation": "escalation", "patch": "patch",
}


class ApprovalPolicy(Frozen):
    """``untrusted`` | ``on-request`` | ``on-failure`` | ``never`` | ``granular``."""

    _fields = ("name", "flags")
    name: str
    flags: Mapping[str, bool]

    def __init__(self, name: str = "on-request", flags: Mapping[str, bool] | None = None
                 ) -> None:
        self._set(name=name, flags={} if flags is None else flags)

    @classmethod
    def from_config(cls, value: Any) -> ApprovalPolicy:
        """From the config value: a name, or ``{granular = {flag = bool, ...}}``.

        Missing granular flags: ``sandbox_approval``, ``rules`` and ``mcp_elicitations``
        default to true, ``request_permissions`` to false, and ``network``, ``escalation`` and
        ``patch`` follow ``sandbox_approval``."""
        if value is None:
            return cls()
        if isinstance(value, ApprovalPolicy):
            return value
        if isinstance(value, str):
            if value in POLICY_NAMES:
                return cls(name=value)
            if value == "granular":
                return cls._granular({})
            raise refuse(f"unknown approval_policy {value!r}",
                         "expected untrusted, on-request, on-failure, never or "
                         "{ granular = { ... } }")
        if isinstance(value, Mapping):
            if set(value) != {"granular"} or not isinstance(value["granular"], Mapping):
                raise refuse("approval_policy as a table must be { granular = { ... } }",
                             f"got keys {sorted(map(str, value))}")
            return cls._granular(value["granular"])
        raise refuse(f"approval_policy must be a name or a granular table, not "
                      f"{type(value).__name__}")

    @classmethod
    def _granular(cls, raw: Mapping[str, Any]) -> ApprovalPolicy:
        unknown = sorted(set(map(str, raw)) - set(GRANULAR_KEYS))
        if unknown:
            raise refuse(f"unknown granular approval flag(s) {', '.join(unknown)}",
                         "known: " + ", ".join(GRANULAR_KEYS))
        for k, v in raw.items():
            if not isinstance(v, bool):
                raise refuse(f"granular approval flag {k} must be true or false, not {v!r}")
        sandbox = raw.get("sandbox_approval", True)
        flags = {
            "sandbox_approval": sandbox, "rules": raw.get("rules", True),
            "mcp_elicitations": raw.get("mcp_elicitations", True),
            "request_permissions": raw.get("request_permissions", False),
            "network": raw.get("network", sandbox), "escalation": raw.get("escalation", sandbox),
            "patch": raw.get("patch", sandbox),
        }
        return cls(name="granular", flags=flags)

    def may_prompt(self, category: str) -> bool:
        """May a question of this category be put to a person (or reviewer)?"""
        if category not in _FLAG_OF:
            raise refuse(f"unknown approval category {category!r}",
                         "expected " + ", ".join(CATEGORIES))
        if self.name == "never":
            return False
        if self.name == "granular":
            return bool(self.flags.get(_FLAG_OF[category], False))
        return True

    def refusal(self, category: str) -> str:
        """Why a prompt of this category is refused under this policy (one line)."""
        if self.name == "never":
            return "approval required by policy, but approval_policy is never"
        flag = _FLAG_OF.get(category, category)
        return (f"approval required by policy, but approval_policy granular sets {flag} = "
                "false")

    def to_config(self) -> str | dict[str, Any]:
        return {"granular": dict(self.flags)} if self.name == "granular" else self.name
