"""Cloud-managed requirements bundle over real HTTPS on loopback: acceptance and refusal."""

from __future__ import annotations

import base64
import http.server
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from corral.config.bundle import sign_bundle

REQ = 'allowed_approval_policies = ["untrusted"]\n'


@dataclass
class BundleServer:
    url: str
    ca_file: str
    body: bytes = b""
    status: int = 200
    hits: list[str] = field(default_factory=list)


@pytest.fixture
def server(tmp_path) -> Iterator[BundleServer]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    state = BundleServer("", str(ca_file))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(ctx)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    state.url = f"https://127.0.0.1:{httpd.server_address[1]}/requirements.json"
    yield state
    httpd.shutdown()


@pytest.fixture
def keypair():
    key = Ed25519PrivateKey.generate()
    raw_priv = key.private_bytes_raw()
    pub = base64.b64encode(
        key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()
    return raw_priv, pub


def _system(env, server, pub, refresh=0):
    env.system_config(
        f'[managed]\nrequirements_bundle_url = "{server.url}"\n'
        f'requirements_bundle_public_key = "{pub}"\n'
        f'requirements_bundle_ca_file = "{server.ca_file}"\n'
        f"requirements_bundle_refresh_seconds = {refresh}\n"
    )
    env.user_config('approval_policy = "never"\n')


def test_valid_bundle_is_applied_and_cached(env, server, keypair):
    priv, pub = keypair
    now = int(time.time())
    server.body = sign_bundle(REQ, priv, now - 10, now + 3600)
    _system(env, server, pub)
    cfg = env.load()
    assert cfg.get("approval_policy") == "untrusted"
    assert cfg.requirements.restrictive_reason is None
    assert cfg.requirements.sources[-1].startswith(f"cloud bundle {server.url}")
    assert (env.home / "state" / "requirements-bundle.json").read_bytes() == server.body
    # The user's forbidden value falls back, and the warning names the bundle as the source.
    assert any("approval_policy" in w and f"cloud bundle {server.url}" in w for w in cfg.warnings)


@pytest.mark.parametrize("kind", ["unsigned", "bad_signature", "expired", "other_key", "garbage",
                                  "http_error"])
def test_bad_bundle_without_cache_means_most_restrictive(env, server, keypair, kind):
    priv, pub = keypair
    now = int(time.time())
    good = sign_bundle('allowed_approval_policies = ["never"]\n', priv, now - 10, now + 3600)
    if kind == "unsigned":
        import json

        env_ = json.loads(good)
        del env_["signature"]
        server.body = json.dumps(env_).encode()
    elif kind == "bad_signature":
        server.body = good.replace(b'[\\"never\\"]', b'[\\"on-failure\\"]')
        assert server.body != good
    elif kind == "expired":
        server.body = sign_bundle(REQ, priv, now - 7200, now - 3600)
    elif kind == "other_key":
        server.body = sign_bundle(REQ, Ed25519PrivateKey.generate().private_bytes_raw(),
                                  now - 10, now + 3600)
    elif kind == "garbage":
        server.body = b"<html>captive portal</html>"
    else:
        server.status = 500
    _system(env, server, pub)
    cfg = env.load()
    reason = cfg.requirements.restrictive_reason
    assert reason and "cloud requirements bundle refused" in reason
    expected = {"unsigned": "unsigned", "bad_signature": "bad signature",
                "expired": "expired", "other_key": "bad signature", "garbage": "not JSON",
                "http_error": "HTTP 500"}[kind]
    assert expected in reason
    assert cfg.get("approval_policy") == "untrusted"
    assert cfg.get("default_permissions") == ":read-only"
    assert server.hits


def test_bad_fetch_falls_back_to_last_good_cache(env, server, keypair):
    priv, pub = keypair
    now = int(time.time())
    server.body = sign_bundle('allowed_approval_policies = ["on-request"]\n', priv, now - 10,
                              now + 3600)
    _system(env, server, pub)
    assert env.load().get("approval_policy") == "on-request"
    server.body = sign_bundle(REQ, Ed25519PrivateKey.generate().private_bytes_raw(), now, now + 60)
    cfg = env.load()
    assert cfg.get("approval_policy") == "on-request"
    assert cfg.requirements.restrictive_reason is None
    assert any("using the last good cached bundle" in w and "bad signature" in w
               for w in cfg.warnings)


def test_rollback_to_older_bundle_is_refused(env, server, keypair):
    priv, pub = keypair
    now = int(time.time())
    server.body = sign_bundle(REQ, priv, now - 10, now + 3600)
    _system(env, server, pub)
    env.load()
    server.body = sign_bundle('allowed_approval_policies = ["never"]\n', priv, now - 1000,
                              now + 3600)
    cfg = env.load()
    assert cfg.get("approval_policy") == "untrusted"
    assert any("rollback" in w for w in cfg.warnings)


def test_fresh_cache_is_used_without_fetching(env, server, keypair):
    priv, pub = keypair
    now = int(time.time())
    server.body = sign_bundle(REQ, priv, now - 10, now + 3600)
    _system(env, server, pub, refresh=300)
    env.load()
    env.load()
    assert len(server.hits) == 1


def test_tampered_cache_is_not_trusted(env, server, keypair):
    priv, pub = keypair
    now = int(time.time())
    server.body = sign_bundle(REQ, priv, now - 10, now + 3600)
    _system(env, server, pub, refresh=300)
    env.load()
    cache = env.home / "state" / "requirements-bundle.json"
    cache.write_bytes(cache.read_bytes().replace(b"untrusted", b"never"))
    server.status = 503
    cfg = env.load()
    assert cfg.get("approval_policy") == "untrusted"  # restrictive: nothing good to use
    assert any("unusable" in w for w in cfg.warnings)


def test_plain_http_url_is_refused(env, keypair):
    _, pub = keypair
    env.system_config(f'[managed]\nrequirements_bundle_url = "http://127.0.0.1:9/x"\n'
                      f'requirements_bundle_public_key = "{pub}"\n')
    cfg = env.load()
    assert "must use https" in (cfg.requirements.restrictive_reason or "")


def test_bundle_only_honoured_from_system_config(env, keypair):
    _, pub = keypair
    env.user_config(f'[managed]\nrequirements_bundle_url = "https://127.0.0.1:9/x"\n'
                    f'requirements_bundle_public_key = "{pub}"\n')
    cfg = env.load()
    assert cfg.requirements.restrictive_reason is None
    assert any("honoured only in the system config" in w for w in cfg.warnings)
