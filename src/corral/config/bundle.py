"""Cloud-managed requirements: a signed bundle fetched over HTTPS, verified, cached.

The bundle is a JSON envelope::

    {"format": "corral-requirements-bundle/v1", "issued_at": <unix s>, "expires_at": <unix s>,
     "requirements_toml": "<TOML text>", "signature": "<base64 Ed25519 signature>"}

The signature covers the canonical JSON (sorted keys, no spaces) of every field but
``signature``. Only a bundle signed by the public key pinned in the *system* config is accepted;
a refused fetch falls back to the last good cached bundle, and with none the caller applies the
most restrictive settings. A fetched bundle older than the cached one is refused (rollback).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUNDLE_FORMAT = "corral-requirements-bundle/v1"
MAX_BUNDLE_BYTES = 1024 * 1024
FETCH_TIMEOUT_SECONDS = 10.0


class BundleRefused(Exception):
    """The bundle (fetched or cached) cannot be used; the message says why."""


@dataclass(frozen=True)
class Bundle:
    requirements_toml: str
    issued_at: int
    expires_at: int
    source: str  # e.g. "cloud bundle https://... (issued 2026-11-22T10:00:00Z)"


def _signed_bytes(envelope: dict[str, Any]) -> bytes:
    body = {k: v for k, v in envelope.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _load_public_key(pubkey_b64: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        raw = base64.b64decode(pubkey_b64.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise BundleRefused(f"pinned public key is not a base64 Ed25519 key: {exc}") from None


def verify_envelope(raw: bytes, pubkey_b64: str, url: str, now: float | None = None) -> Bundle:
    """Parse and verify a bundle envelope; raises BundleRefused with the reason."""
    from cryptography.exceptions import InvalidSignature

    if len(raw) > MAX_BUNDLE_BYTES:
        raise BundleRefused("bundle larger than 1 MiB")
    try:
        env = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleRefused(f"bundle is not JSON: {exc}") from None
    if not isinstance(env, dict):
        raise BundleRefused("bundle is not a JSON object")
    if env.get("format") != BUNDLE_FORMAT:
        raise BundleRefused(f"unknown bundle format {env.get('format')!r}")
    sig = env.get("signature")
    if not isinstance(sig, str) or not sig:
        raise BundleRefused("bundle is unsigned")
    for key in ("issued_at", "expires_at"):
        if not isinstance(env.get(key), int) or isinstance(env.get(key), bool):
            raise BundleRefused(f"bundle field {key} must be an integer")
    if not isinstance(env.get("requirements_toml"), str):
        raise BundleRefused("bundle field requirements_toml must be a string")
    key = _load_public_key(pubkey_b64)
    try:
        key.verify(base64.b64decode(sig, validate=True), _signed_bytes(env))
    except (InvalidSignature, binascii.Error, ValueError):
        raise BundleRefused("bad signature (not signed by the pinned key)") from None
    now = time.time() if now is None else now
    if env["expires_at"] <= now:
        raise BundleRefused(f"bundle expired at {_iso(env['expires_at'])}")
    if env["issued_at"] > now + 300:
        raise BundleRefused(f"bundle issued in the future ({_iso(env['issued_at'])})")
    return Bundle(
        requirements_toml=env["requirements_toml"],
        issued_at=env["issued_at"],
        expires_at=env["expires_at"],
        source=f"cloud bundle {url} (issued {_iso(env['issued_at'])})",
    )


def sign_bundle(
    requirements_toml: str, private_key_raw: bytes, issued_at: int, expires_at: int
) -> bytes:
    """Create a signed envelope (for admins' tooling and for tests)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    env: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "issued_at": issued_at,
        "expires_at": expires_at,
        "requirements_toml": requirements_toml,
    }
    key = Ed25519PrivateKey.from_private_bytes(private_key_raw)
    env["signature"] = base64.b64encode(key.sign(_signed_bytes(env))).decode()
    return json.dumps(env, sort_keys=True).encode()


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _fetch(url: str, ca_file: str | None) -> bytes:
    import ssl
    import urllib.error
    import urllib.request

    if not url.startswith("https://"):
        raise BundleRefused(f"bundle URL must use https: {url}")
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT_SECONDS, context=ctx) as resp:
            data: bytes = resp.read(MAX_BUNDLE_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise BundleRefused(f"fetch failed: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", exc)
        raise BundleRefused(f"fetch failed: {reason}") from None
    return data


def load_cloud_bundle(
    url: str,
    pubkey_b64: str,
    cache_path: Path,
    *,
    ca_file: str | None = None,
    refresh_seconds: float = 300.0,
    now: float | None = None,
    warnings: list[str] | None = None,
) -> Bundle:
    """The bundle to apply; problems are appended to ``warnings``. Raises BundleRefused when
    nothing usable exists."""
    now = time.time() if now is None else now
    warnings = warnings if warnings is not None else []
    cached: Bundle | None = None
    cache_age: float | None = None
    try:
        raw_cache = cache_path.read_bytes()
        cache_age = now - cache_path.stat().st_mtime
        cached = verify_envelope(raw_cache, pubkey_b64, url, now)
    except FileNotFoundError:
        pass
    except (OSError, BundleRefused) as exc:
        warnings.append(f"cached requirements bundle {cache_path} unusable: {exc}")
    if cached is not None and cache_age is not None and 0 <= cache_age < refresh_seconds:
        return cached
    try:
        raw = _fetch(url, ca_file)
        fresh = verify_envelope(raw, pubkey_b64, url, now)
        if cached is not None and fresh.issued_at < cached.issued_at:
            raise BundleRefused("fetched bundle is older than the cached one (rollback)")
    except BundleRefused as exc:
        if cached is not None:
            warnings.append(
                f"cloud requirements bundle refused: {exc}; using the last good cached bundle "
                f"({cached.source})"
            )
            return cached
        raise BundleRefused(f"{url}: {exc}; no good cached bundle") from None
    _write_cache(cache_path, raw)
    return fresh


def _write_cache(cache_path: Path, raw: bytes) -> None:
    import tempfile

    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=cache_path.parent, prefix=".bundle-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
        os.replace(tmp, cache_path)
    except OSError:
        pass  # the cache is an optimisation; the verified bundle is applied regardless
