"""Local servers from inside the sandbox: loopback ``allow_local`` entries at the same address.

The sandbox has its own network namespace, so its 127.0.0.1 is not the host's, and NO_PROXY
sends loopback addresses straight there. For each ``allow_local`` entry naming an exact
loopback ``host:port`` (``127.0.0.1:11434``, ``localhost:8080``, ``[::1]:8000``), the proxy
listens on a unix socket of its own, which the sandbox's first process bridges to
``127.0.0.1:PORT`` and ``[::1]:PORT`` inside (one server per port): a
connection there becomes a TCP tunnel to the same address on the host, decided by the proxy's
gate like any other (policy, address checks, one ``agent.network.decision`` event; recorded as
``socks5_tcp``, the other raw TCP tunnel). Every other loopback port stays the sandbox's own.

An agent must never hang on a model it cannot reach. The loopback model URL the agent is
configured with (``base_url`` in its config or ``-c`` flags, ``*_BASE_URL`` variables) is
forwarded too when it is not listed: the gate refuses it, the connection is closed at once,
and corral prints one line naming the address and the key to set. A listed server that is
down is reported the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from corral.errors import CorralError
from corral.netproxy.addresses import Host, HostError, normalize_host
from corral.netproxy.gate import Blocked, Gate, Target
from corral.netproxy.policy import NetworkPolicy
from corral.netproxy.relay import relay
from corral.paths import moved_config_dir

if TYPE_CHECKING:
    from corral.netproxy.server import Proxy

# Where a client inside the sandbox connects for a loopback entry: the sandbox's relay listens
# on 127.0.0.1 and ::1 at the entry's port, so ``localhost``, ``127.0.0.1`` and ``[::1]`` are
# forwarded; other loopback spellings (127.0.0.2, ...) reach the host through the proxy
# variables only.
INSIDE = "127.0.0.1"
INSIDE6 = ipaddress.IPv6Address("::1")
PRIVILEGED_BELOW = 1024  # the sandbox holds no capability to bind these

Report = Callable[[str], None]

_URL_KEYS = re.compile(
    r"""(?i)base_?url["']?\s*[:=]\s*["']?(https?://[^\s"',}\]]+)""")


@dataclass(frozen=True)
class LocalForward:
    """``127.0.0.1:port`` inside the sandbox, tunnelled to ``host:port`` on this machine.
    ``listed``: an ``allow_local`` entry; otherwise the agent's model URL, refused with a line
    (``origin`` says where it was configured)."""

    host: str
    port: int
    listed: bool
    origin: str = ""

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _forwarded_host(host: Host) -> bool:
    return host.name == "localhost" or host.ip in (ipaddress.IPv4Address(INSIDE), INSIDE6)


def listed_forwards(policy: NetworkPolicy, report: Report | None = None
                    ) -> list[LocalForward]:
    """The ``allow_local`` entries to forward: exact ports on 127.0.0.1 or localhost. Ports
    below 1024 cannot be: nothing in the sandbox may bind them (``report`` says so)."""
    out: dict[int, LocalForward] = {}
    for g in policy.allow_local:
        if g.port is None or not _forwarded_host(g.host) or g.port in out:
            continue
        if g.port < PRIVILEGED_BELOW:
            if report is not None:
                report(f"corral: network: allow_local {g.host.name}:{g.port}: a port below "
                       f"{PRIVILEGED_BELOW} cannot be opened inside the sandbox, so the server "
                       "there is not forwarded; run it on a port above 1023")
            continue
        out[g.port] = LocalForward(g.host.name, g.port, True, g.source)
    return list(out.values())


def model_urls(argv: Sequence[str], environ: Mapping[str, str],
               config_files: Iterable[Path] = ()) -> list[tuple[str, str]]:
    """(url, where) for every model API URL the agent is configured with: ``base_url`` keys in
    its arguments and config files, and ``*_BASE_URL`` variables."""
    found: list[tuple[str, str]] = []
    for arg in argv[1:]:
        found += [(m, "the command line") for m in _URL_KEYS.findall(arg)]
    for name, value in environ.items():
        if name.upper().endswith("_BASE_URL") and value.startswith(("http://", "https://")):
            found.append((value, f"${name}"))
    for path in config_files:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            found += [(m, str(path)) for m in _URL_KEYS.findall(path.read_text()[:1 << 20])]
    return found


def unlisted_forwards(urls: Iterable[tuple[str, str]], policy: NetworkPolicy
                      ) -> list[LocalForward]:
    """Loopback model URLs that no exact ``allow_local`` entry covers (forwarded to refuse)."""
    out: list[LocalForward] = []
    for url, where in urls:
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            host = normalize_host(parts.hostname or "")
        except (ValueError, HostError):
            continue
        if not _forwarded_host(host) or port < PRIVILEGED_BELOW:
            continue
        if any(g.names_exactly(host, port) for g in policy.allow_local):
            continue
        out.append(LocalForward(host.name, port, False, where))
    return out


def refusal_line(fwd: LocalForward, blocked: Blocked) -> str:
    """One ``corral: network:`` line: what happened to ``fwd`` and which key to set."""
    entry = f'"{fwd.address}"'
    if blocked.reason == "not_allowed_local":
        where = f" (the agent's model URL, from {fwd.origin})" if fwd.origin else ""
        return (f"corral: network: {fwd.address}{where} is not reachable from the sandbox, whose "
                f"loopback is its own: add {entry} to [network] allow_local to reach the server "
                "on this machine")
    if blocked.reason in ("connect_failed", "resolve_failed"):
        return (f"corral: network: {fwd.address} (listed in [network] allow_local) refused the "
                "connection: nothing is listening there on this machine; start the local "
                "server, or correct the entry")
    return (f"corral: network: {fwd.address} refused: {blocked.detail} (an allow_local entry "
            f"{entry} is overridden by [network] domains or a network_rule)")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Forwarder:
    """Serves the unix sockets of the forwards on the proxy's loop; each refusal is reported
    once per address and reason."""

    def __init__(self, gate: Gate, idle_timeout: float | None, report: Report = _stderr) -> None:
        self.gate = gate
        self.idle_timeout = idle_timeout
        self.report = report
        self._said: set[tuple[str, str]] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        # (is this target brokered?, serve it intercepted): set by the Proxy with a broker
        self.intercept: tuple[Callable[[Target], bool], Callable[
            [Target, asyncio.StreamReader, asyncio.StreamWriter, str | None],
            Awaitable[None]]] | None = None

    def handler(self, fwd: LocalForward) -> Callable[
            [asyncio.StreamReader, asyncio.StreamWriter], object]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.tasks.add(task)
            try:
                await self._serve(fwd, reader, writer)
            except (ConnectionError, asyncio.CancelledError, TimeoutError):
                pass
            finally:
                self.tasks.discard(task)
                writer.close()

        return handle

    async def _serve(self, fwd: LocalForward, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        try:
            target = await self.gate.authorize(fwd.host, fwd.port, "socks5_tcp", None, "sandbox")
            if self.intercept is not None and self.intercept[0](target):
                await self.intercept[1](target, reader, writer, "sandbox")
                return
            up_r, up_w = await self.gate.open(target, "sandbox")
        except Blocked as b:
            if (fwd.address, b.reason) not in self._said:
                self._said.add((fwd.address, b.reason))
                self.report(refusal_line(fwd, b))
            return
        await relay(reader, writer, up_r, up_w, self.idle_timeout)


def check_ports(forwards: Iterable[LocalForward], taken: Iterable[int]) -> None:
    """Refuse a forward on a port corral already uses inside the sandbox (proxy, session API)."""
    used = set(taken)
    for f in forwards:
        if f.port in used:
            raise CorralError(
                "network", f"allow_local {f.address}: port {f.port} is taken inside the sandbox "
                "by corral's own relays", f"ports {', '.join(map(str, sorted(used)))} are "
                "reserved; run the local server on another port")


def forwards_for(policy: NetworkPolicy, argv: Sequence[str], environ: Mapping[str, str],
                 config_files: Iterable[Path] = (), report: Report | None = None
                 ) -> list[LocalForward]:
    """The listed loopback entries, then the agent's unlisted loopback model URLs."""
    listed = listed_forwards(policy, report)
    ports = {f.port for f in listed}
    out = list(listed)
    for f in unlisted_forwards(model_urls(argv, environ, config_files), policy):
        if f.port not in ports:
            ports.add(f.port)
            out.append(f)
    return out


def agent_config_files(config_dir: str | None, config_env: str | None,
                       config_subdir: str | None = None) -> list[Path]:
    """The agent's main config files (``config.toml``, ``settings.json``) where it keeps its
    model URL: in the dir ``$config_env`` moves (``config_subdir`` inside it when the variable
    names the parent: Gemini CLI's ``$GEMINI_CLI_HOME/.gemini``) if set, else in ``config_dir``."""
    root = moved_config_dir(config_env, config_subdir) or (
        Path(os.path.expanduser(config_dir)) if config_dir else None)
    if root is None:
        return []
    return [root / "config.toml", root / "settings.json"]


def for_agent(proxy: Proxy | None, rundir: Path, argv: Sequence[str], preset: object,
              taken: Iterable[int] = ()) -> tuple[tuple[int, Path], ...]:
    """Start the forwards a ``corral run`` of ``argv`` needs on the running ``proxy`` (unix
    sockets in the session's private ``rundir``; ``preset`` has the agent's ``config_dir`` and
    ``config_env``); the (port inside, socket) pairs for ``NetworkPlan.extra_bridges``. No
    managed proxy (another network mode): nothing to forward."""
    if proxy is None:
        return ()
    files = agent_config_files(getattr(preset, "config_dir", None),
                               getattr(preset, "config_env", None),
                               getattr(preset, "config_subdir", None))
    fwds = forwards_for(proxy.gate.policy, argv, os.environ, files, _stderr)
    check_ports(fwds, taken)
    out: list[tuple[int, Path]] = []
    for f in fwds:
        path = rundir / f"l{f.port}.sock"
        proxy.forward(f, str(path))
        out.append((f.port, path))
    return tuple(out)
