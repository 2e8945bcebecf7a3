"""SSRF/DNS rebinding at the resolve/connect layer (no packet ever leaves loopback), and SOCKS5
over raw sockets."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from pathlib import Path

import pytest

from corral.netproxy import PolicyInputs
from corral.netproxy.addresses import IPAddress

from .conftest import ProxyFactory, local


class RecordingNet:
    """Fake resolver + connector: names map to scripted answers; every connect is recorded and
    redirected to the loopback test server. A connect to an address the test did not expect
    fails the test (so a refused address can never be reached, even by accident)."""

    def __init__(self, answers: dict[str, list[list[str]]], loop_port: int) -> None:
        self.answers = answers
        self.loop_port = loop_port
        self.resolved: list[str] = []
        self.connects: list[tuple[str, int]] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.resolved.append(host)
        seq = self.answers[host]
        return [ipaddress.ip_address(a) for a in (seq.pop(0) if len(seq) > 1 else seq[0])]

    async def connect(self, ip: IPAddress, port: int):  # type: ignore[no-untyped-def]
        self.connects.append((str(ip), port))
        if not (ip.is_global or ip.is_loopback):
            pytest.fail(f"proxy tried to connect to non-public {ip}")
        return await asyncio.open_connection("127.0.0.1", self.loop_port)


def http_get(proxy_port: int, url: str) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as s:
        host = url.split("/")[2]
        s.sendall(f"GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_rebinding_public_then_private_is_refused_and_connects_only_checked(
    web: tuple[int, Path], make_proxy: ProxyFactory
) -> None:
    port, _ = web
    net = RecordingNet({"rebind.test": [["93.184.216.34"], ["127.0.0.1"]],
                        "mixed.test": [["93.184.216.34", "10.0.0.5"]]}, port)
    proxy, events = make_proxy(PolicyInputs(domains={"*": "allow"}),
                               resolver=net.resolve, connector=net.connect)
    assert proxy.endpoints and proxy.endpoints.http
    hp = proxy.endpoints.http[1]
    first = http_get(hp, f"http://rebind.test:{port}/hello.txt")
    assert first.startswith(b"HTTP/1.1 200"), first[:200]
    second = http_get(hp, f"http://rebind.test:{port}/hello.txt")
    assert b"x-corral-block: not_allowed_local" in second
    mixed = http_get(hp, f"http://mixed.test:{port}/hello.txt")
    assert b"x-corral-block: not_allowed_local" in mixed  # one bad address poisons the answer
    assert net.connects == [("93.184.216.34", port)]  # exactly the checked address, once
    assert events[-1].source == "address:private"


def test_denied_and_unknown_names_are_never_resolved(make_proxy: ProxyFactory) -> None:
    net = RecordingNet({}, 9)
    proxy, _ = make_proxy(PolicyInputs(domains={"no.test": "deny"}),
                          resolver=net.resolve, connector=net.connect)
    assert proxy.endpoints and proxy.endpoints.http
    for url in ("http://no.test/", "http://unknown.test/"):
        assert b"403" in http_get(proxy.endpoints.http[1], url)
    assert net.resolved == [] and net.connects == []


@pytest.mark.parametrize("addr", ["10.0.0.1", "169.254.169.254", "100.64.1.1", "192.168.0.1",
                                  "fd00::1", "fe80::1", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe",
                                  "224.0.0.1", "0.0.0.0", "255.255.255.255"])
def test_names_resolving_to_private_ranges_never_connect(
    addr: str, make_proxy: ProxyFactory
) -> None:
    net = RecordingNet({"inside.test": [[addr]]}, 9)
    proxy, _ = make_proxy(PolicyInputs(domains={"inside.test": "allow"}),
                          resolver=net.resolve, connector=net.connect)
    assert proxy.endpoints and proxy.endpoints.http
    assert b"not_allowed_local" in http_get(proxy.endpoints.http[1], "http://inside.test/")
    assert net.connects == []


# --- SOCKS5 raw --------------------------------------------------------------------------------

def socks_connect(port: int, atyp_addr: bytes, dport: int, cmd: int = 1) -> tuple[socket.socket, bytes]:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"\x05\x01\x00")
    assert s.recv(2) == b"\x05\x00"
    s.sendall(bytes([5, cmd, 0]) + atyp_addr + struct.pack(">H", dport))
    return s, s.recv(10)


def test_socks5_ipv4_domain_ipv6_and_refusals(web: tuple[int, Path], make_proxy: ProxyFactory) -> None:
    port, _ = web
    inp = local(port, "127.0.0.1", "localhost")
    inp.domains["blocked.test"] = "deny"
    proxy, events = make_proxy(inp)
    assert proxy.endpoints and proxy.endpoints.socks
    sp = proxy.endpoints.socks[1]
    s, rep = socks_connect(sp, b"\x01" + socket.inet_aton("127.0.0.1"), port)
    assert rep[1] == 0
    s.sendall(b"GET /hello.txt HTTP/1.0\r\n\r\n")
    assert b"hello through the proxy" in s.recv(65536) + s.recv(65536)
    s.close()
    s, rep = socks_connect(sp, b"\x03\x09localhost", port)
    assert rep[1] == 0
    s.close()
    for addr, dport in ((b"\x03\x0cblocked.test", port), (b"\x03\x0a2130706433", port + 1),
                        (b"\x01" + socket.inet_aton("10.1.1.1"), port),
                        (b"\x04" + socket.inet_pton(socket.AF_INET6, "::1"), port)):
        s, rep = socks_connect(sp, addr, dport)
        assert rep[1] == 0x02, addr  # connection not allowed by ruleset
        s.close()
    s, rep = socks_connect(sp, b"\x01" + socket.inet_aton("127.0.0.1"), port, cmd=3)
    assert rep[1] == 0x02  # UDP ASSOCIATE refused
    s, rep = socks_connect(sp, b"\x01" + socket.inet_aton("127.0.0.1"), port, cmd=2)
    assert rep[1] == 0x07  # BIND unsupported
    s, rep = socks_connect(sp, b"\x01" + socket.inet_aton("127.0.0.1"), 0)
    assert rep[1] == 0x02  # port 0
    assert [e.protocol for e in events if e.decision == "allow"] == ["socks5_tcp"] * 2


def test_socks_bad_versions_and_methods(make_proxy: ProxyFactory) -> None:
    proxy, _ = make_proxy()
    assert proxy.endpoints and proxy.endpoints.socks
    sp = proxy.endpoints.socks[1]
    with socket.create_connection(("127.0.0.1", sp), timeout=5) as s:
        s.sendall(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00")
        assert s.recv(8)[1] == 0x5B
    with socket.create_connection(("127.0.0.1", sp), timeout=5) as s:
        s.sendall(b"\x05\x01\x02")  # only user/pass offered, none configured
        assert s.recv(2) == b"\x05\xff"
    with socket.create_connection(("127.0.0.1", sp), timeout=5) as s:
        s.sendall(b"\x05\x01\x00\x05\x01\x00\x09")  # bad ATYP
        assert s.recv(2) == b"\x05\x00"
        assert s.recv(10)[1] == 0x08


def test_socks5_udp_associate_when_allowed(make_proxy: ProxyFactory) -> None:
    import threading

    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))
    echo.settimeout(0.1)
    eport = echo.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = echo.recvfrom(2048)
            except OSError:
                continue
            echo.sendto(b"echo:" + data, addr)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    inp = local(eport)
    inp.allow_udp = True
    proxy, events = make_proxy(inp)
    assert proxy.endpoints and proxy.endpoints.socks
    ctl = socket.create_connection(("127.0.0.1", proxy.endpoints.socks[1]), timeout=5)
    ctl.sendall(b"\x05\x01\x00")
    assert ctl.recv(2) == b"\x05\x00"
    ctl.sendall(b"\x05\x03\x00\x01" + socket.inet_aton("0.0.0.0") + b"\x00\x00")
    rep = ctl.recv(10)
    assert rep[:4] == b"\x05\x00\x00\x01"
    relay = (socket.inet_ntoa(rep[4:8]), struct.unpack(">H", rep[8:10])[0])
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    hdr = b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", eport)
    u.sendto(hdr + b"ping", relay)
    data, _ = u.recvfrom(2048)
    assert data == hdr + b"echo:ping"
    # A private destination is refused at the gate: nothing is sent, nothing comes back.
    u.sendto(b"\x00\x00\x00\x01" + socket.inet_aton("10.0.0.1") + struct.pack(">H", 53) + b"q",
             relay)
    u.sendto(hdr + b"again", relay)
    data, _ = u.recvfrom(2048)
    assert data == hdr + b"echo:again"
    assert [(e.protocol, e.decision, e.reason) for e in events] == [
        ("socks5_udp", "allow", "allowed"), ("socks5_udp", "deny", "not_allowed_local")]
    ctl.close()
    u.close()
    stop.set()
    server.join()
    echo.close()
