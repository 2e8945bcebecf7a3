"""Real clients (curl, httpx) through the proxy against loopback servers."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from corral.netproxy import AskAnswer, NetworkQuestion, PolicyInputs, proxy_env

from .conftest import ProxyFactory, local, need


def curl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need("curl"), "-sS", "--max-time", "10", *args],
        capture_output=True, text=True, env=env, timeout=20,
    )


def test_curl_http_allowed_and_event(web: tuple[int, Path], make_proxy: ProxyFactory) -> None:
    port, _ = web
    proxy, events = make_proxy(local(port))
    assert proxy.endpoints is not None
    r = curl("-x", proxy.endpoints.http_url(), f"http://127.0.0.1:{port}/hello.txt?secret=1")
    assert r.stdout == "hello through the proxy\n", r.stderr
    (ev,) = events
    assert (ev.host, ev.port, ev.protocol, ev.method, ev.decision, ev.source) == (
        "127.0.0.1", port, "http", "GET", "allow", "config")
    assert "secret" not in repr(ev) and "hello.txt" not in repr(ev)


def test_curl_via_environment_https_connect_and_socks5h(
    web: tuple[int, Path], make_proxy: ProxyFactory
) -> None:
    port, _ = web
    proxy, events = make_proxy(local(port, "localhost"))
    ep = proxy.endpoints
    assert ep is not None and ep.http and ep.socks
    env = {"PATH": "/usr/bin:/bin", **proxy_env(ep.http[1], ep.socks[1], no_proxy="")}
    url = f"http://localhost:{port}/hello.txt"
    assert curl(url, env=env).stdout.startswith("hello")  # via HTTP_PROXY
    assert curl("-p", url, env=env).stdout.startswith("hello")  # CONNECT tunnel
    assert curl("-x", env["CORRAL_SOCKS_PROXY"], url).stdout.startswith("hello")
    assert [e.protocol for e in events] == ["http", "https", "socks5_tcp"]


def test_blocked_http_gets_403_with_reason_header_and_explanation(
    make_proxy: ProxyFactory,
) -> None:
    proxy, events = make_proxy(PolicyInputs(domains={"blocked.test": "deny"}))
    assert proxy.endpoints is not None
    r = curl("-i", "-x", proxy.endpoints.http_url(), "http://blocked.test/x?token=abc")
    assert r.stdout.startswith("HTTP/1.1 403")
    assert "x-corral-block: denied" in r.stdout
    assert "blocked.test:80 was blocked: denied by the network policy" in r.stdout
    assert "token" not in r.stdout
    # CONNECT: 403 and curl reports the refusal; unknown host with no asker: not_allowed.
    r = curl("-p", "-x", proxy.endpoints.http_url(), "http://unknown.test/")
    assert r.returncode != 0 and "403" in r.stderr
    assert [(e.host, e.decision, e.reason) for e in events] == [
        ("blocked.test", "deny", "denied"), ("unknown.test", "deny", "not_allowed (no one to ask)")]


def test_private_addresses_refused_even_when_domain_allowed(make_proxy: ProxyFactory) -> None:
    proxy, _ = make_proxy(PolicyInputs(domains={"*": "allow"}))
    assert proxy.endpoints is not None
    for host in ("127.0.0.1", "2130706433", "0x7f.1", "0177.0.0.1", "127.1", "[::1]",
                 "[::ffff:127.0.0.1]", "169.254.169.254", "localhost"):
        r = curl("-i", "-x", proxy.endpoints.http_url(), f"http://{host}:9/")
        assert "x-corral-block: not_allowed_local" in r.stdout, (host, r.stdout, r.stderr)


def test_ask_callback_allows_and_session_caches(
    web: tuple[int, Path], make_proxy: ProxyFactory
) -> None:
    port, _ = web
    asked: list[NetworkQuestion] = []

    def ask(q: NetworkQuestion) -> AskAnswer:
        asked.append(q)
        return AskAnswer(q.host == "localhost", source="user")

    # localhost:* opens the address check only: the host itself is still asked about (an
    # exact localhost:PORT entry alone would allow it, see test_local_forward)
    inp = PolicyInputs(allow_local=["localhost:*"])
    proxy, events = make_proxy(inp, ask=ask)
    assert proxy.endpoints is not None
    for _ in range(3):
        r = curl("-x", proxy.endpoints.http_url(), f"http://localhost:{port}/hello.txt")
        assert r.stdout.startswith("hello")
    assert len(asked) == 1
    assert [e.source for e in events] == ["user", "session grant", "session grant"]


def test_httpx_post_bodies_keepalive_and_hop_by_hop(
    web: tuple[int, Path], make_proxy: ProxyFactory
) -> None:
    port, _ = web
    proxy, _ = make_proxy(local(port), credentials=("corral", "s3cret"))
    assert proxy.endpoints is not None and proxy.endpoints.http is not None
    purl = f"http://corral:s3cret@127.0.0.1:{proxy.endpoints.http[1]}"
    with httpx.Client(proxy=purl, timeout=10) as c:
        r = c.post(f"http://127.0.0.1:{port}/p", content=b"x" * 100_000)
        assert r.text.startswith("got 100000 ")
        assert r.headers["x-seen-proxy-auth"] == "None"  # credentials never forwarded
        assert r.headers["x-seen-connection"] == "keep-alive"  # ours, not the client's

        def gen():  # chunked upload
            yield b"abc"
            yield b"def"

        r = c.post(f"http://127.0.0.1:{port}/p", content=gen())
        assert r.text == "got 6 abcdef"
        for _ in range(5):
            assert c.get(f"http://127.0.0.1:{port}/hello.txt").status_code == 200
    assert proxy.stats.served <= 3  # keep-alive: one client connection served them all
    with httpx.Client(proxy=f"http://127.0.0.1:{proxy.endpoints.http[1]}") as c:
        assert c.get(f"http://127.0.0.1:{port}/hello.txt").status_code == 407


def test_socks_credentials_required_when_set(web: tuple[int, Path], make_proxy: ProxyFactory) -> None:
    port, _ = web
    proxy, _ = make_proxy(local(port), credentials=("corral", "tok"))
    ep = proxy.endpoints
    assert ep is not None and ep.socks
    url = f"http://127.0.0.1:{port}/hello.txt"
    good = curl("-x", f"socks5h://corral:tok@127.0.0.1:{ep.socks[1]}", url)
    assert good.stdout.startswith("hello"), good.stderr
    bad = curl("-x", f"socks5h://corral:nope@127.0.0.1:{ep.socks[1]}", url)
    assert bad.returncode != 0
    none = curl("-x", f"socks5h://127.0.0.1:{ep.socks[1]}", url)
    assert none.returncode != 0


@pytest.fixture
def tls_server(make_tls_server):  # type: ignore[no-untyped-def]
    return make_tls_server("localhost", "127.0.0.1")


def test_https_through_connect_with_curl_and_httpx(tls_server, make_proxy: ProxyFactory) -> None:  # type: ignore[no-untyped-def]
    port, pem = tls_server
    proxy, events = make_proxy(local(port, "localhost"))
    assert proxy.endpoints is not None
    r = curl("--cacert", str(pem), "-x", proxy.endpoints.http_url(), f"https://localhost:{port}/")
    assert r.stdout == "secure hello\n", r.stderr
    with httpx.Client(proxy=proxy.endpoints.http_url(), verify=ssl.create_default_context(
            cafile=str(pem))) as c:
        assert c.get(f"https://localhost:{port}/").text == "secure hello\n"
    assert {e.protocol for e in events} == {"https"}


def test_connect_port_restrictions(web: tuple[int, Path], make_proxy: ProxyFactory) -> None:
    port, _ = web
    inp = local(port, "localhost")
    inp.allowed_ports = [443]
    proxy, events = make_proxy(inp)
    assert proxy.endpoints is not None
    # The allow_local entry names this port, so it is reachable; others are not.
    assert curl("-p", "-x", proxy.endpoints.http_url(),
                f"http://localhost:{port}/hello.txt").stdout.startswith("hello")
    r = curl("-p", "-x", proxy.endpoints.http_url(), "http://localhost:25/")
    assert r.returncode != 0
    assert events[-1].reason == "bad_port"
    r = curl("-i", "-x", proxy.endpoints.http_url(), "http://localhost:0/")
    assert r.returncode != 0 or "x-corral-block" in r.stdout


def test_grants_and_policy_swap_from_outside(web: tuple[int, Path], make_proxy: ProxyFactory) -> None:
    import time

    from corral.netproxy import build_policy

    port, _ = web
    proxy, events = make_proxy(PolicyInputs(allow_local=["localhost:*"]))
    assert proxy.endpoints is not None
    url = f"http://localhost:{port}/hello.txt"
    assert "403" in curl("-i", "-x", proxy.endpoints.http_url(), url).stdout
    proxy.grant("localhost", port, "http", True, "grant:g-1")
    time.sleep(0.05)
    assert curl("-x", proxy.endpoints.http_url(), url).stdout.startswith("hello")
    proxy.set_policy(build_policy(PolicyInputs(domains={"localhost": "deny"})))
    time.sleep(0.05)
    assert "x-corral-block: denied" in curl("-i", "-x", proxy.endpoints.http_url(), url).stdout
    assert [(e.decision, e.source) for e in events] == [
        ("deny", "policy"), ("allow", "session grant"), ("deny", "config")]


def test_expect_continue_upload_and_chunked_response(
    web: tuple[int, Path], make_proxy: ProxyFactory, tmp_path: Path
) -> None:
    import socket
    import threading

    port, _ = web
    # An upstream that answers with a chunked body and a trailer, then keeps the connection.
    raw = socket.create_server(("127.0.0.1", 0))
    raw.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                c, _ = raw.accept()
            except OSError:
                continue
            with c:
                c.recv(65536)
                c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5;ext=1\r\nhello\r\n7\r\n chunks\r\n0\r\nX-Trailer: t\r\n\r\n")

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    rport = raw.getsockname()[1]
    inp = local(port)
    inp.allow_local.append(f"127.0.0.1:{rport}")
    proxy, _ = make_proxy(inp)
    assert proxy.endpoints is not None
    r = curl("-x", proxy.endpoints.http_url(), f"http://127.0.0.1:{rport}/")
    assert r.stdout == "hello chunks", r.stderr
    big = tmp_path / "big.bin"
    big.write_bytes(b"z" * 3_000_000)
    # curl sends Expect: 100-continue for large bodies; the proxy answers it and streams the body.
    r = curl("-v", "-x", proxy.endpoints.http_url(), "--data-binary", f"@{big}",
             f"http://127.0.0.1:{port}/upload")
    assert r.stdout.startswith("got 3000000 zzz"), r.stderr[-500:]
    assert "Expect: 100-continue" in r.stderr and "HTTP/1.1 100 Continue" in r.stderr
    stop.set()
    server.join()
    raw.close()
