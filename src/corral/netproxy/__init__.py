"""Managed network proxy: HTTP/CONNECT + SOCKS5, domain policy, SSRF-safe connects.

Public surface::

    policy = build_policy(PolicyInputs(domains={"pypi.org": "allow"}))   # or policy_from_config
    proxy = Proxy(policy, ask=callback, on_decision=hook)
    endpoints = proxy.start()          # own thread; proxy.stop() to end
    env = proxy_env(endpoints.http[1], endpoints.socks[1])
"""

from __future__ import annotations

from corral.netproxy.addresses import Host, HostError, is_public, non_public_reason, normalize_host
from corral.netproxy.decide import AskAnswer, AskCallback, NetworkQuestion
from corral.netproxy.env import proxy_env
from corral.netproxy.gate import Blocked, NetworkDecision
from corral.netproxy.http import Limits
from corral.netproxy.mitm import Mitm
from corral.netproxy.policy import (
    DomainPattern,
    NetworkPolicy,
    PolicyInputs,
    build_policy,
    network_rules,
    policy_from_config,
    rule_entries,
)
from corral.netproxy.server import Endpoints, Listen, Proxy

__all__ = [
    "AskAnswer",
    "AskCallback",
    "Blocked",
    "DomainPattern",
    "Endpoints",
    "Host",
    "HostError",
    "Limits",
    "Listen",
    "Mitm",
    "NetworkDecision",
    "NetworkPolicy",
    "NetworkQuestion",
    "PolicyInputs",
    "Proxy",
    "build_policy",
    "is_public",
    "network_rules",
    "non_public_reason",
    "normalize_host",
    "policy_from_config",
    "proxy_env",
    "rule_entries",
]
