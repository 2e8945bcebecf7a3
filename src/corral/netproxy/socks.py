"""SOCKS5 (RFC 1928) CONNECT, with optional username/password (RFC 1929) session credentials.

UDP ASSOCIATE is refused with 0x02 (not allowed by ruleset) unless the policy allows UDP. When
allowed, each datagram's destination goes through the same gate as TCP (policy, ask, address
checks); replies are accepted only from addresses the client sent to.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from typing import Any, cast

from corral.netproxy.gate import Blocked, Gate, NetworkDecision
from corral.netproxy.relay import relay
from corral.netproxy.timeouts import within as _within

REP_OK = 0x00
REP_FAILURE = 0x01
REP_NOT_ALLOWED = 0x02
REP_HOST_UNREACHABLE = 0x04
REP_REFUSED = 0x05
REP_CMD_UNSUPPORTED = 0x07
REP_ATYP_UNSUPPORTED = 0x08

_BLOCK_REPLY = {"resolve_failed": REP_HOST_UNREACHABLE, "connect_failed": REP_REFUSED}


def _reply(code: int) -> bytes:
    return bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0])


class SocksHandler:
    def __init__(
        self, gate: Gate, timeout: float, credentials: tuple[str, str] | None = None
    ) -> None:
        self.gate = gate
        self.timeout = timeout
        self.credentials = credentials

    async def _read(self, reader: asyncio.StreamReader, n: int) -> bytes:
        return await _within(reader.readexactly(n), self.timeout)

    async def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str | None
    ) -> None:
        try:
            await self._serve(reader, writer, client)
        except (asyncio.IncompleteReadError, TimeoutError):
            return

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str | None
    ) -> None:
        ver, nmethods = await self._read(reader, 2)
        if ver == 4:  # SOCKS4: "request rejected or failed"
            writer.write(b"\x00\x5b" + b"\x00" * 6)
            return
        if ver != 5:
            return
        methods = await self._read(reader, nmethods) if nmethods else b""
        want = 0x02 if self.credentials is not None else 0x00
        if want not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(bytes([5, want]))
        if want == 0x02 and not await self._auth(reader, writer):
            return
        ver, cmd, _rsv, atyp = await self._read(reader, 4)
        if ver != 5:
            writer.write(_reply(REP_FAILURE))
            return
        if atyp == 1:
            host = str(ipaddress.IPv4Address(await self._read(reader, 4)))
        elif atyp == 4:
            host = str(ipaddress.IPv6Address(await self._read(reader, 16)))
        elif atyp == 3:
            (length,) = await self._read(reader, 1)
            raw = await self._read(reader, length)
            try:
                host = raw.decode("ascii")
            except UnicodeDecodeError:
                host = raw.decode("utf-8", "replace")
        else:
            writer.write(_reply(REP_ATYP_UNSUPPORTED))
            return
        port = int.from_bytes(await self._read(reader, 2), "big")
        if cmd == 3:
            await self._udp(reader, writer, client)
            return
        if cmd != 1:
            writer.write(_reply(REP_CMD_UNSUPPORTED))
            return
        try:
            target = await self.gate.authorize(host, port, "socks5_tcp", None, client)
            up_r, up_w = await self.gate.open(target, client)
        except Blocked as b:
            writer.write(_reply(_BLOCK_REPLY.get(b.reason, REP_NOT_ALLOWED)))
            return
        writer.write(_reply(REP_OK))
        await writer.drain()
        await relay(reader, writer, up_r, up_w)

    async def _udp(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str | None
    ) -> None:
        if not self.gate.policy.allow_udp:
            self.gate.emit(NetworkDecision("udp-associate", 0, "socks5_udp", None, "deny",
                                           "policy", "udp_not_allowed", client))
            writer.write(_reply(REP_NOT_ALLOWED))
            return
        peer = writer.get_extra_info("peername")
        if not isinstance(peer, tuple):
            writer.write(_reply(REP_FAILURE))  # UDP needs an IP client (not the unix socket)
            return
        loop = asyncio.get_running_loop()
        transport, relay_proto = await loop.create_datagram_endpoint(
            lambda: _UdpRelay(self.gate, str(peer[0]), client), local_addr=(str(peer[0]), 0)
        )
        try:
            bound = transport.get_extra_info("sockname")
            ip = ipaddress.ip_address(bound[0])
            atyp = b"\x01" if ip.version == 4 else b"\x04"
            writer.write(b"\x05\x00\x00" + atyp + ip.packed + int(bound[1]).to_bytes(2, "big"))
            await writer.drain()
            while await reader.read(4096):  # the association lives as long as this connection
                pass
        finally:
            transport.close()
            relay_proto.stop()

    async def _auth(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        assert self.credentials is not None
        ver, ulen = await self._read(reader, 2)
        user = await self._read(reader, ulen)
        (plen,) = await self._read(reader, 1)
        password = await self._read(reader, plen)
        ok = ver == 1 and hmac.compare_digest(
            user + b"\0" + password,
            f"{self.credentials[0]}\0{self.credentials[1]}".encode(),
        )
        writer.write(b"\x01\x00" if ok else b"\x01\x01")
        return ok


class _UdpRelay(asyncio.DatagramProtocol):
    """One UDP association: client datagrams out (after the gate), replies back in."""

    def __init__(self, gate: Gate, client_ip: str, client: str | None) -> None:
        self.gate = gate
        self.client_ip = client_ip
        self.client = client
        self.client_addr: tuple[str, int] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.routes: dict[tuple[str, int], tuple[str, int] | None] = {}
        self.waiting: dict[tuple[str, int], list[bytes]] = {}
        self.peers: set[tuple[str, int]] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def stop(self) -> None:
        for t in self.tasks:
            t.cancel()

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        src = (str(addr[0]), int(addr[1]))
        if self.transport is None:
            return
        if src in self.peers and src != self.client_addr:
            ip = ipaddress.ip_address(src[0])
            atyp = b"\x01" if ip.version == 4 else b"\x04"
            if self.client_addr is not None:
                header = b"\x00\x00\x00" + atyp + ip.packed + src[1].to_bytes(2, "big")
                self.transport.sendto(header + data, self.client_addr)
            return
        if src[0] != self.client_ip or (self.client_addr not in (None, src)):
            return  # only the client that opened the association may send
        self.client_addr = src
        parsed = _parse_udp(data)
        if parsed is None:
            return
        host, port, payload = parsed
        key = (host, port)
        if key in self.routes:
            route = self.routes[key]
            if route is not None:
                self.transport.sendto(payload, route)
            return
        queue = self.waiting.setdefault(key, [])
        if len(queue) < 16:
            queue.append(payload)
        if len(queue) == 1:
            task = asyncio.get_running_loop().create_task(self._route(key))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _route(self, key: tuple[str, int]) -> None:
        host, port = key
        route: tuple[str, int] | None = None
        try:
            target = await self.gate.authorize(host, port, "socks5_udp", None, self.client)
            addrs = await self.gate.addresses(target, self.client)
            route = (str(addrs[0]), port)
            self.peers.add(route)
        except Blocked:
            route = None
        self.routes[key] = route
        for payload in self.waiting.pop(key, []):
            if route is not None and self.transport is not None:
                self.transport.sendto(payload, route)


def _parse_udp(data: bytes) -> tuple[str, int, bytes] | None:
    if len(data) < 10 or data[0:2] != b"\x00\x00" or data[2] != 0:
        return None  # bad header or fragmented (fragments are dropped, as RFC 1928 allows)
    atyp = data[3]
    if atyp == 1:
        host, rest = str(ipaddress.IPv4Address(data[4:8])), data[8:]
    elif atyp == 4 and len(data) >= 22:
        host, rest = str(ipaddress.IPv6Address(data[4:20])), data[20:]
    elif atyp == 3 and len(data) >= 5 + data[4] + 2:
        host, rest = data[5 : 5 + data[4]].decode("ascii", "replace"), data[5 + data[4] :]
    else:
        return None
    if len(rest) < 2:
        return None
    return host, int.from_bytes(rest[:2], "big"), rest[2:]
