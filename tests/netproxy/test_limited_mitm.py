"""Limited mode (GET/HEAD/OPTIONS only): plain HTTP, and HTTPS through the interception CA."""

from __future__ import annotations

import stat
from pathlib import Path

from corral.netproxy import PolicyInputs, proxy_env
from corral.netproxy.env import CA_VARS
from corral.netproxy.mitm import Mitm

from .conftest import ProxyFactory
from .test_http_proxy import curl, tls_server  # noqa: F401  (fixture)


def limited(port: int) -> PolicyInputs:
    return PolicyInputs(domains={"localhost": "limited"}, allow_local=[f"localhost:{port}"])


def test_limited_plain_http_allows_reads_only(web: tuple[int, Path], make_proxy: ProxyFactory) -> None:
    port, _ = web
    proxy, events = make_proxy(limited(port))
    assert proxy.endpoints is not None
    url = f"http://localhost:{port}/hello.txt"
    assert curl("-x", proxy.endpoints.http_url(), url).stdout.startswith("hello")
    r = curl("-i", "-x", proxy.endpoints.http_url(), "-d", "x=1", url)
    assert "x-corral-block: method_not_allowed" in r.stdout
    assert (events[-1].method, events[-1].reason) == ("POST", "method_not_allowed")


def test_limited_https_without_interception_is_refused(
    tls_server: tuple[int, Path], make_proxy: ProxyFactory  # noqa: F811
) -> None:
    port, _ = tls_server
    proxy, events = make_proxy(limited(port))
    assert proxy.endpoints is not None and proxy.endpoints.socks
    r = curl("-x", proxy.endpoints.http_url(), f"https://localhost:{port}/")
    assert r.returncode != 0 and "403" in r.stderr
    assert events[-1].reason == "mitm_required"
    r = curl("-x", f"socks5h://127.0.0.1:{proxy.endpoints.socks[1]}", f"https://localhost:{port}/")
    assert r.returncode != 0
    assert events[-1].reason == "method_not_allowed"  # SOCKS cannot see methods


def test_limited_https_with_interception(
    tls_server: tuple[int, Path], make_proxy: ProxyFactory, tmp_path: Path  # noqa: F811
) -> None:
    port, upstream_ca = tls_server
    mitm = Mitm(tmp_path / "home" / "proxy-ca", upstream_cafile=str(upstream_ca))
    key_mode = stat.S_IMODE(mitm.key_path.stat().st_mode)
    assert key_mode == 0o600 and stat.S_IMODE(mitm.dir.stat().st_mode) == 0o700
    bundle = mitm.bundle()
    assert bundle.read_bytes().startswith(mitm.cert_path.read_bytes())
    proxy, events = make_proxy(limited(port), mitm=mitm)
    assert proxy.endpoints is not None and proxy.endpoints.http
    env = {"PATH": "/usr/bin:/bin", **proxy_env(proxy.endpoints.http[1], ca_bundle=str(bundle),
                                                 no_proxy="")}
    assert all(env[v] == str(bundle) for v in CA_VARS)
    url = f"https://localhost:{port}/"
    r = curl(url, env=env)  # curl picks up CURL_CA_BUNDLE
    assert r.stdout == "secure hello\n", r.stderr
    r = curl("-i", "-X", "DELETE", url, env=env)
    assert "HTTP/1.1 403" in r.stdout and "x-corral-block: method_not_allowed" in r.stdout
    assert [(e.method, e.decision) for e in events][-1] == ("DELETE", "deny")
    # Without our CA the client refuses the intercepted connection.
    r = curl("--cacert", str(upstream_ca), "-x", proxy.endpoints.http_url(), url)
    assert r.returncode != 0
    # The CA is reused, not regenerated.
    again = Mitm(tmp_path / "home" / "proxy-ca")
    assert again.cert_path.read_bytes() == mitm.cert_path.read_bytes()
