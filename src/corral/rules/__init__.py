"""Command rules: Codex-compatible ``.rules`` files, complete shell analysis, decisions with
provenance.

Public surface::

    load_policy(cfg, extra_files=(), include_configured=True) -> Policy
    Policy.check(argv, resolve_host_executables=False) -> dict      # codex execpolicy JSON
    Policy.network_rules -> list[NetworkRule]                        # for the proxy
    Policy.load_errors -> list[RulesLoadError]                       # broken sources (file:line)
    decide(argv, policy, approval_policy="on-request") -> RuntimeDecision

Names are imported lazily so ``corral policy check`` does not pay for the shell analyser.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # importing typing costs ~5 ms of `corral policy check`'s cold start
if TYPE_CHECKING:
    from typing import Any

    from corral.rules.model import NetworkRule as NetworkRule
    from corral.rules.model import Policy as Policy
    from corral.rules.model import PrefixRule as PrefixRule
    from corral.rules.model import RuleMatch as RuleMatch
    from corral.rules.model import RulesLoadError as RulesLoadError
    from corral.rules.runtime import APPROVAL_POLICIES as APPROVAL_POLICIES
    from corral.rules.runtime import Match as Match
    from corral.rules.runtime import RuntimeDecision as RuntimeDecision
    from corral.rules.runtime import decide as decide
    from corral.rules.sources import load_policy as load_policy
    from corral.rules.sources import rule_files as rule_files

_WHERE = {
    "APPROVAL_POLICIES": "runtime", "Match": "runtime", "RuntimeDecision": "runtime",
    "decide": "runtime", "NetworkRule": "model", "Policy": "model", "PrefixRule": "model",
    "RuleMatch": "model", "RulesLoadError": "model", "load_policy": "sources",
    "rule_files": "sources",
}

__all__ = [
    "APPROVAL_POLICIES", "Match", "NetworkRule", "Policy", "PrefixRule", "RuleMatch",
    "RulesLoadError", "RuntimeDecision", "decide", "load_policy", "rule_files",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'corral.rules' has no attribute {name!r}")
    return getattr(importlib.import_module(f"corral.rules.{module}"), name)
