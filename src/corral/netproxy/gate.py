"""The one decision path every request goes through, for HTTP, CONNECT and SOCKS alike.

Order: normalise host -> port check -> literal address check -> domain policy (deny / allow /
ask) -> method check -> resolve -> check EVERY resolved address -> connect to exactly those
addresses. Names are resolved only after the policy allowed them, so unknown hosts leak no DNS.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from corral.netproxy.addresses import (
    Host,
    HostError,
    IPAddress,
    non_public_reason,
    normalize_host,
)
from corral.netproxy.decide import AskCallback, NetworkQuestion, SessionAsker
from corral.netproxy.policy import READ_ONLY_METHODS, NetworkPolicy
from corral.netproxy.timeouts import within as _within

log = logging.getLogger("corral.netproxy")

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Connector = Callable[[IPAddress, int], Awaitable[Streams]]

# Short, stable reason codes (shown in x-corral-block and events).
BLOCK_TEXT = {
    "denied": "denied by the network policy",
    "not_allowed": "not in the allowed domains and not approved",
    "not_allowed_managed": "not in the admin-managed allowed domains",
    "not_allowed_local": "resolves to a non-public address",
    "method_not_allowed": "limited to GET, HEAD and OPTIONS",
    "mitm_required": "limited mode needs HTTPS interception, which is off",
    "bad_host": "not a valid host",
    "bad_port": "port not allowed",
    "resolve_failed": "name did not resolve",
    "connect_failed": "connection failed",
    "udp_not_allowed": "UDP is not allowed",
    "credential_exfiltration": "carries a brokered credential's placeholder",
}


@dataclass(frozen=True)
class NetworkDecision:
    """One event per decision. Never carries a URL path or query, only host and port."""

    host: str
    port: int
    protocol: str
    method: str | None
    decision: str  # "allow" | "deny"
    source: str  # rule file:line | config | managed:... | session grant | reviewer | user | policy
    reason: str
    client: str | None = None


    def attributes(self) -> dict[str, object]:
        """Attributes of the ``agent.network.decision`` telemetry event (docs/events.md)."""
        attrs: dict[str, object] = {
            "network.policy.decision": self.decision,
            "server.address": self.host,
            "server.port": self.port,
            "network.policy.source": _source_kind(self.source),
            "network.policy.reason": f"{self.reason} [{self.source}]",
            "network.transport.protocol": "https_connect" if self.protocol == "https"
            else self.protocol,
        }
        if self.method:
            attrs["http.request.method"] = self.method
        return attrs


def _source_kind(source: str) -> str:
    if source.startswith("address:"):
        return "address_check"
    if source.startswith("managed"):
        return "requirements"
    if source in ("user", "reviewer", "session grant") or source.startswith("grant"):
        return "user"
    if source in ("policy", "proxy"):
        return "proxy" if source == "proxy" else "default"
    head, _, line = source.rpartition(":")
    if head and line.isascii() and line.isdigit():
        return "rule"
    return "user"  # config files and command-line flags are the user's own policy


DecisionHook = Callable[[NetworkDecision], None]


class Blocked(Exception):
    """A refusal with a reason code; the protocol handlers map it onto their refusal."""

    def __init__(
        self, reason: str, host: str, port: int, detail: str = "", protocol: str = ""
    ) -> None:
        self.reason = reason.split(" ", 1)[0]
        self.host = host
        self.port = port
        self.protocol = protocol
        self.detail = detail or BLOCK_TEXT.get(self.reason, reason)
        super().__init__(f"{host}:{port} blocked: {self.detail}")


@dataclass(frozen=True)
class Target:
    """An authorised destination: the addresses that were checked are the only ones used."""

    host: Host
    port: int
    protocol: str
    limited: bool


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    import ipaddress

    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[IPAddress] = []
    for _family, _t, _p, _c, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in out:
            out.append(ip)
    return out


async def direct_connector(ip: IPAddress, port: int) -> Streams:
    return await asyncio.open_connection(str(ip), port, limit=2**16)


class Gate:
    """Authorises targets and opens upstream connections; emits one event per decision."""

    def __init__(
        self,
        policy: NetworkPolicy,
        ask: AskCallback | None = None,
        on_decision: DecisionHook | None = None,
        resolver: Resolver | None = None,
        connector: Connector | None = None,
        connect_timeout: float = 10.0,
        mitm_available: bool = False,
    ) -> None:
        self.policy = policy
        self.asker = SessionAsker(ask, policy.ask_timeout)
        self._hook = on_decision
        self._resolve = resolver or system_resolver
        self._connect = connector or direct_connector
        self._connect_timeout = connect_timeout
        self.mitm_available = mitm_available
        # the credential broker (``corral.netproxy.broker.Broker``), set by the Proxy: host
        # names carrying a placeholder are refused here, before any DNS lookup
        self.broker: Any = None

    def emit(self, d: NetworkDecision) -> None:
        if self._hook is None:
            return
        try:
            self._hook(d)
        except Exception:
            log.exception("network decision hook failed")

    def _deny(
        self, host: str, port: int, protocol: str, method: str | None, client: str | None,
        reason: str, source: str,
    ) -> Blocked:
        self.emit(NetworkDecision(host, port, protocol, method, "deny", source, reason, client))
        return Blocked(reason, host, port, protocol=protocol)

    async def authorize(
        self, raw_host: str, port: int, protocol: str, method: str | None = None,
        client: str | None = None,
    ) -> Target:
        """Decide whether ``raw_host:port`` may be reached; raises Blocked with a reason."""
        try:
            host = normalize_host(raw_host)
        except HostError:
            safe = raw_host[:80].encode("ascii", "backslashreplace").decode()
            raise self._deny(safe, port, protocol, method, client, "bad_host", "proxy") from None
        name = host.name
        leaked = self.broker.in_name(name) if self.broker is not None else None
        if leaked is not None:
            masked = Host(self.broker.masked(name))
            raise self.leak(Target(masked, port, protocol, False), method, client, leaked.name,
                            leaked.hosts, "the host name")
        if not self.policy.port_allowed(name, port):
            raise self._deny(name, port, protocol, method, client, "bad_port", "policy")
        if protocol == "socks5_udp" and not self.policy.allow_udp:
            raise self._deny(name, port, protocol, method, client, "udp_not_allowed", "policy")
        if host.ip is not None:
            self._check_address(host, host.ip, port, protocol, method, client)
        verdict = self.policy.evaluate_target(host, port, protocol)
        source, reason = verdict.source, verdict.reason
        if verdict.action == "deny":
            raise self._deny(name, port, protocol, method, client, reason, source)
        if verdict.action == "ask":
            q = NetworkQuestion(name, port, protocol, method, client)
            res = await self.asker.resolve(q)
            source, reason = res.source, res.reason
            if not res.allow:
                code = reason if reason.startswith("not_allowed") else f"not_allowed ({reason})"
                raise self._deny(name, port, protocol, method, client, code, source)
        if verdict.limited:
            if method is None and protocol != "https":  # SOCKS: methods cannot be seen
                raise self._deny(name, port, protocol, method, client, "method_not_allowed", source)
            if method is None and not self.mitm_available:
                raise self._deny(name, port, protocol, method, client, "mitm_required", source)
            if method is not None and method.upper() not in READ_ONLY_METHODS:
                raise self._deny(name, port, protocol, method, client, "method_not_allowed", source)
        self.emit(NetworkDecision(name, port, protocol, method, "allow", source, reason, client))
        return Target(host, port, protocol, verdict.limited)

    def leak(self, target: Target, method: str | None, client: str | None, credential: str,
             hosts: str, where: str) -> Blocked:
        """A brokered credential's placeholder on its way where it does not belong: one
        journaled refusal naming the credential (never the placeholder or a secret)."""
        name, port = target.host.name, target.port
        if len(name) > 80:
            name = name[:77] + "..."
        self.emit(NetworkDecision(name, port, target.protocol, method, "deny",
                                  f"broker:{credential}", "credential_exfiltration", client))
        detail = (f"{where} carries the placeholder of the brokered credential {credential}, "
                  f"which only {hosts} may receive")
        return Blocked("credential_exfiltration", name, port, detail, target.protocol)

    def check_method(self, target: Target, method: str, client: str | None = None) -> None:
        """For requests inside an intercepted tunnel: enforce limited mode per request."""
        name, port, proto = target.host.name, target.port, target.protocol
        if target.limited and method.upper() not in READ_ONLY_METHODS:
            raise self._deny(name, port, proto, method, client, "method_not_allowed", "policy")
        self.emit(NetworkDecision(name, port, proto, method, "allow", "policy", "limited", client))

    def _check_address(
        self, host: Host, ip: IPAddress, port: int, protocol: str, method: str | None,
        client: str | None,
    ) -> None:
        why = non_public_reason(ip)
        if why is not None and self.policy.local_grant(host.name, ip, port) is None:
            raise self._deny(
                host.name, port, protocol, method, client, "not_allowed_local", f"address:{why}"
            )

    async def addresses(self, target: Target, client: str | None = None) -> list[IPAddress]:
        """Resolve (for names) and check every address; only these may be used."""
        host, port = target.host, target.port
        if host.ip is not None:
            addrs = [host.ip]
        else:
            try:
                addrs = await _within(
                    self._resolve(host.name, port), self._connect_timeout
                )
            except (OSError, TimeoutError, UnicodeError):
                raise Blocked("resolve_failed", host.name, port) from None
            if not addrs:
                raise Blocked("resolve_failed", host.name, port)
            for ip in addrs:
                self._check_address(host, ip, port, target.protocol, None, client)
        return addrs

    async def open(self, target: Target, client: str | None = None) -> Streams:
        """Connect only to the addresses that ``addresses`` checked, in order."""
        host, port = target.host, target.port
        addrs = await self.addresses(target, client)
        last: Exception | None = None
        for ip in addrs:
            try:
                return await _within(self._connect(ip, port), self._connect_timeout)
            except (OSError, TimeoutError) as exc:
                last = exc
        detail = f"connection to {host.name}:{port} failed: {type(last).__name__}"
        why = getattr(last, "strerror", None)
        if why:
            detail += f" ({why})"
        raise Blocked("connect_failed", host.name, port, detail)
