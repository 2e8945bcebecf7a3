"""The server's fleet API over real HTTP, and the enrolment request fuzzed: tokens spent once,
proof of the device key, the ingest token bound to its device, bad input refused in one line."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.config.enrolment import enrol_signed_message
from corral.server import config as sconfig
from corral.server.enroll import FleetSettings, enrol, load_settings
from corral.server.fleetdb import FleetRefused, open_fleet
from tests.server.helpers import ServerProc, corral, forward_request, init_server, journal, post

pytestmark = pytest.mark.slow


def _request(token: str, key: Ed25519PrivateKey | None = None, **over: Any
             ) -> dict[str, Any]:
    key = key or Ed25519PrivateKey.generate()
    pub = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    req: dict[str, Any] = {"token": token, "public_key": pub, "hostname": "box",
                           "server_url": "http://127.0.0.1:1", "corral_version": "9.9"}
    req["signature"] = base64.b64encode(key.sign(enrol_signed_message(req))).decode()
    req.update(over)
    return req


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, ServerProc]]:
    data = tmp_path / "srv"
    init_server(data)
    srv = ServerProc(data)
    try:
        yield data, srv
    finally:
        srv.stop()


def _etok(data: Path, *extra: str) -> str:
    return corral("server", "enroll-token", "create", "--data", str(data), *extra).stdout.strip()


def test_enrolment_and_device_bound_ingest(served: tuple[Path, ServerProc],
                                           tmp_path: Path) -> None:
    data, srv = served
    tok = _etok(data, "--uses", "1", "--group", "eng")
    key = Ed25519PrivateKey.generate()
    # a signature by another key than the one presented: refused, the token not spent
    r = httpx.post(srv.url + "/v1/fleet/enroll",
                   json=_request(tok, key, signature=_request(tok)["signature"]))
    assert r.status_code == 400 and "not signed by the device key" in r.text
    r = httpx.post(srv.url + "/v1/fleet/enroll", json=_request(tok, key))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["groups"] == ["eng"] and answer["device_id"].startswith("dev-")
    assert set(answer) == {"device_id", "ingest_token", "groups", "policy_public_key",
                           "refresh_seconds", "oidc"}
    # spent; the same key again; garbage
    r = httpx.post(srv.url + "/v1/fleet/enroll", json=_request(tok))
    assert r.status_code == 401 and "used up" in r.text
    tok2 = _etok(data)
    r = httpx.post(srv.url + "/v1/fleet/enroll", json=_request(tok2, key))
    assert r.status_code == 409 and "already enrolled" in r.text
    r = httpx.post(srv.url + "/v1/fleet/enroll", content=b"[1]")
    assert r.status_code == 400 and r.text.startswith("corral: server: ")

    # the device's token may only send the device's own events
    ingest = answer["ingest_token"]
    j = journal(tmp_path, 3)
    r = post(srv.url, forward_request(j), ingest)
    assert r.status_code == 403 and answer["device_id"] in r.text
    # ... and the policy bundle is signed for it, by the key it pinned
    r = httpx.get(srv.url + "/v1/fleet/policy", headers={"Authorization": f"Bearer {ingest}"})
    assert r.status_code == 200
    env = json.loads(r.content)
    assert env["device"] == answer["device_id"] and env["policy_version"] == 0
    from corral.config.bundle import verify_envelope

    b = verify_envelope(r.content, answer["policy_public_key"], srv.url,
                        audience=answer["device_id"], label="server policy")
    assert b.version == 0
    # a token that is not a device's may not fetch a device policy
    other = corral("server", "token", "create", "--data", str(data), "--scope",
                   "ingest").stdout.strip()
    r = httpx.get(srv.url + "/v1/fleet/policy", headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 403
    # revoked: refused everywhere from the next request on
    corral("server", "devices", "revoke", answer["device_id"], "--data", str(data))
    r = httpx.get(srv.url + "/v1/fleet/policy", headers={"Authorization": f"Bearer {ingest}"})
    assert r.status_code == 401 and "revoked" in r.text
    r = httpx.post(srv.url + "/v1/fleet/checkin", json={},
                   headers={"Authorization": f"Bearer {ingest}"})
    assert r.status_code == 401


def test_policy_files_are_validated(served: tuple[Path, ServerProc], tmp_path: Path) -> None:
    data, _ = served
    bad = tmp_path / "bad.toml"
    bad.write_text('[network.domains]\n"x.example" = "maybe"\n')
    r = corral("server", "policy", "set", str(bad), "--data", str(data), check=False)
    assert r.returncode != 0
    assert f"{bad}:2:" in r.stderr and "corral: server policy:" in r.stderr
    loose = tmp_path / "loose.toml"
    loose.write_text('[[rules.prefix_rules]]\npattern = ["rm"]\ndecision = "allow"\n')
    r = corral("server", "policy", "set", str(loose), "--data", str(data), check=False)
    assert r.returncode != 0 and "requirements may only tighten" in r.stderr
    r = corral("server", "policy", "set", str(bad), "--group", "a b", "--data", str(data),
               check=False)
    assert r.returncode != 0


def test_fleet_settings_refuse_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / "fleet.toml").write_text("refresh_secs = 5\n")
    with pytest.raises(ValueError, match="unknown key `refresh_secs`"):
        load_settings(tmp_path)
    (tmp_path / "fleet.toml").write_text('[oidc]\nissuer = "https://x"\n')
    with pytest.raises(ValueError, match="needs issuer and client_id"):
        load_settings(tmp_path)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=40),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(
                         st.text(max_size=12), c, max_size=4), max_leaves=10)


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(over=st.dictionaries(st.sampled_from(["token", "public_key", "hostname", "server_url",
                                             "corral_version", "signature", "extra"]),
                            _json, max_size=4))
def test_enrol_fuzzed_requests_are_refused_cleanly(fuzz_store: Any, over: dict[str, Any]
                                                   ) -> None:
    """Any malformed request: FleetRefused with a status, never another exception, never a
    device."""
    fleet, store, tok = fuzz_store
    base = _request(tok)
    req = {**base, **over}
    before = len(fleet.devices())
    try:
        answer = enrol(fleet, store, req, FleetSettings(), "cGs=")
    except FleetRefused as exc:
        assert 400 <= exc.status < 500 and exc.reason
        assert len(fleet.devices()) == before
    else:  # only a request left as it was signed may succeed
        assert all(base.get(k) == v for k, v in over.items()), over
        assert answer["device_id"] in {d.id for d in fleet.devices()}


@pytest.fixture
def fuzz_store(tmp_path: Path) -> Iterator[tuple[Any, Any, str]]:
    data = tmp_path / "srv"
    init_server(data)
    cfg = sconfig.load(data)
    store = sconfig.open_store(cfg)
    fleet = open_fleet(cfg)
    _, tok = fleet.create_enrol_token([], uses=None)
    try:
        yield fleet, store, tok
    finally:
        fleet.close()
        store.close()


def test_enrol_over_https_with_a_private_ca(tmp_path: Path) -> None:
    """Enrolment, the policy fetch (urllib), the check-in and forwarding (httpx) all trust the
    CA given at enrolment, and nothing else."""
    import subprocess
    import sys
    import time

    import trustme

    from tests.fleet.conftest import machine
    from tests.server.helpers import free_port

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    data = tmp_path / "srv"
    init_server(data)
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "corral", "server", "run", "--data",
                             str(data), "--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert),
                             "--tls-key", str(key)], stderr=subprocess.PIPE)
    import ssl

    tls = ssl.create_default_context(cafile=str(ca_file))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", verify=tls, timeout=1).is_success:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        tok = _etok(data)
        m = machine(tmp_path, "box")
        r = m.run("enroll", "--server", url, stdin=tok + "\n")  # the system store: refused
        assert r.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in r.stderr
        assert not (m.home / "fleet" / "enrolment.json").exists()
        assert not json.loads((m.home / "credentials" / "corral-device.json").read_text())
        out = m.ok("enroll", "--server", url, "--ca-file", str(ca_file), stdin=tok + "\n")
        assert "policy: server policy https://127.0.0.1" in out and "forwarding: on" in out
        m.ok("exec", "--", "true")
        assert "forwarded" in m.ok("forward", "--retry-for", "10")
        rows = json.loads(corral("server", "devices", "--json", "--data", str(data)).stdout)
        assert rows[0]["policy_applied"] == 0 and rows[0]["last_ingest"] != "-"
    finally:
        proc.terminate()
        proc.wait(30)
