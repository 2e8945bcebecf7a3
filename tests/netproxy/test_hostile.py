"""Hostile clients: each gets a clean refusal, the proxy keeps serving, no descriptors leak."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

import pytest

from corral.netproxy import Limits, PolicyInputs

from .conftest import ProxyFactory, local


def exchange(port: int, data: bytes, timeout: float = 5, half_close: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return out


HOSTILE = [
    (b"GARBAGE\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/1.1 extra\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/2.0\r\n\r\n", b"505"),
    (b"G(T http://a.test/ HTTP/1.1\r\n\r\n", b"400"),
    (b"GET /local HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
    (b"GET https://a.test/ HTTP/1.1\r\n\r\n", b"400"),
    (b"GET http://user:pw@a.test/ HTTP/1.1\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/1.1\r\n folded\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/1.1\r\nBad Header: x\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/1.1\r\nX: a\nY: b\r\n\r\n", b"400"),  # bare LF
    (b"GET http://a.test/ HTTP/1.1\r\nX: a\rY: b\r\n\r\n", b"400"),  # bare CR
    (b"GET http://a.test/ HTTP/1.1\r\nHost : a.test\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/1.1\r\nX: \x00\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/1.1\r\nContent-Length: +1\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/1.1\r\nContent-Length: 1" + b"0" * 20 + b"\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", b"400"),
    (b"GET http://a.test/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", b"501"),
    (b"GET http://a.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", b"501"),
    (b"GET http://a.test/ HTTP/1.1\r\nTransfer-Encoding:\tchunked \r\nContent-Length: 3\r\n\r\n", b"400"),
    (b"CONNECT a.test HTTP/1.1\r\n\r\n", b"400"),
    (b"CONNECT a.test:0 HTTP/1.1\r\n\r\n", b"403"),
    (b"CONNECT a.test:99999 HTTP/1.1\r\n\r\n", b"403"),
    (b"CONNECT [::1 HTTP/1.1\r\n\r\n", b"400"),
    (b"CONNECT exa\xffmple.com:443 HTTP/1.1\r\n\r\n", b"400"),
    (b"CONNECT 1.2.3.4.5:443 HTTP/1.1\r\n\r\n", b"403"),
    (b"CONNECT 0x7f.1:443 HTTP/1.1\r\n\r\n", b"403"),
    (b"CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n\r\n", b"403"),
    (b"CONNECT 169.254.169.254:80 HTTP/1.1\r\n\r\n", b"403"),
    (b"GET http://a.test/ HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n", b"431"),
    (b"GET http://a.test/ HTTP/1.1\r\nX: " + b"y" * 70_000 + b"\r\n\r\n", b"431"),
    (b"\x05\x01\x00\x05\x01\x00\x03\x00\x00\x50", b"\x05\x00\x05\x02"),  # empty SOCKS name
    (b"\x06\x01\x00", b"400"),  # neither SOCKS5 nor HTTP
    (b"\x00" * 100, b"400"),
]


@pytest.mark.parametrize(("data", "want"), HOSTILE)
def test_hostile_request_gets_clean_refusal(data: bytes, want: bytes, make_proxy: ProxyFactory) -> None:
    proxy, _ = make_proxy(PolicyInputs(domains={"*": "allow"}))
    assert proxy.endpoints and proxy.endpoints.http
    out = exchange(proxy.endpoints.http[1], data)
    if want.startswith(b"\x05"):
        assert out[: len(want)] == want
    else:
        assert out.startswith(b"HTTP/1.1 " + want), out[:200]


def test_slow_client_is_cut_off(make_proxy: ProxyFactory) -> None:
    proxy, _ = make_proxy(limits=Limits(head_timeout=0.5))
    assert proxy.endpoints and proxy.endpoints.http
    with socket.create_connection(("127.0.0.1", proxy.endpoints.http[1]), timeout=5) as s:
        s.sendall(b"GET http://a.test/ HTTP/1.1\r\n")
        t0 = time.monotonic()
        time.sleep(0.2)
        s.sendall(b"X-Slow: 1\r\n")
        data = s.recv(4096)
        assert data.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - t0 < 3
    with socket.create_connection(("127.0.0.1", proxy.endpoints.http[1]), timeout=5) as s:
        assert s.recv(4096).startswith(b"HTTP/1.1 408")  # silent client


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_ten_thousand_hostile_requests_leak_nothing(
    web: tuple[int, Path], make_proxy: ProxyFactory
) -> None:
    port, _ = web
    inp = local(port)
    inp.domains["*"] = "allow"
    proxy, _ = make_proxy(inp, limits=Limits(head_timeout=2))
    assert proxy.endpoints and proxy.endpoints.http
    hp = proxy.endpoints.http[1]
    good = f"GET http://127.0.0.1:{port}/hello.txt HTTP/1.1\r\nConnection: close\r\n\r\n".encode()
    assert b"hello through" in exchange(hp, good)
    before = _fds()
    cases = [d for d, _ in HOSTILE]
    for i in range(10_000):
        data = cases[i % len(cases)]
        with socket.create_connection(("127.0.0.1", hp), timeout=5) as s:
            s.sendall(data)
            if i % 7 == 0:
                continue  # abrupt close without reading the answer
            with contextlib.suppress(ConnectionResetError, TimeoutError):
                s.recv(65536)
    deadline = time.monotonic() + 5
    while proxy.stats.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proxy.stats.active == 0
    assert _fds() <= before + 2, (before, _fds())
    assert b"hello through" in exchange(hp, good)  # still serving


def test_socks_fuzz_random_bytes_keep_proxy_serving(
    web: tuple[int, Path], make_proxy: ProxyFactory
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    port, _ = web
    proxy, _ = make_proxy(local(port), limits=Limits(head_timeout=0.3))
    assert proxy.endpoints and proxy.endpoints.socks
    sp = proxy.endpoints.socks[1]

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.binary(max_size=40))
    def one(data: bytes) -> None:
        out = exchange(sp, b"\x05" + data, timeout=3, half_close=True)
        assert len(out) < 4096

    one()
    good = f"GET http://127.0.0.1:{port}/hello.txt HTTP/1.1\r\nConnection: close\r\n\r\n"
    assert b"hello through" in exchange(proxy.endpoints.http[1], good.encode())  # type: ignore[index]
