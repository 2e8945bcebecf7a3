"""SOCKS5 (RFC 1928) CONNECT, with optional username/password (RFC 1929) session credentials.

UDP ASSOCIATE is refused with 0x02 (not allowed by ruleset) unless the policy allows UDP. When
allowed, each datagram's destination goes through the same gate as TCP (policy, ask, address
checks); replies are accepted only from addresses the client sent to (see ``udp``). On the unix
socket, UDP ASSOCIATE comes in corral's framed form (``udp.CMD_UDP_FRAMED``, sent by proxyinit
for clients inside the sandbox); IP clients cannot use that form.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import socket

from corral.netproxy.gate import Blocked, Gate, NetworkDecision
from corral.netproxy.relay import IDLE_TIMEOUT, relay
from corral.netproxy.timeouts import within as _within
from corral.netproxy.udp import (
    CMD_UDP_FRAMED,
    DatagramOpener,
    open_datagram,
    serve_framed,
    serve_ip_client,
)

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


def _over_unix_socket(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    return sock is not None and sock.family == socket.AF_UNIX


class SocksHandler:
    def __init__(
        self, gate: Gate, timeout: float, credentials: tuple[str, str] | None = None,
        idle_timeout: float | None = IDLE_TIMEOUT,
    ) -> None:
        self.gate = gate
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.credentials = credentials
        self.open_datagram: DatagramOpener = open_datagram  # tests swap in a loopback guard

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
        framed = cmd == CMD_UDP_FRAMED and _over_unix_socket(writer)
        if cmd == 3 or framed:
            await self._udp(reader, writer, client, framed, port)
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
        await relay(reader, writer, up_r, up_w, self.idle_timeout)

    async def _udp(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str | None,
        framed: bool, port: int,
    ) -> None:
        if not self.gate.policy.allow_udp:
            self.gate.emit(NetworkDecision("udp-associate", 0, "socks5_udp", None, "deny",
                                           "policy", "udp_not_allowed", client))
            writer.write(_reply(REP_NOT_ALLOWED))
            return
        if framed:
            await serve_framed(self.gate, reader, writer, client, self.open_datagram,
                               self.idle_timeout)
            return
        peer = writer.get_extra_info("peername")
        if not isinstance(peer, tuple):  # a unix-socket client has no address to send UDP to
            writer.write(_reply(REP_FAILURE))
            return
        await serve_ip_client(self.gate, reader, writer, client, str(peer[0]), port,
                              self.open_datagram, self.idle_timeout)

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
