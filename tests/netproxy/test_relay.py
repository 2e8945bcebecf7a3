"""Tunnel relay: both implementations (splice and the protocol fallback) move bytes exactly,
respect half-close, and release their descriptors."""

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


@pytest.mark.parametrize("use_splice", [True, False])
def test_tunnel_moves_bytes_exactly_with_half_close(
    use_splice: bool, echo_server: int, make_proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay, "_SPLICE", use_splice)
    proxy, _ = make_proxy(local(echo_server))
    assert proxy.endpoints and proxy.endpoints.http
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
