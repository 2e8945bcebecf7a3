"""``corral enroll --server URL``: give this machine a device identity with a corral server.

1. An Ed25519 device key is made; its private half goes where ``credentials.store`` says (the
   OS keyring by default; a 0600 file only by configuration) before anything is sent, so a
   machine never ends up registered with a key it could not keep.
2. The enrolment token (stdin), the public key, the host name and version are sent to
   ``POST /v1/fleet/enroll``, signed by the device key.
3. The answer's ingest token goes to the same place as ``corral login --server`` would put it
   (so forwarding finds it); the enrolment record (``$CORRAL_HOME/fleet/enrolment.json``) pins
   the server's policy key, its refresh interval and its identity provider.
4. From then on every corral start loads the server's policy (the signed-bundle mechanism,
   ``corral.config.requirements``), and every session forwards its journal to the server and
   checks in (``corral.forward``).
"""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path
from typing import Any

from corral import credentials
from corral.config.enrolment import (
    DEVICE_SERVICE,
    TOKEN_SERVICE,
    Enrolment,
    enrol_signed_message,
    enrolment_file,
    read_enrolment,
    write_record,
)
from corral.errors import CorralError
from corral.fleet.http import json_answer
from corral.forward.settings import normalize_url


class EnrolError(CorralError):
    exit_code = 1


def _err(message: str, hint: str | None = None) -> EnrolError:
    return EnrolError("enroll", message, hint)


def http_client(ca_file: str | None, timeout: float = 15.0) -> Any:
    import ssl

    import httpx

    try:
        tls = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise _err(f"CA file {ca_file!r} is unusable: {exc}") from exc
    return httpx.Client(verify=tls, timeout=timeout, follow_redirects=False)


def enroll(cfg: Any, home: Path, server: str, token: str, ca_file: str | None = None
           ) -> tuple[Enrolment, list[str]]:
    """Enrol; (the record, lines saying where each secret went)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from corral import __version__

    url = normalize_url(server)
    token = token.strip()
    if not token or any(c.isspace() for c in token) or not token.isprintable():
        raise _err("the enrolment token read from stdin is empty or not one printable word")
    existing = read_enrolment(home)
    if existing is not None:
        raise _err(f"already enrolled with {existing.server} as {existing.device_id}",
                   hint=f"to enrol again, first remove {enrolment_file(home)} "
                   "(or use another CORRAL_HOME)")
    key = Ed25519PrivateKey.generate()
    priv = base64.b64encode(key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption())).decode()
    pub = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    where = [f"device key: {credentials.put(cfg, home, DEVICE_SERVICE, url, priv, 'enroll')}"]
    req: dict[str, Any] = {"token": token, "public_key": pub, "hostname": socket.gethostname(),
                           "server_url": url, "corral_version": __version__}
    req["signature"] = base64.b64encode(key.sign(enrol_signed_message(req))).decode()
    import httpx

    try:
        with http_client(ca_file) as client:
            doc = json_answer(client.post(url + "/v1/fleet/enroll", json=req), "enrolment",
                              _err)
    except httpx.HTTPError as exc:
        credentials.delete(cfg, home, DEVICE_SERVICE, url, "enroll")
        raise _err(f"cannot reach {url}: {exc}") from exc
    except EnrolError:
        credentials.delete(cfg, home, DEVICE_SERVICE, url, "enroll")
        raise
    try:
        device_id = str(doc["device_id"])
        ingest = str(doc["ingest_token"])
        policy_key = str(doc["policy_public_key"])
        base64.b64decode(policy_key, validate=True)
        enr = Enrolment(
            server=url, device_id=device_id, device_public_key=pub,
            policy_public_key=policy_key, refresh_seconds=float(doc.get("refresh_seconds", 300)),
            ca_file=ca_file, groups=tuple(str(g) for g in doc.get("groups") or []),
            enrolled_at=int(time.time()),
            oidc={str(k): str(v) for k, v in dict(doc.get("oidc") or {}).items()})
    except (KeyError, TypeError, ValueError) as exc:
        raise _err(f"the server's enrolment answer is malformed ({exc})") from None
    where.append(f"ingest token: {credentials.put(cfg, home, TOKEN_SERVICE, url, ingest, 'enroll')}")
    write_record(enrolment_file(home), enr)
    return enr, where


def fingerprint(public_key_b64: str) -> str:
    import hashlib

    return "SHA256:" + base64.b64encode(
        hashlib.sha256(base64.b64decode(public_key_b64)).digest()).decode().rstrip("=")
