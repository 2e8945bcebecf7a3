"""Fixtures: real loopback servers and a real proxy thread. Missing tools fail loudly."""

from __future__ import annotations

import http.server
import shutil
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from corral.netproxy import NetworkDecision, PolicyInputs, Proxy, build_policy
from corral.netproxy.addresses import IPAddress
from corral.netproxy.gate import direct_connector
from corral.netproxy.udp import Deliver, open_datagram


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is required for this test (scripts/setup --dev installs it)")
    return path


class _Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        reply = b"got " + str(len(body)).encode() + b" " + body[:32]
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.send_header("X-Seen-Proxy-Auth", str(self.headers.get("Proxy-Authorization")))
        self.send_header("X-Seen-Connection", str(self.headers.get("Connection")))
        self.end_headers()
        self.wfile.write(reply)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A plain HTTP server on 127.0.0.1 serving ``tmp_path/www``."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_text("hello through the proxy\n")

    def handler(*a: object, **kw: object) -> _Handler:
        return _Handler(*a, directory=str(root), **kw)  # type: ignore[arg-type]

    srv = Server(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1], root
    srv.shutdown()
    srv.server_close()


ProxyFactory = Callable[..., tuple[Proxy, list[NetworkDecision]]]


@pytest.fixture
def make_proxy() -> Iterator[ProxyFactory]:
    """Proxies whose default connector and UDP socket opener refuse (and record) any
    non-loopback destination, so no test can send a packet off this machine even if the proxy
    had a bug."""
    started: list[Proxy] = []
    violations: list[str] = []

    async def loopback_only(ip: IPAddress, port: int):  # type: ignore[no-untyped-def]
        if not ip.is_loopback:
            violations.append(f"{ip}:{port}")
            raise OSError(f"test guard: refusing non-loopback connect to {ip}")
        return await direct_connector(ip, port)

    async def udp_loopback_only(ip: IPAddress, port: int, deliver: Deliver):  # type: ignore[no-untyped-def]
        if not ip.is_loopback:
            violations.append(f"udp {ip}:{port}")
            raise OSError(f"test guard: refusing non-loopback datagrams to {ip}")
        return await open_datagram(ip, port, deliver)

    def make(inputs: PolicyInputs | None = None, **kw: object) -> tuple[Proxy, list[NetworkDecision]]:
        events: list[NetworkDecision] = []
        kw.setdefault("connector", loopback_only)
        p = Proxy(build_policy(inputs or PolicyInputs()), on_decision=events.append, **kw)  # type: ignore[arg-type]
        p._socks.open_datagram = udp_loopback_only
        p.start()
        started.append(p)
        return p, events

    yield make
    for p in started:
        p.stop()
    assert violations == [], f"proxy tried to connect off-machine: {violations}"


def local(port: int, *hosts: str) -> PolicyInputs:
    """Policy allowing the named hosts and their loopback server on ``port``."""
    names = hosts or ("127.0.0.1",)
    return PolicyInputs(
        domains=dict.fromkeys(names, "allow"),
        allow_local=[f"{h}:{port}" for h in names],
    )


@pytest.fixture
def make_tls_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """HTTPS servers on 127.0.0.1 with a trustme certificate for the given names; each answers
    one request with ``secure hello``. Returns (port, CA pem path)."""
    import socket
    import ssl

    import trustme

    stops: list[tuple[threading.Event, socket.socket, threading.Thread]] = []

    def make(*names: str) -> tuple[int, Path]:
        ca = trustme.CA()
        cert = ca.issue_cert(*names)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        srv = socket.create_server(("127.0.0.1", 0))
        srv.settimeout(0.2)
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except (TimeoutError, OSError):
                    continue
                try:
                    with ctx.wrap_socket(conn, server_side=True) as s:
                        s.recv(65536)
                        body = b"secure hello\n"
                        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                                  b"Connection: close\r\n\r\n%s" % (len(body), body))
                except (ssl.SSLError, OSError):
                    pass

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        pem = tmp_path / f"ca-{len(stops)}.pem"
        ca.cert_pem.write_to_path(str(pem))
        stops.append((stop, srv, t))
        return srv.getsockname()[1], pem

    yield make
    for stop, srv, t in stops:
        # Never close a socket another thread is blocked on: its descriptor number would be
        # reused by the next test's sockets while that thread still uses it.
        stop.set()
        t.join()
        srv.close()
