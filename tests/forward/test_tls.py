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


def test_a_session_forwarder_loads_the_trust_store_before_its_decision_ends(
        home: Path, store: Store, tls_peer: tuple[Peer, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The TLS context (~20 ms with the system store, the interpreter lock let go) is made as
    the session opens, beside its decision; the forwarder then uses that one, and sends
    nothing before the session lets it (``resume``)."""
    import time

    from corral.config import load_config
    from corral.forward import trust
    from corral.forward.background import BackgroundForwarder
    from corral.telemetry.journal import journal_file

    peer, ca_file = tls_peer
    ids = fill(home, 20)
    (home / "config.toml").write_text(f'[server]\nurl = "{peer.url}"\nca_file = "{ca_file}"\n')
    cfg = load_config(tmp_path, home=home, system=tmp_path / "etc")
    calls: list[tuple[str, str | None]] = []
    real = trust.tls_for
    monkeypatch.setattr(trust, "tls_for",
                        lambda url, ca: calls.append((url, ca)) or real(url, ca))
    bf = BackgroundForwarder(cfg, home, journal_file(home))
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == [(peer.url, str(ca_file))]
    assert store.ids() == []  # nothing sent before the session resumes it
    bf.resume()
    bf.close(5)
    assert bf.last_error is None and store.ids() == ids
    assert len(calls) == 1  # the forwarder used the early context
