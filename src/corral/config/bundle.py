"""Cloud-managed requirements: a signed bundle fetched over HTTPS, verified, cached.

The bundle is a JSON envelope::

    {"format": "corral-requirements-bundle/v1", "issued_at": <unix s>, "expires_at": <unix s>,
     "requirements_toml": "<TOML text>", "signature": "<base64 Ed25519 signature>"}

The signature covers the canonical JSON (sorted keys, no spaces) of every field but
``signature``. Only a bundle signed by the public key pinned in the *system* config is accepted;
a refused fetch falls back to the last good cached bundle, and with none the caller applies the
most restrictive settings. A fetched bundle older than the cached one is refused (rollback).

``corral server`` serves the same envelope to enrolled machines (``corral.config.enrolment``)
with two more signed fields: ``policy_version`` (the server's policy revision; a lower one than
the cached bundle's is a rollback) and ``device`` (the device it was signed for; a bundle signed
for another device is refused, so one machine's looser policy cannot be replayed to another).
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

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

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
    version: int | None = None  # policy_version (server-managed policy)


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


def verify_envelope(raw: bytes, pubkey_b64: str, url: str, now: float | None = None,
                    audience: str | None = None, label: str = "cloud bundle") -> Bundle:
    """Parse and verify a bundle envelope; raises BundleRefused with the reason. With
    ``audience`` (a device id) the bundle must have been signed for that device."""
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
    version = env.get("policy_version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise BundleRefused("bundle field policy_version must be an integer")
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
    if audience is not None and env.get("device") != audience:
        raise BundleRefused(f"bundle was signed for device {env.get('device')!r}, not this "
                            f"device ({audience})")
    ver = f"version {version}, " if version is not None else ""
    return Bundle(
        requirements_toml=env["requirements_toml"],
        issued_at=env["issued_at"],
        expires_at=env["expires_at"],
        source=f"{label} {url} ({ver}issued {_iso(env['issued_at'])})",
        version=version,
    )


def sign_bundle(
    requirements_toml: str, private_key_raw: bytes, issued_at: int, expires_at: int,
    extra: dict[str, Any] | None = None,
) -> bytes:
    """Create a signed envelope (for admins' tooling, ``corral server`` and tests); ``extra``
    adds signed fields (``policy_version``, ``device``)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    env: dict[str, Any] = {
        **(extra or {}),
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


def _loopback_http(url: str) -> bool:
    """``http://`` to this machine (a local server, tests): nothing crosses a network."""
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _fetch(url: str, ca_file: str | None, headers: dict[str, str] | None = None,
           loopback_http: bool = False) -> bytes:
    import ssl
    import urllib.error
    import urllib.request

    if not url.startswith("https://") and not (loopback_http and _loopback_http(url)):
        raise BundleRefused(f"bundle URL must use https: {url}")
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    req = urllib.request.Request(url, headers={"Accept": "application/json", **(headers or {})})
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
    headers: Callable[[Bundle | None], dict[str, str]] | None = None,
    audience: str | None = None,
    label: str = "cloud bundle",
    loopback_http: bool = False,
) -> Bundle:
    """The bundle to apply; problems are appended to ``warnings``. Raises BundleRefused when
    nothing usable exists. ``headers(cached)`` gives the fetch's extra headers (credentials,
    the version applied now); it is called only when a fetch is due. ``loopback_http`` allows
    ``http://`` to this machine (the enrolled server's rule, as for forwarding)."""
    now = time.time() if now is None else now
    warnings = warnings if warnings is not None else []
    cached: Bundle | None = None
    cache_age: float | None = None
    try:
        raw_cache = cache_path.read_bytes()
        cache_age = now - cache_path.stat().st_mtime
        cached = verify_envelope(raw_cache, pubkey_b64, url, now, audience, label)
    except FileNotFoundError:
        pass
    except (OSError, BundleRefused) as exc:
        warnings.append(f"cached {_what(label)} {cache_path} unusable: {exc}")
    if cached is not None and cache_age is not None and 0 <= cache_age < refresh_seconds:
        return cached
    try:
        raw = _fetch(url, ca_file, headers(cached) if headers else None, loopback_http)
        fresh = verify_envelope(raw, pubkey_b64, url, now, audience, label)
        if cached is not None and cached.version is not None:
            # versioned (server policy): the version orders them; signing times may differ
            # between replicas by a clock's skew
            if fresh.version is None or fresh.version < cached.version:
                raise BundleRefused(f"fetched policy version {fresh.version} is older than "
                                    f"the cached version {cached.version} (rollback)")
        elif cached is not None and fresh.issued_at < cached.issued_at:
            raise BundleRefused("fetched bundle is older than the cached one (rollback)")
    except BundleRefused as exc:
        if cached is not None:
            warnings.append(
                f"{_what(label)} refused: {exc}; using the last good cached bundle "
                f"({cached.source})"
            )
            return cached
        raise BundleRefused(f"{url}: {exc}; no good cached bundle") from None
    _write_cache(cache_path, raw)
    return fresh


def _what(label: str) -> str:
    return "cloud requirements bundle" if label == "cloud bundle" else label


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
