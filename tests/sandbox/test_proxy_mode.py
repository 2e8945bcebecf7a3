"""``proxy`` network mode: the only way out is a unix socket bridged to loopback inside the
sandbox. A fake proxy (a unix-socket HTTP responder started by the test) stands in for
corral.netproxy, so this tests the sandbox's plumbing, not the proxy's policy."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import pytest

from corral.sandbox import NetworkPlan
from corral.sandbox.profiles import NetworkMode
from tests.sandbox.conftest import Box

pytestmark = pytest.mark.slow


@pytest.fixture
def fake_proxy(tmp_path: Path) -> tuple[Path, list[bytes]]:
    path = tmp_path / "proxy.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen()
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            head = conn.recv(4096)
            seen.append(head.split(b"\r\n", 1)[0])
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nvia-proxy")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield path, seen
    srv.close()


def _plan(sock: Path) -> NetworkPlan:
    env = {"http_proxy": "http://127.0.0.1:3128", "HTTP_PROXY": "http://127.0.0.1:3128"}
    return NetworkPlan(mode=NetworkMode.PROXY, proxy_socket=sock, proxy_env=env)


FETCH = ("import urllib.request as u\n"
         "print(u.urlopen('http://pypi.example/simple/', timeout=5).read().decode())")


def test_requests_go_through_the_proxy_socket(box: Box,
                                              fake_proxy: tuple[Path, list[bytes]]) -> None:
    sock, seen = fake_proxy
    r = box.py(FETCH, network=_plan(sock))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "via-proxy"
    assert seen == [b"GET http://pypi.example/simple/ HTTP/1.1"]


def test_command_cannot_use_unix_sockets_or_the_host_network(
        box: Box, fake_proxy: tuple[Path, list[bytes]]) -> None:
    sock, seen = fake_proxy
    host = socket.socket()
    host.bind(("127.0.0.1", 0))
    host.listen()
    port = host.getsockname()[1]
    code = (
        "import socket, errno, os\n"
        "try:\n    socket.socket(socket.AF_UNIX).connect('/dev/corral/proxy.sock'); print('unix ok')\n"
        "except OSError as e:\n    print('unix', errno.errorcode[e.errno])\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {port}), 2); print('host ok')\n"
        "except OSError as e:\n    print('host', errno.errorcode.get(e.errno, e))\n"
        "try:\n    open(f'/proc/{os.getppid()}/mem', 'rb'); print('mem ok')\n"
        "except OSError as e:\n    print('mem', errno.errorcode[e.errno])\n"
    )
    try:
        r = box.py(code, network=_plan(sock))
    finally:
        host.close()
    assert "unix EPERM" in r.stdout, r.stdout + r.stderr
    assert "host ECONNREFUSED" in r.stdout  # nothing listens there inside the netns
    assert "mem ok" not in r.stdout
    assert seen == []


def test_exit_status_and_missing_command(box: Box, fake_proxy: tuple[Path, list[bytes]]) -> None:
    sock, _ = fake_proxy
    assert box.sh("exit 9", network=_plan(sock)).returncode == 9
    r = box.sh("exec /nonexistent-cmd", network=_plan(sock))
    assert r.returncode == 127


def test_cli_network_proxy_with_the_real_managed_proxy(box: Box, tmp_path: Path) -> None:
    """`corral sandbox --network proxy` starts corral.netproxy on a private unix socket; allowed
    domains pass, others get the proxy's 403, and the listed local server is also reachable
    at its own address (forwarded through the proxy, as under corral run; an unlisted port is
    not: see the test below)."""
    import functools
    import http.server
    import os
    import subprocess
    import sys

    from tests.sandbox.conftest import require_tool

    require_tool("curl")
    web = tmp_path / "web"
    web.mkdir()
    (web / "hello.txt").write_text("hello via corral proxy\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(web))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    (box.corral_home / "config.toml").write_text(
        f'[network]\nallow_local = ["localhost:{port}"]\n')
    env = dict(os.environ, CORRAL_HOME=str(box.corral_home), HOME=str(box.home),
               CORRAL_SYSTEM_DIR=str(box.home / "no-system"))
    url = f"http://localhost:{port}/hello.txt"
    script = (f"curl -sS --max-time 10 --noproxy '' {url}; "
              f"curl -sS --max-time 10 --noproxy '' -o /dev/null -w '%{{http_code}}\\n' "
              f"http://denied.example/; "
              f"curl -sS --max-time 3 --noproxy '*' {url} || echo not-forwarded")
    try:
        r = subprocess.run(
            [sys.executable, "-m", "corral", "sandbox", "--network", "proxy",
             "--allow-domain", "localhost", "--", "sh", "-c", script],
            cwd=box.ws, env=env, capture_output=True, text=True, timeout=60)
    finally:
        httpd.shutdown()
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["hello via corral proxy", "403",
                                     "hello via corral proxy"], r.stdout
    assert not list((box.corral_home / "state").glob("proxy-*"))  # private socket dir removed


def test_a_loopback_allow_local_entry_is_reachable_at_the_same_address_inside(
        box: Box, fake_proxy: tuple[Path, list[bytes]], tmp_path: Path) -> None:
    """The forward corral run sets up for `allow_local = ["127.0.0.1:PORT"]`: the real proxy's
    forward socket, bridged to the same port inside. The host server answers there; a host
    listener on another loopback port stays unreachable (the sandbox's own loopback)."""
    from corral.netproxy import PolicyInputs, Proxy, build_policy
    from corral.netproxy.local import LocalForward

    sock, _ = fake_proxy
    server = socket.create_server(("127.0.0.1", 0))
    other = socket.create_server(("127.0.0.1", 0))
    port, other_port = server.getsockname()[1], other.getsockname()[1]

    def answer() -> None:
        conn, _ = server.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 8\r\n\r\nlocal-ok")
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    events: list[object] = []
    proxy = Proxy(build_policy(PolicyInputs(allow_local=[f"127.0.0.1:{port}"])),
                  on_decision=events.append, listen=_unix_only(tmp_path))
    proxy.start()
    fwd = tmp_path / "fwd.sock"
    proxy.forward(LocalForward("127.0.0.1", port, True), str(fwd))
    plan = NetworkPlan(mode=NetworkMode.PROXY, proxy_socket=sock, extra_bridges=((port, fwd),))
    code = ("import socket, urllib.request as u, errno\n"
            f"print(u.urlopen('http://127.0.0.1:{port}/', timeout=5).read().decode())\n"
            f"try:\n    socket.create_connection(('127.0.0.1', {other_port}), 2)\n"
            "except OSError as e:\n    print('other', errno.errorcode.get(e.errno, e))\n")
    try:
        r = box.py(code, network=plan)
    finally:
        proxy.stop()
        server.close()
        other.close()
    assert r.stdout.split() == ["local-ok", "other", "ECONNREFUSED"], r.stdout + r.stderr
    assert len(events) == 1


def test_a_port_that_cannot_be_opened_inside_is_one_corral_line(
        box: Box, fake_proxy: tuple[Path, list[bytes]]) -> None:
    sock, _ = fake_proxy
    plan = NetworkPlan(mode=NetworkMode.PROXY, proxy_socket=sock, extra_bridges=((80, sock),))
    r = box.sh("echo never", network=plan)
    assert r.returncode == 126 and "never" not in r.stdout
    assert r.stderr.strip().splitlines() == [
        "corral: sandbox: cannot listen on 127.0.0.1:80 inside the sandbox: Permission denied"]


def _unix_only(tmp_path: Path):  # type: ignore[no-untyped-def]
    from corral.netproxy import Listen

    return Listen(http=None, socks=None, unix=str(tmp_path / "p.sock"))


def _answer_once(server: socket.socket, body: bytes) -> None:
    def run() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            conn.close()

    threading.Thread(target=run, daemon=True).start()


def test_corral_sandbox_network_proxy_forwards_loopback_entries_ipv4_and_ipv6(
        box: Box, tmp_path: Path) -> None:
    """`corral sandbox --network proxy` makes each loopback allow_local entry reachable inside
    at the same address, as corral run does: 127.0.0.1:PORT and [::1]:PORT alike, with no
    proxy variables involved; a loopback port not listed stays the sandbox's own."""
    import os
    import subprocess
    import sys

    v4 = socket.create_server(("127.0.0.1", 0))
    v6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
    other = socket.create_server(("127.0.0.1", 0))
    p4, p6, p_other = v4.getsockname()[1], v6.getsockname()[1], other.getsockname()[1]
    _answer_once(v4, b"four-ok")
    _answer_once(v6, b"six-ok")
    (box.corral_home / "config.toml").write_text(
        f'[network]\nallow_local = ["127.0.0.1:{p4}", "[::1]:{p6}"]\n')
    env = dict(os.environ, CORRAL_HOME=str(box.corral_home), HOME=str(box.home),
               CORRAL_SYSTEM_DIR=str(box.home / "no-system"))
    code = ("import errno, socket, urllib.request as u\n"
            "direct = u.build_opener(u.ProxyHandler({}))\n"
            f"print(direct.open('http://127.0.0.1:{p4}/', timeout=10).read().decode())\n"
            f"print(direct.open('http://[::1]:{p6}/', timeout=10).read().decode())\n"
            f"try:\n    socket.create_connection(('127.0.0.1', {p_other}), 2)\n"
            "except OSError as e:\n    print('other', errno.errorcode.get(e.errno, e))\n")
    try:
        r = subprocess.run([sys.executable, "-m", "corral", "sandbox", "--network", "proxy",
                            "--", sys.executable, "-c", code], cwd=box.ws, env=env,
                           capture_output=True, text=True, timeout=60)
    finally:
        for s in (v4, v6, other):
            s.close()
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["four-ok", "six-ok", "other", "ECONNREFUSED"], \
        r.stdout + r.stderr
