"""The forwarder's HTTP transport (http.client): through an http:// proxy from the environment
(CONNECT for https, absolute-form for http), NO_PROXY, a refused SOCKS proxy, and a kept-alive
connection the server closed in the meantime."""

from __future__ import annotations

import base64
import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.forward.transport import Connection, ProxyRefused, TransportError
from tests.forward.conftest import corral, fill
from tests.forward.peer import Peer, Store
from tests.loopback import AcceptLoop


class HttpProxy:
    """A minimal http:// proxy: CONNECT tunnels and absolute-form requests, relayed as bytes.
    ``seen`` keeps each request line and its Proxy-Authorization header."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.loop = AcceptLoop(self._one, threaded=True)
        self.port = self.loop.port

    def _one(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            head, rest = head.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            auth = next((v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
                         if k.lower() == "proxy-authorization"), "")
            self.seen.append((lines[0], auth))
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                up = socket.create_connection((host, int(port)))
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                hostport, path = target.removeprefix("http://").split("/", 1)
                host, port = hostport.rsplit(":", 1)
                up = socket.create_connection((host, int(port)))
                up.sendall(f"{method} /{path} {version}\r\n".encode() +
                           "\r\n".join(lines[1:]).encode("latin-1") + b"\r\n\r\n" + rest)
            with up:
                while True:
                    ready, _, _ = select.select([conn, up], [], [], 30)
                    if not ready:
                        return
                    for src in ready:
                        data = src.recv(65536)
                        if not data:
                            return
                        (up if src is conn else conn).sendall(data)

    def close(self) -> None:
        self.loop.close()


@pytest.fixture
def proxy() -> Iterator[HttpProxy]:
    p = HttpProxy()
    yield p
    p.close()


def _no_proxy_env() -> dict[str, str]:
    return {"http_proxy": "", "HTTP_PROXY": "", "https_proxy": "", "HTTPS_PROXY": "",
            "all_proxy": "", "ALL_PROXY": "", "no_proxy": "", "NO_PROXY": ""}


@pytest.mark.slow
def test_https_server_through_the_environments_proxy_with_connect(
        home: Path, store: Store, tls_peer: tuple[Peer, Path], proxy: HttpProxy) -> None:
    peer, ca_file = tls_peer
    ids = fill(home, 30)
    (home / "config.toml").write_text(f'[server]\nurl = "{peer.url}"\nca_file = "{ca_file}"\n')
    env = {**_no_proxy_env(), "HTTPS_PROXY": f"http://u%40x:p%3Aw@127.0.0.1:{proxy.port}"}
    r = corral(home, "forward", env=env)
    assert r.returncode == 0, r.stderr
    assert store.ids() == ids
    want = "Basic " + base64.b64encode(b"u@x:p:w").decode()
    assert proxy.seen and all(line.startswith(f"CONNECT 127.0.0.1:{peer.port} HTTP/1.") and
                              a == want for line, a in proxy.seen), proxy.seen


@pytest.mark.slow
def test_http_server_through_a_proxy_and_no_proxy_bypasses_it(
        home: Path, tmp_path: Path, proxy: HttpProxy) -> None:
    store = Store(tmp_path / "server.db")
    peer = Peer(store).start()
    try:
        ids = fill(home, 20)
        (home / "config.toml").write_text(f'[server]\nurl = "{peer.url}"\n')
        env = {**_no_proxy_env(), "http_proxy": f"127.0.0.1:{proxy.port}",
               "NO_PROXY": "127.0.0.1"}
        r = corral(home, "forward", env=env)
        assert r.returncode == 0, r.stderr
        assert proxy.seen == [] and store.ids() == ids  # NO_PROXY: straight to the server
        more = fill(home, 5)
        del env["NO_PROXY"]
        r = corral(home, "forward", env=env)
        assert r.returncode == 0, r.stderr
        assert store.ids() == ids + more
        assert [line for line, _ in proxy.seen] == [
            f"POST http://127.0.0.1:{peer.port}/v1/logs HTTP/1.1"]
    finally:
        peer.close()


def test_a_socks_proxy_is_refused_in_one_line(home: Path, tmp_path: Path) -> None:
    fill(home, 1)
    (home / "config.toml").write_text('[server]\nurl = "http://127.0.0.1:9"\n')
    r = corral(home, "forward", env={**_no_proxy_env(), "ALL_PROXY": "socks5://127.0.0.1:1080"})
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "corral: forward: proxy socks5://127.0.0.1 from the environment is not an http:// "
        "proxy, the only kind the forwarder uses (set HTTPS_PROXY to an http:// proxy, or "
        "NO_PROXY to the server's host)"], r.stderr
    with pytest.raises(ProxyRefused):
        Connection("https://h.example/v1/logs", None, {}, 1, 1,
                   environ={"HTTPS_PROXY": "https://p.example:3128"})


def test_a_kept_alive_connection_the_server_closed_is_reopened_once() -> None:
    """The server answers each request and then closes without saying so: the next POST finds
    the old connection dead and goes out once more on a new one."""
    srv = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        for i in range(2):
            with contextlib.suppress(OSError):
                conn, _ = srv.accept()
                accepted.append(i)
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: 2\r\n\r\nok")

    threading.Thread(target=serve, daemon=True).start()
    port = srv.getsockname()[1]
    c = Connection(f"http://127.0.0.1:{port}/v1/logs", None, {}, 5, 5,
                   environ={})
    try:
        assert c.post(b"", 100)[::2] == (200, b"ok")
        assert c.post(b"", 100)[::2] == (200, b"ok")  # not a TransportError
        assert accepted == [0, 1]
    finally:
        c.close()
        srv.close()
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()
    with pytest.raises(TransportError) as err:  # nothing listening: an error, not a retry loop
        Connection(f"http://127.0.0.1:{port}/", None, {}, 2, 2,
                   environ={}).post(b"", 10)
    assert not err.value.broken
