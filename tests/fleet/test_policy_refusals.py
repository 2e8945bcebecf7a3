"""An enrolled machine refuses a tampered, rolled-back, expired or other device's policy bundle
(served over real HTTP to the real loader): it keeps the last good bundle, and with none it
applies the most restrictive settings. ID tokens that do not verify are refused by name."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from corral.config import load_config
from corral.config.bundle import sign_bundle
from corral.config.enrolment import Enrolment, enrolment_file, policy_cache, write_record
from corral.fleet.oidc import LoginError, verify_id_token
from tests.fleet.issuer import Issuer

DEVICE = "dev-0123456789abcdef"


class PolicyPeer:
    """Serves whatever bundle bytes the test puts in ``body`` at /v1/fleet/policy."""

    def __init__(self) -> None:
        self.body = b""
        self.requests: list[dict[str, str]] = []
        peer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                peer.requests.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(peer.body)))
                self.end_headers()
                self.wfile.write(peer.body)

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def peer() -> Iterator[PolicyPeer]:
    p = PolicyPeer()
    yield p
    p.close()


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def _pub(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()


def bundle(key: Ed25519PrivateKey, text: str, version: int, device: str = DEVICE,
           ttl: int = 3600) -> bytes:
    now = int(time.time())
    return sign_bundle(text, _raw(key), now, now + ttl,
                       {"policy_version": version, "device": device})


def tamper(raw: bytes) -> bytes:
    """The same signed envelope with a looser policy in it."""
    env = json.loads(raw)
    env["requirements_toml"] = V1
    return json.dumps(env).encode()


def _home(tmp_path: Path, peer: PolicyPeer, key: Ed25519PrivateKey) -> Path:
    home = tmp_path / "home"
    write_record(enrolment_file(home), Enrolment(
        server=peer.url, device_id=DEVICE, device_public_key="", refresh_seconds=0,
        policy_public_key=_pub(key)))
    return home


def _load(home: Path, tmp_path: Path) -> Any:
    return load_config(tmp_path, home=home, system=tmp_path / "no-etc")


V2 = 'allowed_approval_policies = ["untrusted", "on-request"]\n'
V1 = 'allowed_approval_policies = ["untrusted", "on-request", "never"]\n'


def test_refusals_keep_the_last_good_bundle(tmp_path: Path, peer: PolicyPeer,
                                            key: Ed25519PrivateKey) -> None:
    home = _home(tmp_path, peer, key)
    peer.body = bundle(key, V2, 2)
    cfg = _load(home, tmp_path)
    assert cfg.requirements.get("allowed_approval_policies") == ["untrusted", "on-request"]
    assert peer.requests[-1]["X-Corral-Policy-Applied"] == "0"
    good = policy_cache(home).read_bytes()

    cases = {
        "rollback": (bundle(key, V1, 1), "older than the cached version 2 (rollback)"),
        "tampered": (tamper(bundle(key, V2, 3)), "bad signature"),
        "other key": (bundle(Ed25519PrivateKey.generate(), V1, 9), "bad signature"),
        "other device": (bundle(key, V1, 9, device="dev-ffffffffffffffff"),
                         "signed for device 'dev-ffffffffffffffff', not this device"),
        "expired": (bundle(key, V1, 9, ttl=-10), "bundle expired"),
        "not json": (b"<html>captive portal</html>", "bundle is not JSON"),
    }
    for name, (body, reason) in cases.items():
        peer.body = body
        cfg = _load(home, tmp_path)
        assert cfg.requirements.get("allowed_approval_policies") == [
            "untrusted", "on-request"], name
        assert cfg.requirements.restrictive_reason is None, name
        assert any(reason in w and "using the last good cached bundle" in w
                   for w in cfg.warnings), (name, cfg.warnings)
        assert policy_cache(home).read_bytes() == good, name
        assert peer.requests[-1]["X-Corral-Policy-Applied"] == "2"
    # a newer version is taken
    peer.body = bundle(key, V1 + '[network]\nmanaged_domains_only = true\n', 3)
    cfg = _load(home, tmp_path)
    assert cfg.requirements.get("network.managed_domains_only") is True


def test_no_good_bundle_means_most_restrictive(tmp_path: Path, peer: PolicyPeer,
                                               key: Ed25519PrivateKey) -> None:
    home = _home(tmp_path, peer, key)
    peer.body = tamper(bundle(key, V2, 5))
    cfg = _load(home, tmp_path)
    reason = cfg.requirements.restrictive_reason or ""
    assert reason.startswith("server policy refused: ") and "bad signature" in reason
    assert cfg.requirements.get("allowed_approval_policies") == ["untrusted"]
    assert cfg.get("default_permissions") == ":read-only"
    # a tampered cache with the server unreachable: the same
    peer.body = bundle(key, V1, 5)
    _load(home, tmp_path)
    cache = policy_cache(home)
    doc = json.loads(cache.read_bytes())
    doc["requirements_toml"] = 'allowed_approval_policies = ["never"]\n'
    cache.write_text(json.dumps(doc))
    peer.close()
    cfg = _load(home, tmp_path)
    assert cfg.requirements.restrictive_reason
    assert any("bad signature" in w for w in cfg.warnings)
    assert cfg.requirements.get("allowed_approval_policies") == ["untrusted"]


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    iss = Issuer().start()
    yield iss
    iss.close()


def _token(issuer: Issuer, **claims: Any) -> str:
    from joserfc import jwt

    now = int(time.time())
    base = {"iss": issuer.url, "aud": "corral-cli", "sub": "user-1", "iat": now,
            "exp": now + 600, **claims}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, {k: v for k, v in base.items()
                                                       if v is not None}, issuer.key)


def test_id_token_verification(issuer: Issuer) -> None:
    jwks = {"keys": [issuer.key.as_dict(private=False)]}
    claims = verify_id_token(_token(issuer, org_id="acme"), jwks, issuer.url, "corral-cli")
    assert claims["org_id"] == "acme"
    bad = {
        "wrong issuer": (_token(issuer, iss="https://evil.example"), "iss"),
        "wrong audience": (_token(issuer, aud="other-app"), "aud"),
        "expired": (_token(issuer, exp=int(time.time()) - 3600), "expired"),
        "no subject": (_token(issuer, sub=None), "sub"),
    }
    for name, (tok, word) in bad.items():
        with pytest.raises(LoginError, match=word):
            verify_id_token(tok, jwks, issuer.url, "corral-cli")
        assert name
    head, body, sig = _token(issuer).split(".")
    forged = json.loads(base64.urlsafe_b64decode(body + "=="))
    forged["sub"] = "admin"
    body2 = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    with pytest.raises(LoginError, match="signature not valid"):
        verify_id_token(f"{head}.{body2}.{sig}", jwks, issuer.url, "corral-cli")
    from joserfc.jwk import RSAKey

    other = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(LoginError, match="signature not valid"):
        verify_id_token(_token(issuer), {"keys": [other.as_dict(private=False)]},
                        issuer.url, "corral-cli")
