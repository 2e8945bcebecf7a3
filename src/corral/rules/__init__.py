"""Command rules: Codex-compatible ``.rules`` files, complete shell analysis, decisions with
provenance.

Public surface::

    load_policy(cfg, extra_files=(), include_configured=True) -> Policy
    Policy.check(argv, resolve_host_executables=False) -> dict      # codex execpolicy JSON
    Policy.network_rules -> list[NetworkRule]                        # for the proxy
    Policy.load_errors -> list[RulesLoadError]                       # broken sources (file:line)
    decide(argv, policy, approval_policy="on-request") -> RuntimeDecision
"""

from corral.rules.decide import APPROVAL_POLICIES, Match, RuntimeDecision, decide
from corral.rules.model import NetworkRule, Policy, PrefixRule, RuleMatch, RulesLoadError
from corral.rules.sources import load_policy, rule_files

__all__ = [
    "APPROVAL_POLICIES",
    "Match",
    "NetworkRule",
    "Policy",
    "PrefixRule",
    "RuleMatch",
    "RulesLoadError",
    "RuntimeDecision",
    "decide",
    "load_policy",
    "rule_files",
]
