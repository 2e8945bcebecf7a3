"""Listeners and lifecycle: run the proxy in its own thread (embedding) or in a caller's loop (CLI).

Every listener sniffs the first byte: 0x05 (or 0x04) is SOCKS, anything else HTTP. That lets one
unix socket, bind-mounted into the sandbox, carry both protocols.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.errors import CorralError
from corral.netproxy.broker import Broker
from corral.netproxy.decide import AskCallback
from corral.netproxy.gate import Connector, DecisionHook, Gate, Resolver
from corral.netproxy.http import HttpHandler, Limits, error_response, unread
from corral.netproxy.local import Forwarder, LocalForward, Report
from corral.netproxy.policy import NetworkPolicy
from corral.netproxy.socks import SocksHandler
from corral.netproxy.timeouts import within as _within

log = logging.getLogger("corral.netproxy")


@dataclass(frozen=True)
class Listen:
    """Where to listen. Ports 0 pick a free port. ``unix`` is a socket path (mode 0600)."""

    http: tuple[str, int] | None = ("127.0.0.1", 0)
    socks: tuple[str, int] | None = ("127.0.0.1", 0)
    unix: str | None = None
    allow_non_loopback: bool = False


@dataclass(frozen=True)
class Endpoints:
    http: tuple[str, int] | None
    socks: tuple[str, int] | None
    unix: str | None

    def http_url(self) -> str:
        assert self.http is not None
        return f"http://{_fmt(self.http)}"

    def socks_url(self) -> str:
        assert self.socks is not None
        return f"socks5h://{_fmt(self.socks)}"


def _fmt(addr: tuple[str, int]) -> str:
    host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
    return f"{host}:{addr[1]}"


@dataclass
class _Stats:
    active: int = 0
    served: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class Proxy:
    """The managed network proxy.

    ``Proxy(policy, ask=callback).start()`` runs it on a private event loop in a daemon thread and
    returns the bound endpoints; ``stop()`` closes listeners and open connections.
    ``await proxy.serve()`` runs it on the current loop instead.
    """

    def __init__(
        self,
        policy: NetworkPolicy,
        ask: AskCallback | None = None,
        *,
        on_decision: DecisionHook | None = None,
        listen: Listen | None = None,
        limits: Limits | None = None,
        resolver: Resolver | None = None,
        connector: Connector | None = None,
        credentials: tuple[str, str] | None = None,
        mitm: object | None = None,
        connect_timeout: float = 10.0,
        broker: Broker | None = None,
    ) -> None:
        if broker and mitm is None:
            raise CorralError("network", "the credential broker needs HTTPS interception "
                              "(a Mitm) to attach credentials")
        self.listen = listen or Listen()
        self.limits = limits or Limits(idle_timeout=policy.idle_timeout or None)
        self.gate = Gate(
            policy, ask, on_decision, resolver, connector, connect_timeout,
            mitm_available=mitm is not None,
        )
        self.broker = broker or None
        self.gate.broker = self.broker
        self._http = HttpHandler(self.gate, self.limits, credentials, mitm, self.broker)
        self._socks = SocksHandler(self.gate, self.limits.head_timeout, credentials,
                                   self.limits.idle_timeout)
        self._servers: list[asyncio.AbstractServer] = []
        self._forwarder: Forwarder | None = None
        self._forward_paths: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self.stats = _Stats()
        self.endpoints: Endpoints | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Endpoints:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._run(ready, failure))
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="corral-netproxy", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise CorralError("network", "proxy did not start in time")
        if failure:
            raise failure[0]
        assert self.endpoints is not None
        return self.endpoints

    async def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            await self.start_servers()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        assert self._stopped is not None
        await self._stopped.wait()
        await self.close()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stopped.set)
        thread.join(10)
        self._thread = None

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the proxy loop (e.g. ``lambda: proxy.gate.asker.grant(...)``)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn)

    def grant(self, host: str, port: int, protocol: str, allow: bool, source: str) -> None:
        """Record a session answer from outside (thread-safe), e.g. a restored grant."""
        self.call(lambda: self.gate.asker.grant(host, port, protocol, allow, source))

    def set_policy(self, policy: NetworkPolicy) -> None:
        """Swap the policy (e.g. after rules changed); applies to new requests."""
        def swap() -> None:
            self.gate.policy = policy

        if self._loop is not None:
            self.call(swap)
        else:
            swap()

    def forward(self, fwd: LocalForward, path: str, report: Report | None = None) -> None:
        """Serve ``fwd`` (``corral.netproxy.local``) on the unix socket ``path`` (mode 0600):
        each connection is a tunnel to ``fwd``'s address, decided by the gate. Thread-safe;
        ``report`` gets the one-line refusals (default: stderr)."""
        if self._forwarder is None:
            self._forwarder = Forwarder(self.gate, self.limits.idle_timeout,
                                        *(() if report is None else (report,)))
            if self.broker is not None:  # TLS to a brokered local server: intercepted
                self._forwarder.intercept = (self._http.brokered, self._http.intercept_stream)
        loop = self._loop
        if loop is None or self._thread is None:
            raise CorralError("network", "start() the proxy before adding a forward")
        coro = self._unix(path, self._forwarder.handler(fwd))
        try:
            asyncio.run_coroutine_threadsafe(coro, loop).result(10)
        except OSError as exc:
            raise CorralError("network", f"cannot listen for {fwd.address}: {exc}") from exc
        self._forward_paths.append(path)

    async def serve(self) -> None:
        """Run on the current loop until cancelled."""
        await self.start_servers()
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def start_servers(self) -> Endpoints:
        self._stopped = asyncio.Event()
        lst = self.listen
        http_ep = socks_ep = None
        try:
            if lst.http is not None:
                http_ep = await self._tcp(lst.http)
            if lst.socks is not None:
                socks_ep = await self._tcp(lst.socks)
            if lst.unix is not None:
                await self._unix(lst.unix, self._accept)
        except OSError as exc:
            await self.close()
            raise CorralError("network", f"cannot listen: {exc.strerror or exc}") from exc
        self.endpoints = Endpoints(http_ep, socks_ep, lst.unix)
        return self.endpoints

    async def _tcp(self, addr: tuple[str, int]) -> tuple[str, int]:
        host, port = addr
        if not self.listen.allow_non_loopback:
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise CorralError(
                    "network",
                    f"refusing to listen on non-loopback address {host}",
                    "the proxy must only be reachable from this machine",
                )
        srv = await asyncio.start_server(self._accept, host, port, limit=self.limits.max_head)
        self._servers.append(srv)
        sock = srv.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])

    async def _unix(self, path: str, handler: Callable[..., Any]) -> None:
        p = Path(path)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(p.lstat().st_mode):
                p.unlink()
        old = os.umask(0o177)
        try:
            srv = await asyncio.start_unix_server(handler, path, limit=self.limits.max_head)
        finally:
            os.umask(old)
        self._servers.append(srv)

    async def close(self) -> None:
        for srv in self._servers:
            srv.close()
        tasks = list(self.stats.tasks)
        if self._forwarder is not None:
            tasks += list(self._forwarder.tasks)
        for t in tasks:
            t.cancel()
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await srv.wait_closed()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._servers.clear()
        for path in [*([self.listen.unix] if self.listen.unix else []), *self._forward_paths]:
            with contextlib.suppress(OSError):
                os.unlink(path)

    # --- connections -------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.stats.tasks.add(task)
        self.stats.active += 1
        peer = writer.get_extra_info("peername")
        client = _fmt(peer) if isinstance(peer, tuple) and len(peer) >= 2 else "unix"
        try:
            try:
                first = await _within(reader.read(1), self.limits.head_timeout)
            except TimeoutError:
                writer.write(error_response(408, "corral: network: request not received in time"))
                return
            if not first:
                return
            unread(reader, first)
            if first in (b"\x05", b"\x04"):
                await self._socks.serve(reader, writer, client)
            elif not (first.isalpha() and first.isascii()):
                writer.write(error_response(400, "corral: network: not HTTP or SOCKS5"))
            else:
                await self._http.serve(reader, writer, client)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass  # only close() cancels connections; finish quietly
        except Exception:
            log.exception("proxy connection failed")
        finally:
            self.stats.active -= 1
            self.stats.served += 1
            self.stats.tasks.discard(task)
            with contextlib.suppress(Exception):
                if not writer.transport.is_closing():
                    await _within(writer.drain(), 1.0)
            writer.close()

