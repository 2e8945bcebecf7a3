"""Tunnel relay: every implementation (splice by threads, splice by event-loop callbacks, the
protocol fallback) moves bytes exactly, respects half-close, and releases its descriptors."""

from __future__ import annotations

import hashlib
import os
import socket
import socketserver
import threading
import time

import pytest

from corral.netproxy import relay

from .conftest import ProxyFactory, local


@pytest.fixture
def echo_server():  # type: ignore[no-untyped-def]
    """Echoes until the client's EOF, then sends EOF. Stopped with shutdown(), never by closing
    a socket another thread is blocked on (which frees its descriptor number for reuse)."""

    class Echo(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            c = self.request
            while data := c.recv(1 << 16):
                c.sendall(data)
            c.shutdown(socket.SHUT_WR)

    class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True
        block_on_close = True

    srv = Server(("127.0.0.1", 0), Echo)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()
    t.join()


@pytest.mark.parametrize("mode", ["threads", "loop", "protocol"])
def test_tunnel_moves_bytes_exactly_with_half_close(
    mode: str, echo_server: int, make_proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay, "_SPLICE", mode != "protocol")
    monkeypatch.setattr(relay, "THREADED_MAX", 64 if mode == "threads" else 0)
    proxy, _ = make_proxy(local(echo_server))
    assert proxy.endpoints and proxy.endpoints.http
    threads_before = threading.active_count()  # the proxy's own thread included
    fds_before = len(os.listdir("/proc/self/fd"))
    payload = os.urandom(6 << 20)
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", proxy.endpoints.http[1]), timeout=10)
        # The first payload bytes ride in the same packet as CONNECT: they must not be lost.
        s.sendall(f"CONNECT 127.0.0.1:{echo_server} HTTP/1.1\r\n\r\n".encode() + payload[:100])
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 200")
        got = bytearray()

        def reader(sock: socket.socket, out: bytearray) -> None:
            while chunk := sock.recv(1 << 20):
                out.extend(chunk)

        t = threading.Thread(target=reader, args=(s, got))
        t.start()
        s.sendall(payload[100:])
        s.shutdown(socket.SHUT_WR)  # half-close: the echo's remaining bytes must still arrive
        t.join(20)
        s.close()
        assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    deadline = 50
    while proxy.stats.active and deadline:
        time.sleep(0.05)
        deadline -= 1
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 1
    while threading.active_count() > threads_before and deadline:  # splice threads exit
        time.sleep(0.05)
        deadline -= 1
    assert threading.active_count() <= threads_before


def test_threaded_tunnel_ends_when_the_proxy_stops(
    echo_server: int, make_proxy: ProxyFactory
) -> None:
    """A bulk tunnel relayed by splice threads is torn down with the proxy: the client sees the
    connection end, the threads exit and no descriptor is left open."""
    fds_before = len(os.listdir("/proc/self/fd"))
    threads_before = threading.active_count()
    proxy, _ = make_proxy(local(echo_server))
    assert proxy.endpoints and proxy.endpoints.http
    s = socket.create_connection(("127.0.0.1", proxy.endpoints.http[1]), timeout=10)
    s.sendall(f"CONNECT 127.0.0.1:{echo_server} HTTP/1.1\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 200")
    block = b"y" * (1 << 20)
    s.sendall(block)  # past SPLICE_AFTER: the tunnel is now relayed by threads
    got = 0
    while got < len(block):
        got += len(s.recv(1 << 20))
    assert any(t.name == "corral-splice" for t in threading.enumerate())
    proxy.stop()
    while s.recv(1 << 20):  # the proxy ended the tunnel (EOF or reset, never a hang)
        pass
    s.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "corral-splice" for t in threading.enumerate())
    assert len(os.listdir("/proc/self/fd")) <= fds_before + 1
