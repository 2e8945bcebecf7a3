"""Enrolment: a machine with an enrolment token becomes a device with its own ingest token.

The machine sends its Ed25519 public key, host name and version with the enrolment token and a
signature by the device key over the request (proof that it holds the private half; the token
itself is signed as its SHA-256). The server spends one use of the token, names the device
(``dev-`` + 16 hex of the key's SHA-256), creates an ingest token bound to it, and answers with
the policy key to pin, the policy refresh interval and the identity provider to sign in with.
Revoking a device revokes its ingest token: its next request is refused.

Settings in ``DATA/fleet.toml`` (all optional)::

    refresh_seconds = 300      # how often machines fetch their policy
    bundle_ttl_days = 7        # how long a signed policy bundle stays valid offline
    [oidc]
    issuer = "https://login.example.com"     # OIDC discovery at /.well-known/openid-configuration
    client_id = "corral-cli"                 # a public client allowed the device grant
    workspace_claim = "org_id"               # the ID-token claim naming the organisation
"""

from __future__ import annotations

import base64
import binascii
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.config.enrolment import enrol_signed_message
from corral.server import tokens
from corral.server.fleetdb import Device, FleetRefused, FleetStore, device_id_for, record
from corral.server.store.base import Store

FLEET_KEYS = frozenset({"refresh_seconds", "bundle_ttl_days", "oidc"})
OIDC_KEYS = frozenset({"issuer", "client_id", "workspace_claim", "scope"})


@dataclass(frozen=True)
class FleetSettings:
    refresh_seconds: float = 300.0
    bundle_ttl_days: float = 7.0
    oidc: dict[str, str] = field(default_factory=dict)

    @property
    def bundle_ttl_seconds(self) -> int:
        return int(self.bundle_ttl_days * 86400)


def load_settings(data: Path) -> FleetSettings:
    """``DATA/fleet.toml``; unknown keys are refused (a misspelt key must not fall back)."""
    path = data / "fleet.toml"
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return FleetSettings()
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    problems = check_document(doc)
    if problems:
        raise ValueError(f"{path}: {problems[0]}")
    oidc = doc.get("oidc", {})
    return FleetSettings(float(doc.get("refresh_seconds", 300.0)),
                         float(doc.get("bundle_ttl_days", 7.0)),
                         {str(k): str(v) for k, v in oidc.items()})


def check_document(doc: dict[str, Any]) -> list[str]:
    """Problems in a fleet.toml document (also the docs check's); empty when fine."""
    bad = [f"unknown key `{k}`" for k in doc if k not in FLEET_KEYS]
    oidc = doc.get("oidc", {})
    if not isinstance(oidc, dict):
        return [*bad, "[oidc] must be a table"]
    bad += [f"unknown key `oidc.{k}`" for k in oidc if k not in OIDC_KEYS]
    if oidc and not (oidc.get("issuer") and oidc.get("client_id")):
        bad.append("[oidc] needs issuer and client_id")
    for k in ("refresh_seconds", "bundle_ttl_days"):
        v = doc.get(k, 1)
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
            bad.append(f"{k} must be a positive number")
    return bad


def _field(req: dict[str, Any], name: str, limit: int = 512) -> str:
    v = req.get(name)
    if not isinstance(v, str) or not v or len(v) > limit or not v.isprintable():
        raise FleetRefused(400, f"enrolment request field {name} is missing or malformed")
    return v


def enrol(fleet: FleetStore, store: Store, req: dict[str, Any], settings: FleetSettings,
          policy_public_key: str) -> dict[str, Any]:
    """Register the device; the answer for the machine (its ingest token appears only here)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    token = _field(req, "token")
    pub_b64 = _field(req, "public_key", 64)
    hostname = _field(req, "hostname", 255)
    server_url = _field(req, "server_url", 2048)
    version = _field(req, "corral_version", 64)
    try:
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(pub_b64, validate=True))
        pub.verify(base64.b64decode(_field(req, "signature", 128), validate=True),
                   enrol_signed_message(req))
    except (ValueError, binascii.Error, InvalidSignature):
        raise FleetRefused(400, "enrolment request not signed by the device key it "
                           "presents") from None
    existing = fleet.device_by_key(pub_b64)
    if existing is not None:
        state = "revoked" if existing.revoked_ns else "enrolled"
        raise FleetRefused(409, f"this device key is already {state} as {existing.id}")
    enrol_id, groups = fleet.use_enrol_token(token)
    device_id = device_id_for(pub_b64)
    ingest = tokens.create(store, "ingest", f"device {device_id}")
    d = tokens.digest(ingest)
    dev = Device(device_id, pub_b64, hostname, tuple(groups), server_url, d[:12],
                 time.time_ns())
    fleet.add_device(dev, d, enrol_id)
    fleet.seen(device_id, corral_version=version)
    record(store, "corral.fleet.device.enrolled", {
        "fleet.device.id": device_id, "fleet.device.hostname": hostname,
        "fleet.device.groups": list(groups), "fleet.enrol_token.id": enrol_id,
        "fleet.device.public_key": pub_b64})
    return {"device_id": device_id, "ingest_token": ingest, "groups": list(groups),
            "policy_public_key": policy_public_key, "refresh_seconds": settings.refresh_seconds,
            "oidc": settings.oidc}


def revoke(fleet: FleetStore, store: Store, device_id: str, author: str) -> Device:
    dev = fleet.device(device_id)
    if dev is None:
        raise FleetRefused(404, f"no device {device_id}")
    store.revoke_token(dev.token_id, time.time_ns())
    fleet.revoke_device(device_id)
    record(store, "corral.fleet.device.revoked", {
        "fleet.device.id": device_id, "fleet.device.hostname": dev.hostname,
        "fleet.revoked_by": author})
    return dev
