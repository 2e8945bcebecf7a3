"""SOCKS5 UDP associations: the client's datagrams go out only after the gate, replies come back.

One ``UdpAssociation`` per UDP ASSOCIATE. It does not care how the client's datagrams arrive:

* an IP client sends them to a UDP socket the proxy binds (``serve_ip_client``, RFC 1928);
* a client inside a ``proxy``-mode sandbox cannot reach any UDP socket of ours, so the
  sandbox's first process (``corral.sandbox.proxyinit``) carries them over the proxy's unix
  stream socket as frames (``serve_framed``).

Framed mode is a private command, ``CMD_UDP_FRAMED`` (0x83), accepted only on the unix socket:
after the usual SOCKS5 reply, each direction is a sequence of frames, a 2-byte big-endian length
followed by one SOCKS5 UDP datagram (RFC 1928 section 7 header + payload). A zero length is a
no-op. The header, the fragment rule and the gate apply exactly as for IP clients.

Each allowed destination gets its own connected UDP socket, so the kernel delivers replies only
from that address, and the source address matches the route to the destination. UDP sockets are
read in batches and never buffer in user space (a full socket drops, as UDP may); only the
framed stream buffers, up to ``MAX_QUEUED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from corral.netproxy.addresses import IPAddress
from corral.netproxy.gate import Blocked, Gate
from corral.netproxy.relay import IdleWatch

CMD_UDP_FRAMED = 0x83  # corral extension; proxyinit's copy must match (tests check)
MAX_FRAME = 65535  # the 2-byte length prefix; also the largest UDP datagram
MAX_QUEUED = 1 << 20  # bytes buffered towards one side before datagrams are dropped
MAX_ROUTES = 256  # destinations per association (each allowed one holds a socket)
MAX_SOCKETS = 1024  # per-destination sockets in this process, so UDP cannot use up descriptors
MAX_WAITING = 16  # datagrams held per destination while the gate decides

Deliver = Callable[[bytes], None]


class UdpSocket:
    """A non-blocking UDP socket served by the event loop. It reads every queued datagram per
    wakeup (asyncio's datagram transport reads one), and sends without buffering: a full
    socket drops the datagram, as UDP may."""

    live = 0  # open in this process, all proxies together

    def __init__(self, sock: socket.socket, on_datagram: Callable[[bytes, Any], None]) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.on_datagram = on_datagram
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self._readable)
        UdpSocket.live += 1

    def _readable(self) -> None:
        for _ in range(64):  # then let other connections have a turn
            try:
                data, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error reported on a connected socket
            self.on_datagram(data, addr)

    def send(self, data: bytes, to: tuple[str, int] | None = None) -> None:
        with contextlib.suppress(OSError):  # buffer full, unreachable, too big: dropped
            if to is None:
                self.sock.send(data)
            else:
                self.sock.sendto(data, to)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            UdpSocket.live -= 1


DatagramOpener = Callable[[IPAddress, int, Deliver], Awaitable[UdpSocket]]


async def open_datagram(ip: IPAddress, port: int, deliver: Deliver) -> UdpSocket:
    """A UDP socket connected to ``ip:port``: the kernel drops datagrams from anyone else."""
    if UdpSocket.live >= MAX_SOCKETS:
        raise OSError(errno.EMFILE, "too many UDP sockets open for associations")
    sock = socket.socket(socket.AF_INET if ip.version == 4 else socket.AF_INET6,
                         socket.SOCK_DGRAM)
    try:
        sock.connect((str(ip), port))  # no packet: only fixes the peer (and the source address)
        return UdpSocket(sock, lambda data, _addr: deliver(data))
    except OSError:
        sock.close()
        raise


def parse_datagram(data: bytes) -> tuple[str, int, bytes] | None:
    """``(host, port, payload)`` of a SOCKS5 UDP datagram, or None to drop it."""
    if len(data) < 10 or data[0:2] != b"\x00\x00" or data[2] != 0:
        return None  # bad header or fragmented (fragments are dropped, as RFC 1928 allows)
    atyp = data[3]
    if atyp == 1:
        host, rest = str(ipaddress.IPv4Address(data[4:8])), data[8:]
    elif atyp == 4 and len(data) >= 22:
        host, rest = str(ipaddress.IPv6Address(data[4:20])), data[20:]
    elif atyp == 3 and data[4] and len(data) >= 5 + data[4] + 2:
        host, rest = data[5 : 5 + data[4]].decode("ascii", "replace"), data[5 + data[4] :]
    else:
        return None
    if len(rest) < 2:
        return None
    return host, int.from_bytes(rest[:2], "big"), rest[2:]


def datagram_header(ip: IPAddress, port: int) -> bytes:
    """The RFC 1928 UDP request header naming ``ip:port`` (the source of a reply)."""
    atyp = b"\x01" if ip.version == 4 else b"\x04"
    return b"\x00\x00\x00" + atyp + ip.packed + port.to_bytes(2, "big")


class UdpAssociation:
    """Routes one client's datagrams: the first to each destination asks the gate (one decision
    event per destination); later ones reuse the answer. Blocked destinations are dropped."""

    def __init__(
        self, gate: Gate, client: str | None, deliver: Deliver,
        opener: DatagramOpener = open_datagram,
    ) -> None:
        self.gate = gate
        self.client = client
        self.deliver = deliver
        self.opener = opener
        self.routes: dict[tuple[str, int], UdpSocket | None] = {}
        self.waiting: dict[tuple[str, int], list[bytes]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
        self.datagrams = 0  # either way, for the idle watch

    def from_client(self, data: bytes) -> None:
        parsed = parse_datagram(data)
        if parsed is None or self.closed:
            return
        self.datagrams += 1
        host, port, payload = parsed
        key = (host, port)
        if key in self.routes:
            route = self.routes[key]
            if route is not None:
                route.send(payload)
            return
        queue = self.waiting.get(key)
        if queue is None:
            if len(self.routes) + len(self.waiting) >= MAX_ROUTES:
                return
            queue = self.waiting[key] = []
            task = asyncio.get_running_loop().create_task(self._route(key))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if len(queue) < MAX_WAITING:
            queue.append(payload)

    async def _route(self, key: tuple[str, int]) -> None:
        host, port = key
        route: UdpSocket | None = None
        try:
            target = await self.gate.authorize(host, port, "socks5_udp", None, self.client)
            ip = (await self.gate.addresses(target, self.client))[0]
            header = datagram_header(ip, port)
            route = await self.opener(ip, port, lambda d: self._reply(header, d))
        except (Blocked, OSError):
            route = None
        if self.closed:
            if route is not None:
                route.close()
            return
        self.routes[key] = route
        for payload in self.waiting.pop(key, []):
            if route is not None:
                route.send(payload)

    def _reply(self, header: bytes, data: bytes) -> None:
        if not self.closed and len(header) + len(data) <= MAX_FRAME:
            self.datagrams += 1
            self.deliver(header + data)

    def close(self) -> None:
        self.closed = True
        for task in self.tasks:
            task.cancel()
        for route in self.routes.values():
            if route is not None:
                route.close()
        self.routes.clear()
        self.waiting.clear()


def _room(transport: asyncio.WriteTransport) -> bool:
    return transport.get_write_buffer_size() < MAX_QUEUED


def split_frames(buf: bytearray, each: Deliver) -> int:
    """Hand every complete non-empty frame in ``buf`` to ``each``; return the bytes used."""
    pos, end = 0, len(buf)
    while end - pos >= 2:
        size = (buf[pos] << 8) | buf[pos + 1]
        if end - pos - 2 < size:
            break
        if size:
            each(bytes(buf[pos + 2 : pos + 2 + size]))
        pos += 2 + size
    return pos


# --- how the client's datagrams arrive ----------------------------------------------------------

class _IpClient:
    """The client-facing side: only the associated client may use it (RFC 1928: the port the
    request named, else the first sender from the control connection's address)."""

    def __init__(self, client_ip: str, client_port: int) -> None:
        self.client_ip = client_ip
        self.client_port = client_port
        self.client_addr: tuple[str, int] | None = None
        self.sock: UdpSocket | None = None
        self.association: UdpAssociation | None = None

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        src = (str(addr[0]), int(addr[1]))
        if self.client_addr is None:
            if src[0] != self.client_ip or self.client_port not in (0, src[1]):
                return
            self.client_addr = src
        elif src != self.client_addr:
            return
        if self.association is not None:
            self.association.from_client(data)

    def deliver(self, data: bytes) -> None:
        if self.sock is not None and self.client_addr is not None:
            self.sock.send(data, self.client_addr)


async def serve_ip_client(
    gate: Gate, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str | None,
    client_ip: str, client_port: int, opener: DatagramOpener = open_datagram,
    idle_timeout: float | None = None,
) -> None:
    """Bind a UDP socket beside the client, reply with its address, relay until the control
    connection closes, or no datagram moved either way for ``idle_timeout`` seconds."""
    ip = ipaddress.ip_address(client_ip)
    raw = socket.socket(socket.AF_INET if ip.version == 4 else socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        raw.bind((client_ip, 0))
    except OSError:
        raw.close()
        raise
    side = _IpClient(client_ip, client_port)
    side.sock = UdpSocket(raw, side.datagram_received)
    side.association = assoc = UdpAssociation(gate, client, side.deliver, opener)
    watch = IdleWatch(idle_timeout, lambda: assoc.datagrams, writer.close)
    try:
        writer.write(b"\x05\x00" + datagram_header(ip, raw.getsockname()[1])[2:])
        await writer.drain()
        while await reader.read(4096):  # the association lives as long as this connection
            pass
    finally:
        watch.cancel()
        assoc.close()
        side.sock.close()


async def serve_framed(
    gate: Gate, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str | None,
    opener: DatagramOpener = open_datagram, idle_timeout: float | None = None,
) -> None:
    """Datagrams as length-prefixed frames on the control connection itself (see the module
    docstring); ends when the connection does, or after ``idle_timeout`` seconds without a
    datagram either way. A client that reads too slowly loses replies."""

    def deliver(data: bytes) -> None:
        if not writer.is_closing() and _room(writer.transport):
            writer.write(len(data).to_bytes(2, "big") + data)

    assoc = UdpAssociation(gate, client, deliver, opener)
    watch = IdleWatch(idle_timeout, lambda: assoc.datagrams, writer.close)
    try:
        writer.write(b"\x05\x00\x00\x01" + bytes(6))  # proxyinit puts its own address here
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            buf = bytearray()
            while chunk := await reader.read(1 << 18):
                buf += chunk
                done = split_frames(buf, assoc.from_client)
                del buf[:done]  # what is left: less than one frame
    finally:
        watch.cancel()
        assoc.close()
