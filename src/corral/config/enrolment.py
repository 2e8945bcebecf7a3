"""The machine's enrolment with a corral server and the user's sign-in: plain records.

``corral enroll`` (``corral.fleet``) writes ``$CORRAL_HOME/fleet/enrolment.json``; the config
loader reads it on every start (one small JSON file) for two things: the server to forward to
(``server.url``, ``server.ca_file``, an ``enrolment`` layer just above the system config) and the
server-managed policy, a requirements source fetched through the signed-bundle mechanism
(``corral.config.bundle``) with the policy key pinned here at enrolment. ``corral login`` writes
``identity.json`` beside it: who signed in, to which issuer, with which workspace claim; the
tokens themselves are secrets and live in the OS keyring (``corral.credentials``).

Nothing secret is in these files; they are written 0600 all the same.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from corral.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEVICE_SERVICE = "corral-device"  # the device's private key, per server URL
TOKEN_SERVICE = "corral-server"  # the ingest token, per server URL (shared with corral login)
IDENTITY_SERVICE = "corral-identity"  # sign-in tokens, per issuer


@dataclass(frozen=True)
class Enrolment:
    server: str  # the server's URL as the machine reaches it
    device_id: str
    device_public_key: str  # base64 raw Ed25519
    policy_public_key: str  # base64 raw Ed25519, pinned at enrolment
    refresh_seconds: float = 300.0
    ca_file: str | None = None
    groups: tuple[str, ...] = ()
    enrolled_at: int = 0
    oidc: dict[str, str] = field(default_factory=dict)  # issuer, client_id, workspace_claim

    @property
    def policy_url(self) -> str:
        return self.server + "/v1/fleet/policy"


@dataclass(frozen=True)
class Identity:
    """Who signed in (from a verified ID token) and how."""

    method: str  # "oidc": the OAuth device authorization grant against the server's issuer
    issuer: str
    client_id: str
    subject: str
    email: str = ""
    name: str = ""
    workspace: str = ""  # the value of workspace_claim in the ID token ("" when absent)
    workspace_claim: str = ""
    expires_at: int = 0  # the ID token's exp
    signed_in_at: int = 0

    @property
    def display(self) -> str:
        return self.email or self.name or self.subject


def fleet_dir(home: Path) -> Path:
    return home / "fleet"


def enrolment_file(home: Path) -> Path:
    return fleet_dir(home) / "enrolment.json"


def identity_file(home: Path) -> Path:
    return fleet_dir(home) / "identity.json"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a JSON object")
    return doc


def read_enrolment(home: Path) -> Enrolment | None:
    doc = _read(enrolment_file(home))
    if doc is None:
        return None
    try:
        return Enrolment(
            server=str(doc["server"]), device_id=str(doc["device_id"]),
            device_public_key=str(doc["device_public_key"]),
            policy_public_key=str(doc["policy_public_key"]),
            refresh_seconds=float(doc.get("refresh_seconds", 300.0)),
            ca_file=str(doc["ca_file"]) if doc.get("ca_file") else None,
            groups=tuple(str(g) for g in doc.get("groups", [])),
            enrolled_at=int(doc.get("enrolled_at", 0)),
            oidc={str(k): str(v) for k, v in dict(doc.get("oidc") or {}).items()})
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{enrolment_file(home)}: bad enrolment record ({exc})") from None


def read_identity(home: Path) -> Identity | None:
    doc = _read(identity_file(home))
    if doc is None:
        return None
    try:
        return Identity(**{k: doc[k] for k in Identity.__dataclass_fields__ if k in doc})
    except TypeError as exc:
        raise ConfigError(f"{identity_file(home)}: bad identity record ({exc})") from None


def write_record(path: Path, record: Enrolment | Identity) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(record), fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def enrol_signed_message(request: dict[str, Any]) -> bytes:
    """What the device key signs in ``POST /v1/fleet/enroll`` (machine and server agree on it
    here): the request without its signature, the enrolment token replaced by its SHA-256,
    as canonical JSON."""
    import hashlib

    body = {k: v for k, v in request.items() if k not in ("signature", "token")}
    body["token_sha256"] = hashlib.sha256(str(request.get("token", "")).encode()).hexdigest()
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


POLICY_CACHE = "fleet-policy-bundle.json"  # in $CORRAL_HOME/state, beside the cloud bundle


def policy_cache(home: Path) -> Path:
    return home / "state" / POLICY_CACHE
