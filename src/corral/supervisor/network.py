"""The managed proxy for a session: one place that adds ``--allow-domain``/``--deny-domain`` and an
agent preset's hosts to the configured network policy, and starts the proxy on a unix socket the
sandbox bridges to loopback.

Extra rules are never managed: under ``network.managed_domains_only`` the policy itself ignores
their allows (only the administrator's list may allow) and keeps their denials, so every caller
(``corral run``, ``corral exec``, ``corral sandbox --network proxy``) gets the same answer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

HTTP_PORT, SOCKS_PORT = 3128, 1080  # inside the sandbox's own network namespace


def with_domains(policy: Any, allow: Sequence[str] = (), deny: Sequence[str] = (),
                 preset: tuple[str, Sequence[str]] | None = None) -> tuple[Any, list[str]]:
    """``policy`` plus the extra rules, and the warning lines for allows that
    ``managed_domains_only`` makes void (denials always hold)."""
    from corral.errors import CorralError
    from corral.netproxy import DomainPattern
    from corral.netproxy.policy import DomainRule

    def rule(pattern: str, verdict: Literal["allow", "deny"], source: str) -> Any:
        try:
            return DomainRule(DomainPattern.parse(pattern), verdict, source)
        except (ValueError, CorralError) as exc:
            msg = exc.message if isinstance(exc, CorralError) else str(exc)
            raise CorralError("network", f"bad domain pattern {pattern!r}: {msg}") from None

    name, hosts = preset or ("", ())
    extra = [rule(h, "allow", f"preset {name}") for h in hosts]
    extra += [rule(d, "allow", "--allow-domain") for d in allow]
    extra += [rule(d, "deny", "--deny-domain") for d in deny]
    warnings: list[str] = []
    if policy.managed_only:
        # what the administrator's own list does not allow anyway (a wildcard always counts)
        void = [d for d in (*hosts, *allow)
                if "*" in d or policy.evaluate(d.lower(), "https").action != "allow"]
        if void:
            warnings.append(f"corral: network: warning: {', '.join(void)} not allowed: "
                            "network.managed_domains_only (only the administrator's domains "
                            "may be allowed)")
    return replace(policy, rules=policy.rules + tuple(extra)), warnings


def start_proxy(cfg: Any, sock: Path, *, allow: Sequence[str] = (), deny: Sequence[str] = (),
                preset: tuple[str, Sequence[str]] | None = None,
                ask: Callable[[Any], Any] | None = None,
                on_decision: Callable[[Any], None] | None = None) -> tuple[Any, Any]:
    """(running proxy, the sandbox's ``NetworkPlan`` for it). ``ask`` answers unknown hosts
    (None: denied); ``on_decision`` records each decision."""
    from corral.netproxy import Listen, Proxy, policy_from_config, proxy_env
    from corral.sandbox import NetworkMode, NetworkPlan

    policy, warnings = with_domains(policy_from_config(cfg), allow, deny, preset)
    for w in warnings:
        print(w, file=sys.stderr)
    proxy = Proxy(policy, ask, on_decision=on_decision,
                  listen=Listen(http=None, socks=None, unix=str(sock)))
    proxy.start()
    net = NetworkPlan(mode=NetworkMode.PROXY, proxy_socket=sock,
                      proxy_env=proxy_env(HTTP_PORT, SOCKS_PORT),
                      bridge_ports=(HTTP_PORT, SOCKS_PORT), allow_domains=tuple(allow),
                      deny_domains=tuple(deny))
    return proxy, net
