"""Tunnel relay: every implementation (splice by threads, splice by event-loop callbacks, the
protocol fallback) moves bytes exactly, respects half-close, and releases its descriptors."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import socketserver
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from corral.netproxy import Listen, relay

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


def _tunnel(proxy_port: int, target: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    s.sendall(f"CONNECT 127.0.0.1:{target} HTTP/1.1\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 200")
    return s


def _closed_within(s: socket.socket, seconds: float) -> bool:
    """Whether the proxy ends the tunnel (EOF or reset) within ``seconds``."""
    s.settimeout(seconds)
    try:
        while s.recv(1 << 16):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


@pytest.mark.parametrize("mode", ["threads", "loop", "protocol"])
def test_idle_tunnel_is_closed_and_a_busy_one_is_not(
    mode: str, echo_server: int, make_proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No byte either way for ``idle_timeout`` ends the tunnel (and frees its threads and
    descriptors); a tunnel with a byte now and then outlives the timeout many times over."""
    monkeypatch.setattr(relay, "_SPLICE", mode != "protocol")
    monkeypatch.setattr(relay, "THREADED_MAX", 64 if mode == "threads" else 0)
    threads_before = threading.active_count()
    proxy, _ = make_proxy(replace(local(echo_server), idle_timeout=0.4))
    assert proxy.endpoints and proxy.endpoints.http
    fds_before = len(os.listdir("/proc/self/fd"))
    s = _tunnel(proxy.endpoints.http[1], echo_server)
    if mode != "protocol":  # past SPLICE_AFTER, so the splice relay is what is watched
        block = os.urandom(1 << 20)
        s.sendall(block)
        got = 0
        while got < len(block):
            got += len(s.recv(1 << 20))
    for _ in range(12):  # 1.2 s of a byte every 0.1 s: three times the timeout, still open
        s.sendall(b"k")
        assert s.recv(1) == b"k"
        quiet_from = time.monotonic()
        time.sleep(0.1)
    assert _closed_within(s, 5), "an idle tunnel was left open"
    assert time.monotonic() - quiet_from >= 0.4, "closed before the idle timeout"
    s.close()
    deadline = time.monotonic() + 5
    while (proxy.stats.active or threading.active_count() > threads_before + 1) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "corral-splice" for t in threading.enumerate())
    assert len(os.listdir("/proc/self/fd")) <= fds_before


def test_a_stall_of_the_proxy_itself_is_not_counted_as_the_tunnels_idleness() -> None:
    """The watch's loop blocked for longer than the timeout (a GC pause, a starved proxy) says
    nothing about the tunnel: no byte could have been relayed meanwhile. The watch starts again
    from the late tick and still ends a tunnel that then stays idle for the full timeout.
    (Checks every 0.15 s: only a tick more than 0.15 s late restarts the count, so a loaded
    machine's jitter does not move the bounds.)"""
    timeout = 0.6

    async def watch(stall: float) -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        fired = loop.create_future()
        start = loop.time()
        relay.IdleWatch(timeout, lambda: 0, lambda: fired.set_result(loop.time()))
        await asyncio.sleep(timeout / 2)  # past the first tick: the watch has its reading
        time.sleep(stall)  # the whole loop stops, as under a long pause
        stalled_until = loop.time()
        return await asyncio.wait_for(fired, 5) - start, stalled_until - start

    idle_after, _ = asyncio.run(watch(0))
    assert timeout <= idle_after < timeout * 2, "an idle tunnel was not ended on time"
    idle_after, stalled = asyncio.run(watch(timeout * 2))
    assert idle_after - stalled >= timeout, "the proxy's own stall counted as idle time"
    assert idle_after - stalled < timeout * 2


@pytest.fixture
def source_server():  # type: ignore[no-untyped-def]
    """Sends SIZE bytes to each client, then closes."""
    size = 1 << 20
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                c.sendall(b"z" * size)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], size
    stop.set()
    srv.shutdown(socket.SHUT_RDWR)
    srv.close()
    t.join(5)


@pytest.mark.slow
@pytest.mark.parametrize("client", ["tcp", "unix"])
@pytest.mark.parametrize("mode", ["threads", "loop", "protocol"])
def test_slow_reader_is_not_mistaken_for_idle(
    mode: str, client: str, source_server: tuple[int, int], make_proxy: ProxyFactory,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """A splice thread blocked inside one write to a reader slower than chunk/timeout is still
    progress (the kernel's per-socket counters show it), so the tunnel lives on. Over TCP and
    over the unix socket that sandboxes reach the proxy through."""
    port, size = source_server
    monkeypatch.setattr(relay, "_SPLICE", mode != "protocol")
    monkeypatch.setattr(relay, "THREADED_MAX", 64 if mode == "threads" else 0)
    monkeypatch.setattr(relay, "_BULK_SOCKBUF", 1 << 16)
    monkeypatch.setattr(relay, "_PIPE_SIZE", 1 << 19)  # one chunk takes 1.6 s to drain below
    sock = tmp_path / "p.sock"
    proxy, _ = make_proxy(replace(local(port), idle_timeout=0.5),
                          listen=Listen(socks=None, unix=str(sock)))
    assert proxy.endpoints and proxy.endpoints.http
    s = socket.socket(socket.AF_UNIX if client == "unix" else socket.AF_INET)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 14)
    s.settimeout(10)
    s.connect(str(sock) if client == "unix" else ("127.0.0.1", proxy.endpoints.http[1]))
    s.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    got = len(head.split(b"\r\n\r\n", 1)[1])
    while got < size:  # about 320 KB/s
        chunk = s.recv(1 << 14)
        assert chunk, f"tunnel closed after {got} of {size} bytes"
        got += len(chunk)
        time.sleep(0.05)
    assert got == size
    s.close()
