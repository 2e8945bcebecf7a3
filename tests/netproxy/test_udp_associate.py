"""SOCKS5 UDP ASSOCIATE through the unix socket: the framed form (what proxyinit speaks for a
client inside a ``proxy``-mode sandbox), and real sandboxes whose clients send datagrams to a
UDP echo server outside. The gate decides every destination exactly as for IP clients; refused
non-loopback destinations are caught by the ``make_proxy`` guard before any packet is sent."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.netproxy import (
    AskAnswer,
    Limits,
    Listen,
    NetworkDecision,
    NetworkQuestion,
    PolicyInputs,
    Proxy,
    proxy_env,
    udp,
)
from corral.netproxy.addresses import IPAddress
from corral.netproxy.udp import (
    CMD_UDP_FRAMED,
    MAX_FRAME,
    MAX_QUEUED,
    MAX_WAITING,
    UdpSocket,
    datagram_header,
    parse_datagram,
)
from corral.sandbox import proxyinit

from .conftest import ProxyFactory, need


class UdpEcho:
    """A UDP server on 127.0.0.1 answering ``echo:`` + payload; records every payload."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.seen: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                continue
            self.seen.append(data)
            self.sock.sendto(b"echo:" + data[:65000], addr)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[UdpEcho]:
    e = UdpEcho()
    yield e
    e.close()


@pytest.fixture
def silent() -> Iterator[UdpEcho]:
    """A second UDP server the policy does NOT allow: it must never receive anything."""
    e = UdpEcho()
    yield e
    e.close()


async def fake_dns(host: str, port: int) -> list[IPAddress]:
    table = {"echo.test": "127.0.0.1", "inside.test": "10.0.0.5", "pub.test": "93.184.216.34"}
    if host not in table:
        raise OSError(f"test resolver: no answer for {host}")
    return [ipaddress.ip_address(table[host])]


def udp_policy(echo_port: int, allow_udp: bool = True) -> PolicyInputs:
    return PolicyInputs(
        domains={"127.0.0.1": "allow", "echo.test": "allow", "inside.test": "allow",
                 "denied.test": "deny"},
        allow_local=[f"127.0.0.1:{echo_port}", f"echo.test:{echo_port}"],
        allow_udp=allow_udp,
    )


def unix_proxy(make_proxy: ProxyFactory, inputs: PolicyInputs, sock: Path,
               **kw: object) -> tuple[Proxy, list[NetworkDecision]]:
    return make_proxy(inputs, listen=Listen(http=None, socks=("127.0.0.1", 0), unix=str(sock)),
                      resolver=fake_dns, **kw)


def recvn(s: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def hdr(ip: str, port: int) -> bytes:
    return datagram_header(ipaddress.ip_address(ip), port)


def framed(path: Path, cmd: int = CMD_UDP_FRAMED) -> tuple[socket.socket, bytes]:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(str(path))
    s.sendall(b"\x05\x01\x00")
    assert recvn(s, 2) == b"\x05\x00"
    s.sendall(bytes([5, cmd, 0, 1]) + bytes(6))
    return s, recvn(s, 10)


def send_frame(s: socket.socket, datagram: bytes) -> None:
    s.sendall(struct.pack(">H", len(datagram)) + datagram)


def recv_frame(s: socket.socket) -> bytes:
    (n,) = struct.unpack(">H", recvn(s, 2))
    return recvn(s, n)


def udp_events(events: list[NetworkDecision]) -> list[tuple[str, int, str, str]]:
    return [(e.host, e.port, e.decision, e.reason) for e in events if e.protocol == "socks5_udp"]


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle(proxy: Proxy) -> None:
    deadline = time.monotonic() + 5
    while proxy.stats.active and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proxy.stats.active == 0


# --- the framed form, spoken directly on the unix socket ---------------------------------------

def test_framed_association_echoes_and_gates_each_destination(
    make_proxy: ProxyFactory, echo: UdpEcho, silent: UdpEcho, tmp_path: Path
) -> None:
    sock = tmp_path / "proxy.sock"
    _, events = unix_proxy(make_proxy, udp_policy(echo.port), sock)
    s, rep = framed(sock)
    assert rep == b"\x05\x00\x00\x01" + bytes(6)
    to_echo = hdr("127.0.0.1", echo.port)
    send_frame(s, to_echo + b"ping")
    assert recv_frame(s) == to_echo + b"echo:ping"
    big = os.urandom(60000)
    send_frame(s, to_echo + big)
    assert recv_frame(s) == to_echo + b"echo:" + big
    send_frame(s, b"\x00\x00\x00\x03\x09echo.test" + struct.pack(">H", echo.port) + b"named")
    assert recv_frame(s) == to_echo + b"echo:named"  # replies name the address that answered
    send_frame(s, hdr("127.0.0.1", silent.port) + b"not allowed")
    send_frame(s, b"\x00\x00\x00\x03\x0bdenied.test\x00\x35" + b"denied")
    send_frame(s, to_echo + b"last")
    assert recv_frame(s) == to_echo + b"echo:last"
    s.close()
    assert echo.seen == [b"ping", big, b"named", b"last"]
    assert silent.seen == []
    assert udp_events(events) == [
        ("127.0.0.1", echo.port, "allow", "allowed"), ("echo.test", echo.port, "allow", "allowed"),
        ("127.0.0.1", silent.port, "deny", "not_allowed_local"),
        ("denied.test", 53, "deny", "denied")]


def test_hostile_frames_are_dropped_and_the_proxy_keeps_serving(
    make_proxy: ProxyFactory, echo: UdpEcho, tmp_path: Path
) -> None:
    sock = tmp_path / "proxy.sock"
    proxy, events = unix_proxy(make_proxy, udp_policy(echo.port), sock)
    to_echo = hdr("127.0.0.1", echo.port)
    s, _ = framed(sock)
    for junk in (b"", b"\x00", b"\x00\x00\x00", b"\x00\x00\x00\x09" + bytes(8) + b"bad atyp",
                 b"\x00\x00\x01\x01" + to_echo[4:] + b"fragment", b"\x05\x00" + to_echo[2:],
                 b"\x00\x00\x00\x03\x00\x00\x35zero-length name",
                 b"\x00\x00\x00\x03\x40short", b"\x00\x00\x00\x04" + bytes(10),
                 b"\x00\x00\x00\x01\x7f\x00\x00\x01", b"\x00\x00\x00\x03\x02\xff\xfe\x00\x35x"):
        send_frame(s, junk)
    send_frame(s, to_echo + b"still here")
    assert recv_frame(s) == to_echo + b"echo:still here"
    s.sendall(b"\xff\xff" + b"x" * 100)  # a frame cut short by the client going away
    s.close()
    s, _ = framed(sock)
    send_frame(s, to_echo + b"next")
    assert recv_frame(s) == to_echo + b"echo:next"
    s.close()
    assert echo.seen == [b"still here", b"next"]
    # the undecodable name reached the gate, which refused it as a bad host (journaled)
    assert [e[2:] for e in udp_events(events)] == [
        ("deny", "bad_host"), ("allow", "allowed"), ("allow", "allowed")]
    settle(proxy)


def test_unknown_destinations_are_asked_once_while_datagrams_wait(
    make_proxy: ProxyFactory, echo: UdpEcho, tmp_path: Path
) -> None:
    """The ask path as for TCP: one question per destination; datagrams sent meanwhile wait
    (up to MAX_WAITING) and go out after an allow; a deny drops them and is journaled."""
    sock = tmp_path / "proxy.sock"
    release = threading.Event()
    asked: list[str] = []

    def ask(q: NetworkQuestion) -> AskAnswer:
        asked.append(f"{q.host}:{q.port}/{q.protocol}")
        release.wait(5)
        return AskAnswer(q.host == "echo.test", "user")

    # any port: the address check opens, the host is still asked (an exact entry would not be)
    inputs = PolicyInputs(allow_local=["echo.test:*"], allow_udp=True)
    _, events = unix_proxy(make_proxy, inputs, sock, ask=ask)
    s, _ = framed(sock)
    named = b"\x00\x00\x00\x03\x09echo.test" + struct.pack(">H", echo.port)
    for i in range(MAX_WAITING + 4):
        send_frame(s, named + b"%d" % i)
    send_frame(s, b"\x00\x00\x00\x03\x0aother.test\x00\x35" + b"dropped")
    deadline = time.monotonic() + 5
    while not asked and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert echo.seen == []  # nothing leaves before the answer
    release.set()
    to_echo = hdr("127.0.0.1", echo.port)
    replies = sorted(recv_frame(s) for _ in range(MAX_WAITING))
    assert replies == sorted(to_echo + b"echo:%d" % i for i in range(MAX_WAITING))
    send_frame(s, named + b"later")
    assert recv_frame(s) == to_echo + b"echo:later"
    deadline = time.monotonic() + 5
    while len(udp_events(events)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    s.close()
    assert sorted(asked) == [f"echo.test:{echo.port}/socks5_udp", "other.test:53/socks5_udp"]
    assert sorted(e[:3] for e in udp_events(events)) == [
        ("echo.test", echo.port, "allow"), ("other.test", 53, "deny")]


def test_a_client_that_stops_reading_loses_replies_and_stalls_nothing(
    make_proxy: ProxyFactory, echo: UdpEcho, tmp_path: Path
) -> None:
    """Replies towards a framed client that does not read are buffered up to MAX_QUEUED, then
    dropped (UDP may drop); other associations keep working meanwhile. Also: a datagram too
    big for UDP (a full 65,535-byte frame) is dropped by the kernel's refusal, quietly."""
    sock = tmp_path / "proxy.sock"
    proxy, _ = unix_proxy(make_proxy, udp_policy(echo.port), sock)
    to_echo = hdr("127.0.0.1", echo.port)
    stuck, _ = framed(sock)
    send_frame(stuck, to_echo + b"route")  # decided once; later datagrams go straight out
    assert recv_frame(stuck) == to_echo + b"echo:route"
    send_frame(stuck, to_echo + b"x" * (MAX_FRAME - len(to_echo)))
    sent, batch = 2500, 25
    frame = struct.pack(">H", len(to_echo) + 1200) + to_echo + b"y" * 1200
    deadline = time.monotonic() + 30
    for i in range(0, sent, batch):
        stuck.sendall(frame * batch)
        while len(echo.seen) < 1 + i + batch and time.monotonic() < deadline:
            time.sleep(0.001)  # pace: the echo server must not drop any
    assert len(echo.seen) == 1 + sent and all(len(p) == 1200 for p in echo.seen[1:])
    other, _ = framed(sock)
    send_frame(other, to_echo + b"other")
    assert recv_frame(other) == to_echo + b"echo:other"
    other.close()
    stuck.settimeout(0.5)
    got = 0
    with pytest.raises(TimeoutError):
        while True:
            got += len(recv_frame(stuck)) + 2
    stuck.close()
    assert 0 < got <= MAX_QUEUED + (512 << 10), got  # the rest of the 3 MB was dropped
    settle(proxy)


def test_framed_form_only_on_the_unix_socket(
    make_proxy: ProxyFactory, echo: UdpEcho, tmp_path: Path
) -> None:
    sock = tmp_path / "proxy.sock"
    proxy, _ = unix_proxy(make_proxy, udp_policy(echo.port), sock)
    assert proxy.endpoints and proxy.endpoints.socks
    with socket.create_connection(proxy.endpoints.socks, timeout=5) as s:
        s.sendall(b"\x05\x01\x00")
        assert recvn(s, 2) == b"\x05\x00"
        s.sendall(bytes([5, CMD_UDP_FRAMED, 0, 1]) + bytes(6))
        assert recvn(s, 10)[1] == 0x07  # an IP client: command not supported
    s2, rep = framed(sock, cmd=3)
    assert rep[1] == 0x01  # plain UDP ASSOCIATE over the unix socket: no address to send UDP to
    s2.close()
    assert proxyinit.CMD_UDP_FRAMED == CMD_UDP_FRAMED and proxyinit.MAX_FRAME == MAX_FRAME


def test_udp_off_refuses_the_framed_form_with_0x02_and_journals(
    make_proxy: ProxyFactory, echo: UdpEcho, tmp_path: Path
) -> None:
    sock = tmp_path / "proxy.sock"
    _, events = unix_proxy(make_proxy, udp_policy(echo.port, allow_udp=False), sock)
    s, rep = framed(sock)
    assert rep[1] == 0x02
    s.close()
    assert udp_events(events) == [("udp-associate", 0, "deny", "udp_not_allowed")]
    assert events[0].source == "policy"


def test_refused_off_machine_destinations_never_get_a_socket(
    make_proxy: ProxyFactory, echo: UdpEcho, tmp_path: Path
) -> None:
    """Private answers, metadata addresses and unlisted public hosts are refused at the gate;
    the make_proxy guard fails the test if a socket towards any of them was even opened."""
    sock = tmp_path / "proxy.sock"
    _, events = unix_proxy(make_proxy, udp_policy(echo.port), sock)
    s, _ = framed(sock)
    for dest in (b"\x03\x0binside.test", b"\x03\x08pub.test",
                 b"\x01" + socket.inet_aton("169.254.169.254"), b"\x01" + socket.inet_aton("8.8.8.8"),
                 b"\x04" + socket.inet_pton(socket.AF_INET6, "fd00::1")):
        send_frame(s, b"\x00\x00\x00" + dest + b"\x00\x35" + b"query")
    to_echo = hdr("127.0.0.1", echo.port)
    send_frame(s, to_echo + b"done")
    assert recv_frame(s) == to_echo + b"echo:done"
    s.close()
    # a name is allowed by policy first, then refused for what it resolves to (as for TCP)
    assert sorted((e[0], e[2], e[3].split()[0]) for e in udp_events(events)) == sorted([
        ("inside.test", "allow", "allowed"), ("inside.test", "deny", "not_allowed_local"),
        ("pub.test", "deny", "not_allowed"), ("169.254.169.254", "deny", "not_allowed_local"),
        ("8.8.8.8", "deny", "not_allowed"), ("fd00::1", "deny", "not_allowed_local"),
        ("127.0.0.1", "allow", "allowed")])


def test_many_associations_leave_no_descriptors(
    make_proxy: ProxyFactory, echo: UdpEcho, tmp_path: Path
) -> None:
    sock = tmp_path / "proxy.sock"
    proxy, _ = unix_proxy(make_proxy, udp_policy(echo.port), sock)
    assert proxy.endpoints and proxy.endpoints.socks
    to_echo = hdr("127.0.0.1", echo.port)
    before, live = fd_count(), UdpSocket.live
    for i in range(60):
        s, _ = framed(sock)
        send_frame(s, to_echo + b"%d" % i)
        assert recv_frame(s) == to_echo + b"echo:%d" % i
        s.close()
    for i in range(20):  # IP clients share the same association core
        ctl = socket.create_connection(proxy.endpoints.socks, timeout=5)
        ctl.sendall(b"\x05\x01\x00")
        assert recvn(ctl, 2) == b"\x05\x00"
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        u.settimeout(5)
        ctl.sendall(b"\x05\x03\x00\x01" + bytes(4) + struct.pack(">H", u.getsockname()[1]))
        rep = recvn(ctl, 10)
        u.sendto(to_echo + b"ip%d" % i, (socket.inet_ntoa(rep[4:8]), struct.unpack(">H", rep[8:])[0]))
        assert u.recv(2048) == to_echo + b"echo:ip%d" % i
        u.close()
        ctl.close()
    settle(proxy)
    assert fd_count() == before
    assert UdpSocket.live == live


def test_udp_sockets_have_a_process_wide_budget(
    make_proxy: ProxyFactory, echo: UdpEcho, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each allowed destination holds a socket; beyond MAX_SOCKETS (process-wide) new
    destinations are dropped, so an agent cannot use up the proxy's descriptors."""
    sock = tmp_path / "proxy.sock"
    others = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for o in others:
        o.bind(("127.0.0.1", 0))
    ports = [o.getsockname()[1] for o in others]
    inputs = udp_policy(echo.port)
    inputs.allow_local += [f"127.0.0.1:{p}" for p in ports]
    proxy, _ = unix_proxy(make_proxy, inputs, sock)
    monkeypatch.setattr(udp, "MAX_SOCKETS", UdpSocket.live + 3)
    to_echo = hdr("127.0.0.1", echo.port)
    s, _ = framed(sock)
    for p in ports:
        send_frame(s, hdr("127.0.0.1", p) + b"fill")
        assert others[ports.index(p)].recv(100) == b"fill"
    send_frame(s, to_echo + b"over budget")
    s2, _ = framed(sock)
    send_frame(s2, to_echo + b"over budget too")
    s2.settimeout(0.3)
    with pytest.raises(TimeoutError):
        recv_frame(s2)
    s.close()
    s2.close()
    settle(proxy)
    s, _ = framed(sock)  # the budget came back with the closed association
    send_frame(s, to_echo + b"fits again")
    assert recv_frame(s) == to_echo + b"echo:fits again"
    s.close()
    assert echo.seen == [b"fits again"]
    for o in others:
        o.close()


def test_ipv6_ip_client_and_destination(make_proxy: ProxyFactory, tmp_path: Path) -> None:
    """The shared association core with an IPv6 client and an IPv6 destination (atyp 4)."""
    echo6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    echo6.bind(("::1", 0))
    echo6.settimeout(5)
    eport = echo6.getsockname()[1]
    proxy, events = make_proxy(
        PolicyInputs(domains={"::1": "allow"}, allow_local=[f"[::1]:{eport}"], allow_udp=True),
        listen=Listen(http=None, socks=("::1", 0)))
    assert proxy.endpoints and proxy.endpoints.socks
    with socket.create_connection(proxy.endpoints.socks, timeout=5) as ctl:
        ctl.sendall(b"\x05\x01\x00")
        assert recvn(ctl, 2) == b"\x05\x00"
        ctl.sendall(b"\x05\x03\x00\x04" + bytes(18))
        rep = recvn(ctl, 22)
        assert rep[:4] == b"\x05\x00\x00\x04" and rep[4:20] == socket.inet_pton(socket.AF_INET6, "::1")
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u.settimeout(5)
        to = hdr("::1", eport)
        u.sendto(to + b"six", ("::1", struct.unpack(">H", rep[20:22])[0]))
        data, peer = echo6.recvfrom(100)
        assert data == b"six"
        echo6.sendto(b"back", peer)
        assert u.recv(100) == to + b"back"
        u.close()
    echo6.close()
    assert udp_events(events) == [("::1", eport, "allow", "allowed")]


@given(st.lists(st.binary(max_size=300), max_size=20), st.lists(st.integers(1, 700), max_size=30))
def test_split_frames_reassembles_any_chunking(datagrams: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(struct.pack(">H", len(d)) + d for d in datagrams)
    got: list[bytes] = []
    buf = bytearray()
    pos = 0
    for cut in [*cuts, len(stream)]:
        buf += stream[pos:pos + cut]
        pos += cut
        del buf[:udp.split_frames(buf, got.append)]
    assert got == [d for d in datagrams if d] and buf == b""


_frames = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.tuples(st.sampled_from([b"\x00\x00\x00\x01", b"\x00\x00\x00\x03", b"\x00\x00\x00\x04",
                                   b"\x00\x00\x01\x01", b"\x00\x00\x00\x09"]),
                  st.binary(max_size=30)).map(b"".join),
    ).map(lambda d: struct.pack(">H", len(d)) + d),
    max_size=12,
).map(b"".join)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(stream=_frames, tail=st.binary(max_size=8))
def test_fuzzed_frame_streams(stream: bytes, tail: bytes, fuzz_proxy: tuple[Path, int]) -> None:
    sock, port = fuzz_proxy
    s, _ = framed(sock)
    s.sendall(stream + tail)
    to_echo = hdr("127.0.0.1", port)
    if not tail:  # still in step: the association must still answer
        send_frame(s, to_echo + b"alive")
        assert recv_frame(s) == to_echo + b"echo:alive"
    s.close()


@pytest.fixture
def fuzz_proxy(make_proxy: ProxyFactory, echo: UdpEcho, tmp_path: Path) -> tuple[Path, int]:
    sock = tmp_path / "fuzz.sock"
    unix_proxy(make_proxy, udp_policy(echo.port), sock)
    return sock, echo.port


@given(st.binary(max_size=64))
def test_parse_datagram_never_raises(data: bytes) -> None:
    parsed = parse_datagram(data)
    if parsed is not None:
        _host, port, payload = parsed
        assert 0 <= port < 65536 and data.endswith(payload)


# --- real sandboxes: proxyinit + a Python SOCKS5 UDP client inside -----------------------------

CLIENT = r'''
import json, socket, struct, sys
P = json.loads(sys.argv[1])
out = {}

def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b

def udp(host="127.0.0.1"):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((host, 0))
    u.settimeout(3)
    return u

def greet(auth=None):
    c = socket.create_connection(("127.0.0.1", 1080), timeout=5)
    if auth:
        c.sendall(b"\x05\x01\x02")
        assert recvn(c, 2) == b"\x05\x02"
        u, p = auth.encode(), auth.encode()
        c.sendall(b"\x01" + bytes([len(u)]) + u + bytes([len(p)]) + p)
        assert recvn(c, 2) == b"\x01\x00"
    else:
        c.sendall(b"\x05\x01\x00")
        assert recvn(c, 2) == b"\x05\x00"
    return c

def associate(u, auth=None, cmd=3):
    c = greet(auth)
    c.sendall(bytes([5, cmd, 0, 1]) + bytes(4) + struct.pack(">H", u.getsockname()[1]))
    rep = recvn(c, 10)
    return c, rep, (socket.inet_ntoa(rep[4:8]), struct.unpack(">H", rep[8:10])[0])

def hdr(port, ip="127.0.0.1"):
    return b"\x00\x00\x00\x01" + socket.inet_aton(ip) + struct.pack(">H", port)

def reply(u, timeout=3):
    u.settimeout(timeout)
    try:
        return u.recv(70000).decode("latin-1")
    except (socket.timeout, ConnectionRefusedError):
        return None

E = P["echo"]
if P["mode"] == "on":
    u = udp()
    c, rep, relay = associate(u)
    out["rep"] = rep[:4].hex()
    out["relay_host"] = relay[0]
    intruder, other_ip = udp(), udp("127.0.0.2")
    intruder.sendto(hdr(E) + b"intruder", relay)        # same address, another port
    other_ip.sendto(hdr(E) + b"other-ip", relay)        # another inside address
    u.sendto(hdr(E) + b"ping", relay)
    out["ping"] = reply(u)
    out["intruder_reply"] = reply(intruder, 0.3)
    big = b"B" * 60000
    u.sendto(hdr(E) + big, relay)
    out["big_ok"] = reply(u) == (hdr(E) + b"echo:" + big).decode("latin-1")
    u.sendto(b"\x00\x00\x00\x03\x09echo.test" + struct.pack(">H", E) + b"named", relay)
    out["named"] = reply(u)
    u.sendto(b"\x00\x00\x01\x01" + hdr(E)[4:] + b"fragment", relay)
    u.sendto(hdr(P["silent"]) + b"to-silent", relay)
    c.sendall(b"\x00\x05after the request")             # must not reach the proxy as a frame
    u.sendto(hdr(E) + b"after", relay)
    out["after"] = reply(u)
    c.sendall(bytes([5, 0x83, 0, 1]) + bytes(6))
    c.close()
    import time; time.sleep(0.3)
    u.sendto(hdr(E) + b"closed", relay)
    out["after_close"] = reply(u, 0.5)
    ok = 0
    for i in range(P["rounds"]):
        v = udp()
        c, rep, relay = associate(v)
        v.sendto(hdr(E) + b"r%d" % i, relay)
        ok += reply(v) == (hdr(E) + b"echo:r%d" % i).decode("latin-1")
        c.close()
        v.close()
    out["rounds_ok"] = ok
elif P["mode"] == "hostile":
    def raw(data, want):
        c = socket.create_connection(("127.0.0.1", P["port"]), timeout=5)
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        got = b""
        try:
            while len(got) < want and (chunk := c.recv(want - len(got))):
                got += chunk
        except OSError as e:
            got += repr(e).encode()
        c.close()
        return got.hex()
    O = bytes(4) + b"\x00\x00"
    silent = socket.create_connection(("127.0.0.1", P["port"]), timeout=5)
    out["silent"] = silent.recv(12).decode()              # the proxy speaks first: 408
    silent.close()
    out["cut"] = [raw(b"\x05", 2), raw(b"\x05\x02\x00", 2), raw(b"\x05\x01\x00\x05\x03", 2)]
    out["no_methods"] = raw(b"\x05\x00", 2)
    out["bad_atyp"] = raw(b"\x05\x01\x00\x05\x03\x00\x09" + O, 12)
    out["bad_ver"] = raw(b"\x05\x01\x00\x04\x03\x00\x01" + O, 12)
    out["empty_name"] = raw(b"\x05\x01\x00\x05\x03\x00\x03\x00\x00\x00", 12)
    out["framed_name"] = raw(b"\x05\x01\x00\x05\x83\x00\x03\x01a\x00\x00", 12)
    out["junk_methods"] = raw(b"\x05\xff" + bytes(range(255)) + b"\x05\x03\x00\x01" + O, 12)
    u = udp()
    c, rep, relay = associate(u)
    c.close()                                            # association abandoned at once
    u = udp()
    c, rep, relay = associate(u)
    u.sendto(hdr(E) + b"still", relay)
    out["still"] = reply(u)
else:
    u = udp()
    c, rep, _ = associate(u, auth=P.get("auth"))
    out["udp_rep"] = rep[1]
    c.close()
    c, rep, _ = associate(u, auth=P.get("auth"), cmd=0x83)
    out["framed_rep"] = rep[1]
    c.close()
    c = greet(P.get("auth"))
    c.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", P["web"])
              + b"GET /hello.txt HTTP/1.0\r\n\r\n")       # request and data in one write
    data = b""
    while chunk := c.recv(65536):
        data += chunk
    out["connect"] = data[:10].hex() + " " + data.decode("latin-1").rsplit("\r\n", 1)[-1]
print(json.dumps(out))
'''


def run_inside(tmp_path: Path, sock: Path, params: dict[str, object],
               monkeypatch: pytest.MonkeyPatch, stderr: bool = False) -> Any:
    from corral.sandbox import NetworkPlan, Sandbox, build_plan
    from corral.sandbox.profiles import NetworkMode

    need("bwrap")
    ws, home, ch = tmp_path / "ws", tmp_path / "home", tmp_path / "corral-home"
    for d in (ws, home, ch):
        d.mkdir(exist_ok=True)
    monkeypatch.setenv("CORRAL_HOME", str(ch))
    monkeypatch.setenv("HOME", str(home))
    net = NetworkPlan(mode=NetworkMode.PROXY, proxy_socket=sock, proxy_env=proxy_env(3128, 1080))
    sb = Sandbox(build_plan(":workspace", ws, network=net, home=home, exclude_slash_tmp=True,
                            exclude_tmpdir=True))
    proc = sb.spawn([sys.executable, "-c", CLIENT, json.dumps(params)], ws, None,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=90)
    sb.close()
    assert proc.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    return (result, err) if stderr else result


@pytest.mark.slow
def test_udp_from_inside_a_proxy_sandbox(
    make_proxy: ProxyFactory, echo: UdpEcho, silent: UdpEcho, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock = tmp_path / "proxy.sock"
    proxy, events = unix_proxy(make_proxy, udp_policy(echo.port), sock)
    before = fd_count()
    rounds = 40
    out = run_inside(tmp_path, sock, {"mode": "on", "echo": echo.port, "silent": silent.port,
                                      "rounds": rounds}, monkeypatch)
    to_echo = hdr("127.0.0.1", echo.port).decode("latin-1")
    assert out["rep"] == "05000001" and out["relay_host"] == "127.0.0.1"  # proxyinit's socket
    assert out["ping"] == to_echo + "echo:ping"
    assert out["intruder_reply"] is None
    assert out["big_ok"] is True
    assert out["named"] == to_echo + "echo:named"
    assert out["after"] == to_echo + "echo:after"
    assert out["after_close"] is None  # the association ended with its control connection
    assert out["rounds_ok"] == rounds
    payloads = [p for p in echo.seen if not p.startswith(b"r")]
    assert payloads == [b"ping", b"B" * 60000, b"named", b"after"]  # no intruder, no fragment
    assert silent.seen == []
    assert (("127.0.0.1", silent.port, "deny", "not_allowed_local") in udp_events(events))
    assert {e.decision for e in events if e.host != "127.0.0.1" or e.port != silent.port} == {
        "allow"}
    settle(proxy)
    assert fd_count() == before


@pytest.mark.slow
def test_udp_off_inside_a_sandbox_and_connect_still_relayed(
    make_proxy: ProxyFactory, echo: UdpEcho, web: tuple[int, Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """allow_udp off: 0x02 and one journaled decision. Username/password and CONNECT pass
    through proxyinit's handshake watch unchanged; a client cannot ask for the framed form."""
    port, _ = web
    sock = tmp_path / "proxy.sock"
    inputs = udp_policy(echo.port, allow_udp=False)
    inputs.allow_local.append(f"127.0.0.1:{port}")
    _, events = unix_proxy(make_proxy, inputs, sock, credentials=("corral", "corral"))
    out = run_inside(tmp_path, sock, {"mode": "off", "echo": echo.port, "web": port,
                                      "auth": "corral"}, monkeypatch)
    assert out["udp_rep"] == 0x02
    assert out["framed_rep"] == 0x07  # refused by proxyinit itself, never sent to the proxy
    assert out["connect"] == "05000001000000000000 hello through the proxy\n"
    assert [(e.protocol, e.decision, e.reason) for e in events] == [
        ("socks5_udp", "deny", "udp_not_allowed"), ("socks5_tcp", "allow", "allowed")]


@pytest.mark.slow
def test_hostile_handshakes_inside_leave_proxyinit_serving_quietly(
    make_proxy: ProxyFactory, echo: UdpEcho, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cut, malformed and pipelined handshakes on both bridge ports: clean refusals, no
    traceback on the command's stderr, and the next association still works."""
    sock = tmp_path / "proxy.sock"
    proxy, _ = unix_proxy(make_proxy, udp_policy(echo.port), sock,
                          limits=Limits(head_timeout=0.5))
    for port in (1080, 3128):
        out, err = run_inside(tmp_path, sock, {"mode": "hostile", "echo": echo.port,
                                                "port": port}, monkeypatch, stderr=True)
        assert err == ""
        assert out["silent"] == "HTTP/1.1 408"  # relayed as soon as the proxy sends it
        assert out["cut"] == ["", "", "0500"]  # as the proxy itself would answer
        assert out["no_methods"] == "05ff"
        assert out["bad_atyp"] == "0500" + "05080001000000000000"
        assert out["bad_ver"] == "0500" + "05010001000000000000"
        ours = "0500" + "05000001" + "7f000001"  # proxyinit's own UDP socket
        assert out["empty_name"][:20] == ours and len(out["empty_name"]) == 24
        assert out["framed_name"] == "0500" + "05070001000000000000"
        assert out["junk_methods"][:20] == ours and len(out["junk_methods"]) == 24
        assert out["still"] == hdr("127.0.0.1", echo.port).decode("latin-1") + "echo:still"
    settle(proxy)


@pytest.mark.slow
def test_corral_sandbox_cli_with_allow_udp_in_config(echo: UdpEcho, tmp_path: Path) -> None:
    """What a user runs: ``[network] allow_udp = true`` and ``corral sandbox --network proxy``."""
    need("bwrap")
    home, ch, ws = tmp_path / "home", tmp_path / "corral-home", tmp_path / "ws"
    for d in (home, ch, ws):
        d.mkdir()
    (ch / "config.toml").write_text(
        f'[network]\nallow_udp = true\nallow_local = ["127.0.0.1:{echo.port}"]\n')
    env = dict(os.environ, CORRAL_HOME=str(ch), HOME=str(home),
               CORRAL_SYSTEM_DIR=str(home / "no-system"))
    client = (
        "import socket, struct\n"
        "c = socket.create_connection(('127.0.0.1', 1080), timeout=5)\n"
        "c.sendall(b'\\x05\\x01\\x00'); assert c.recv(2) == b'\\x05\\x00'\n"
        "c.sendall(b'\\x05\\x03\\x00\\x01' + bytes(6)); rep = c.recv(10)\n"
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)\n"
        f"u.sendto(b'\\x00\\x00\\x00\\x01\\x7f\\x00\\x00\\x01' + struct.pack('>H', {echo.port})"
        " + b'cli', (socket.inet_ntoa(rep[4:8]), struct.unpack('>H', rep[8:10])[0]))\n"
        "print(u.recv(2048)[10:].decode())\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "corral", "sandbox", "--network", "proxy",
         "--allow-domain", "127.0.0.1", "--", sys.executable, "-c", client],
        cwd=ws, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "echo:cli\n"
    assert echo.seen == [b"cli"]


class Watch:
    """proxyinit's own connection handler (the SOCKS5 watch) on a loopback port of this test,
    in front of a real proxy; every exception that reaches its loop is recorded."""

    def __init__(self, sock: Path) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        self.errors: list[str] = []
        self.loop.set_exception_handler(
            lambda _loop, ctx: self.errors.append(f"{ctx.get('message')}: {ctx.get('exception')!r}"))
        self.srv = self.loop.run_until_complete(
            asyncio.start_server(proxyinit.connection_handler(str(sock), True), "127.0.0.1", 0))
        self.port: int = self.srv.sockets[0].getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.srv.close()
        self.loop.close()


@pytest.fixture
def watch(make_proxy: ProxyFactory, echo: UdpEcho, tmp_path: Path) -> Iterator[Watch]:
    sock = tmp_path / "watch.sock"
    unix_proxy(make_proxy, udp_policy(echo.port), sock, limits=Limits(head_timeout=0.5))
    w = Watch(sock)
    yield w
    w.close()


def test_a_half_closed_client_still_gets_a_late_answer(
    make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    """A client that half-closes after its request is no longer watched by asyncio; proxyinit
    must keep its handler alive while the proxy takes its time (here: asking)."""
    import gc

    sock = tmp_path / "slow.sock"
    asked = threading.Event()

    def ask(q: NetworkQuestion) -> bool:
        asked.set()
        time.sleep(0.3)
        return False

    make_proxy(PolicyInputs(), listen=Listen(http=None, socks=None, unix=str(sock)), ask=ask)
    w = Watch(sock)
    try:
        with socket.create_connection(("127.0.0.1", w.port), timeout=5) as c:
            c.sendall(b"GET http://slow.test/ HTTP/1.0\r\nHost: slow.test\r\n\r\n")
            c.shutdown(socket.SHUT_WR)
            assert asked.wait(5)
            w.loop.call_soon_threadsafe(gc.collect)
            answer = b""
            while chunk := c.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 403"), answer[:80]
        assert w.errors == []
    finally:
        w.close()


_handshakes = st.lists(st.sampled_from([
    b"\x05", b"\x01", b"\x02", b"\x00", b"\x03", b"\x83", b"\x04", b"\x09", b"\x05\x01\x00",
    b"\x05\x01\x02", b"\x01\x01a\x01b", b"\x05\x03\x00\x01", b"\x05\x01\x00\x01", b"\x7f\x00\x00\x01",
    b"\x00\x35", b"\x03\x05a.bcd", b"\x05\x83\x00\x01", b"\xff" * 4, b"GET / HTTP/1.0\r\n\r\n",
]), max_size=10).map(b"".join)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=_handshakes)
def test_fuzzed_handshakes_through_the_watch(data: bytes, watch: Watch) -> None:
    with socket.create_connection(("127.0.0.1", watch.port), timeout=5) as c:
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536):
            pass
    assert watch.errors == []


@pytest.mark.parametrize("form", ["framed", "ip"])
def test_an_association_with_no_datagrams_for_the_idle_timeout_ends(
    form: str, make_proxy: ProxyFactory, echo: UdpEcho, tmp_path: Path
) -> None:
    """Datagrams keep an association alive past the timeout; silence either way ends it (the
    control connection is closed, and with it the proxy's UDP sockets)."""
    from dataclasses import replace

    sock = tmp_path / "proxy.sock"
    proxy, _ = unix_proxy(make_proxy, replace(udp_policy(echo.port), idle_timeout=0.4), sock)
    to_echo = hdr("127.0.0.1", echo.port)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.settimeout(5)
    if form == "framed":
        ctl, rep = framed(sock)
        assert rep[1] == 0

        def ping(data: bytes) -> bytes:
            send_frame(ctl, to_echo + data)
            return recv_frame(ctl)
    else:
        assert proxy.endpoints and proxy.endpoints.socks
        ctl = socket.create_connection(proxy.endpoints.socks, timeout=5)
        ctl.sendall(b"\x05\x01\x00")
        assert recvn(ctl, 2) == b"\x05\x00"
        ctl.sendall(b"\x05\x03\x00\x01" + bytes(4) + struct.pack(">H", u.getsockname()[1]))
        rep = recvn(ctl, 10)
        relay_at = ("127.0.0.1", struct.unpack(">H", rep[8:10])[0])

        def ping(data: bytes) -> bytes:
            u.sendto(to_echo + data, relay_at)
            return u.recv(70000)
    for i in range(10):  # 1 s of a datagram every 0.1 s: more than twice the timeout
        assert ping(b"%d" % i) == to_echo + b"echo:%d" % i
        quiet_from = time.monotonic()
        time.sleep(0.1)
    ctl.settimeout(5)
    assert ctl.recv(100) == b"", "the association outlived its idle timeout"
    assert time.monotonic() - quiet_from >= 0.4
    ctl.close()
    u.close()
    settle(proxy)
