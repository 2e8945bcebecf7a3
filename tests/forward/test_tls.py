"""Transport security: https with the organisation's CA, and no bearer token over plain http
to another machine."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from tests.forward.conftest import corral, fill
from tests.forward.peer import Peer, Store

pytestmark = pytest.mark.slow


def test_https_with_the_configured_ca(home: Path, tmp_path: Path) -> None:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    store = Store(tmp_path / "server.db")
    peer = Peer(store, tls=ctx).start()
    try:
        ids = fill(home, 50)
        (home / "config.toml").write_text(f'[server]\nurl = "{peer.url}"\n')
        r = corral(home, "forward", "--retry-for", "1")  # the system store does not know the CA
        assert r.returncode == 1 and len(r.stderr.splitlines()) == 1
        assert "CERTIFICATE_VERIFY_FAILED" in r.stderr and store.ids() == []
        (home / "config.toml").write_text(f'[server]\nurl = "{peer.url}"\nca_file = "{ca_file}"\n')
        r = corral(home, "forward")
        assert r.returncode == 0, r.stderr
        assert store.ids() == ids
    finally:
        peer.close()


@pytest.mark.parametrize("url", ["http://192.0.2.1:4318", "http://corral.example.org",
                                 "http://[2001:db8::1]:80"])
def test_no_token_over_plain_http_to_another_machine(home: Path, url: str) -> None:
    fill(home, 1)
    r = corral(home, "forward", "--server", url)
    assert r.returncode == 1
    assert r.stderr.startswith(f"corral: forward: server URL {url!r} is plain http to another "
                               "machine: the token and the journal would cross the network in "
                               "the clear (use https://")
    r = corral(home, "login", "--ingest-token", "--server", url, stdin="t0k\n")
    assert r.returncode == 1 and "plain http to another machine" in r.stderr
