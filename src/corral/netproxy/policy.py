"""Domain policy: which hosts are allowed, denied, limited to read-only methods, or must be asked.

Plain data in (patterns from config, requirements and ``network_rule`` entries), a verdict out.
Deny beats everything; ``limited`` beats ``allow`` (narrowing wins); no match means ``ask``,
except for the exact ``host:port`` of an ``allow_local`` entry, which needs no domain rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from corral.errors import CorralError
from corral.netproxy.addresses import Host, HostError, normalize_host

Verdict = Literal["allow", "deny", "limited", "prompt"]
Protocol = Literal["http", "https", "socks5_tcp", "socks5_udp"]
PROTOCOLS: tuple[str, ...] = ("http", "https", "socks5_tcp", "socks5_udp")
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_RULE_DECISIONS: dict[str, Verdict] = {
    "allow": "allow",
    "deny": "deny",
    "forbidden": "deny",
    "limited": "limited",
    "prompt": "prompt",
}


@dataclass(frozen=True)
class DomainPattern:
    """``example.com`` (exact), ``*.example.com`` (subdomains only), ``**.example.com`` (apex and
    subdomains), or ``*`` (every host)."""

    kind: Literal["exact", "sub", "apex_sub", "any"]
    base: str
    text: str

    @classmethod
    def parse(cls, text: str) -> DomainPattern:
        raw = text.strip()
        if raw == "*":
            return cls("any", "", raw)
        kind: Literal["exact", "sub", "apex_sub"] = "exact"
        rest = raw
        if raw.startswith("**."):
            kind, rest = "apex_sub", raw[3:]
        elif raw.startswith("*."):
            kind, rest = "sub", raw[2:]
        if "*" in rest:
            raise CorralError(
                "network",
                f"bad domain pattern {text!r}",
                "use example.com, *.example.com (subdomains) or **.example.com (apex too)",
            )
        try:
            base = normalize_host(rest).name
        except HostError as exc:
            raise CorralError("network", f"bad domain pattern {text!r}: {exc}") from exc
        return cls(kind, base, raw)

    def matches(self, host: str) -> bool:
        """``host`` must already be normalised (see ``normalize_host``)."""
        if self.kind == "any":
            return True
        if self.kind == "exact":
            return host == self.base
        is_sub = host.endswith("." + self.base)
        return is_sub or (self.kind == "apex_sub" and host == self.base)


@dataclass(frozen=True)
class DomainRule:
    """One pattern with its verdict, where it came from, and optionally one protocol."""

    pattern: DomainPattern
    verdict: Verdict
    source: str
    managed: bool = False
    protocol: str | None = None

    def applies(self, host: str, protocol: str) -> bool:
        if self.protocol is not None and self.protocol != protocol:
            return False
        return self.pattern.matches(host)


@dataclass(frozen=True)
class LocalGrant:
    """An ``allow_local`` entry: ``host:port`` (``port`` may be ``*``) that may be non-public."""

    host: Host
    port: int | None
    source: str

    @classmethod
    def parse(cls, text: str, source: str) -> LocalGrant:
        raw = text.strip()
        host_part, sep, port_part = raw.rpartition(":")
        if not sep or not host_part or (":" in host_part and not host_part.startswith("[")):
            raise CorralError(
                "network",
                f"bad allow_local entry {text!r}",
                "write host:port, e.g. 127.0.0.1:8080 or [::1]:8080 or localhost:*",
            )
        port: int | None
        if port_part == "*":
            port = None
        else:
            if not (port_part.isascii() and port_part.isdigit()) or not 0 < int(port_part) < 65536:
                raise CorralError("network", f"bad port in allow_local entry {text!r}")
            port = int(port_part)
        try:
            host = normalize_host(host_part)
        except HostError as exc:
            raise CorralError("network", f"bad allow_local entry {text!r}: {exc}") from exc
        return cls(host, port, source)

    def covers(self, name: str, ip: object, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        return self.host.name == name or (self.host.ip is not None and self.host.ip == ip)

    def names_exactly(self, host: Host, port: int) -> bool:
        """This entry is ``host:port`` as asked for (same spelling class, same port): a name
        that merely resolves to the listed address, or a ``*`` port, does not count."""
        return self.port == port and (
            self.host.name == host.name if host.ip is None else self.host.ip == host.ip)


@dataclass(frozen=True)
class PolicyVerdict:
    """``action`` is allow, deny or ask; ``limited`` restricts methods to GET/HEAD/OPTIONS."""

    action: Literal["allow", "deny", "ask"]
    source: str
    reason: str
    limited: bool = False


@dataclass(frozen=True)
class NetworkPolicy:
    """Everything the proxy needs to decide, as plain data.

    ``allowed_ports``: when set, only these ports (plus ports named in ``allow_local``) may be
    reached. ``allow_udp`` enables SOCKS5 UDP ASSOCIATE (refused otherwise).
    """

    rules: tuple[DomainRule, ...] = ()
    allow_local: tuple[LocalGrant, ...] = ()
    managed_only: bool = False
    managed_source: str = "managed"
    allow_udp: bool = False
    allowed_ports: frozenset[int] | None = None
    ask_timeout: float = 300.0
    idle_timeout: float = 300.0  # seconds a tunnel or body may move nothing; 0 = no limit

    def evaluate(self, host: str, protocol: str) -> PolicyVerdict:
        """Decide for a normalised host name; see module docstring for the order."""
        matching = [r for r in self.rules if r.applies(host, protocol)]
        if self.managed_only:
            matching = [r for r in matching if r.managed or r.verdict != "allow"]
        for r in matching:
            if r.verdict == "deny":
                return PolicyVerdict("deny", r.source, "denied")
        prompts = [r for r in matching if r.verdict == "prompt"]
        if prompts:
            return PolicyVerdict("ask", prompts[0].source, "not_allowed (prompt rule)")
        allows = [r for r in matching if r.verdict == "allow"]
        limits = [r for r in matching if r.verdict == "limited"]
        if self.managed_only and not any(r.managed for r in allows + limits):
            return PolicyVerdict("deny", self.managed_source, "not_allowed_managed")
        if limits:
            return PolicyVerdict("allow", limits[0].source, "limited", limited=True)
        if allows:
            return PolicyVerdict("allow", allows[0].source, "allowed")
        return PolicyVerdict("ask", "policy", "not_allowed")

    def evaluate_target(self, host: Host, port: int, protocol: str) -> PolicyVerdict:
        """``evaluate`` for ``host:port``. An ``allow_local`` entry naming exactly this host and
        port is enough when no domain rule matched: listing a local server is the user's whole
        intent (a deny or prompt rule, or a limited one, still applies)."""
        verdict = self.evaluate(host.name, protocol)
        if verdict.reason not in ("not_allowed", "not_allowed_managed"):
            return verdict
        for g in self.allow_local:
            if g.names_exactly(host, port):
                return PolicyVerdict("allow", g.source, "allow_local")
        return verdict

    def local_grant(self, name: str, ip: object, port: int) -> LocalGrant | None:
        for g in self.allow_local:
            if g.covers(name, ip, port):
                return g
        return None

    def port_allowed(self, name: str, port: int) -> bool:
        if not 0 < port < 65536:
            return False
        if self.allowed_ports is None or port in self.allowed_ports:
            return True
        return any(g.port == port and g.host.name == name for g in self.allow_local)


def _domain_rules(
    domains: Mapping[str, Any], source: str, managed: bool
) -> list[DomainRule]:
    out = []
    for pattern, verdict in domains.items():
        if verdict not in ("allow", "deny", "limited"):
            raise CorralError(
                "network",
                f"domain {pattern!r} has decision {verdict!r}",
                "use allow, deny or limited",
            )
        out.append(DomainRule(DomainPattern.parse(pattern), verdict, source, managed))
    return out


def network_rules(entries: Iterable[tuple[str, str | None, str, str]]) -> list[DomainRule]:
    """Rules from ``network_rule(host=, protocol=, decision=)`` in rules files.

    Each entry is ``(host pattern, protocol or None/"*", decision, source "file:line")``.
    """
    out = []
    for host, protocol, decision, source in entries:
        verdict = _RULE_DECISIONS.get(decision)
        if verdict is None:
            raise CorralError("network", f"{source}: network_rule decision {decision!r} unknown")
        proto = None if protocol in (None, "", "*", "any") else protocol
        if proto is not None and proto not in PROTOCOLS:
            raise CorralError(
                "network",
                f"{source}: network_rule protocol {protocol!r} unknown",
                f"use one of {', '.join(PROTOCOLS)}",
            )
        out.append(DomainRule(DomainPattern.parse(host), verdict, source, protocol=proto))
    return out


def rule_entries(rules: Iterable[Any]) -> list[tuple[str, str | None, str, str]]:
    """Adapt ``corral.rules`` NetworkRule objects (host, protocol, decision, source)."""
    out: list[tuple[str, str | None, str, str]] = []
    for r in rules:
        decision = getattr(r.decision, "value", r.decision)
        out.append((str(r.host), str(r.protocol), str(decision), str(r.source or "rules")))
    return out


@dataclass
class PolicyInputs:
    """Raw inputs, as found in config/requirements (handy for building a policy in tests)."""

    domains: dict[str, str] = field(default_factory=dict)
    allow_local: list[str] = field(default_factory=list)
    managed_domains: dict[str, str] = field(default_factory=dict)
    managed_allow_local: list[str] = field(default_factory=list)
    managed_only: bool = False
    network_rules: list[tuple[str, str | None, str, str]] = field(default_factory=list)
    allow_udp: bool = False
    allowed_ports: list[int] | None = None
    ask_timeout: float = 300.0
    idle_timeout: float = 300.0
    user_source: str = "config"
    managed_source: str = "managed"


def build_policy(inputs: PolicyInputs) -> NetworkPolicy:
    """Compile raw inputs; with ``managed_only`` user allow entries and allow_local are dropped."""
    rules = _domain_rules(inputs.managed_domains, inputs.managed_source, managed=True)
    rules += _domain_rules(inputs.domains, inputs.user_source, managed=False)
    rules += network_rules(inputs.network_rules)
    grants = [LocalGrant.parse(t, inputs.managed_source) for t in inputs.managed_allow_local]
    if not inputs.managed_only:
        grants += [LocalGrant.parse(t, inputs.user_source) for t in inputs.allow_local]
    ports = frozenset(inputs.allowed_ports) if inputs.allowed_ports is not None else None
    return NetworkPolicy(
        rules=tuple(rules),
        allow_local=tuple(grants),
        managed_only=inputs.managed_only,
        managed_source=inputs.managed_source,
        allow_udp=inputs.allow_udp,
        allowed_ports=ports,
        ask_timeout=inputs.ask_timeout,
        idle_timeout=inputs.idle_timeout,
    )


def policy_from_config(
    cfg: Any, network_rule_entries: Iterable[tuple[str, str | None, str, str]] = ()
) -> NetworkPolicy:
    """Build the policy from an ``EffectiveConfig`` (duck-typed to keep this package standalone)."""
    req = cfg.requirements
    managed_src = "managed"
    if req.get("network") is not None:
        managed_src = f"managed:{req.source_of('network.domains')}"
    origin = cfg.origin("network.domains") if hasattr(cfg, "origin") else None
    user_src = origin.describe() if origin is not None else "config"
    return build_policy(
        PolicyInputs(
            domains=dict(cfg.get("network.domains", {}) or {}),
            allow_local=list(cfg.get("network.allow_local", []) or []),
            managed_domains=dict(req.get("network.domains", {}) or {}),
            managed_allow_local=list(req.get("network.allow_local", []) or []),
            managed_only=bool(req.get("network.managed_domains_only", False)),
            network_rules=list(network_rule_entries),
            allow_udp=bool(cfg.get("network.allow_udp", False)),
            ask_timeout=float(cfg.get("network.ask_timeout_seconds", 300.0)),
            idle_timeout=float(cfg.get("network.idle_timeout_seconds", 300.0)),
            user_source=user_src,
            managed_source=managed_src,
        )
    )
