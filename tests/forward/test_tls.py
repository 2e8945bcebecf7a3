"""Transport security: https with the organisation's CA, and no bearer token over plain http
to another machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.forward.conftest import corral, fill
from tests.forward.peer import Peer, Store

pytestmark = pytest.mark.slow


def test_https_with_the_configured_ca(home: Path, store: Store,
                                      tls_peer: tuple[Peer, Path]) -> None:
    peer, ca_file = tls_peer
    ids = fill(home, 50)
    (home / "config.toml").write_text(f'[server]\nurl = "{peer.url}"\n')
    r = corral(home, "forward", "--retry-for", "1")  # the system store does not know the CA
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1
    assert "CERTIFICATE_VERIFY_FAILED" in r.stderr and store.ids() == []
    (home / "config.toml").write_text(f'[server]\nurl = "{peer.url}"\nca_file = "{ca_file}"\n')
    r = corral(home, "forward")
    assert r.returncode == 0, r.stderr
    assert store.ids() == ids


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
