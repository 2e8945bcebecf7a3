"""Remote approval: a signed, single-use, expiring token bound to one pending action.

``token = base64url(payload JSON) + "." + base64url(Ed25519 signature over those bytes)``,
payload ``{"v":1, "pending_id", "action_digest", "scope", "exp", "nonce"}``. The key lives in
``$CORRAL_HOME/keys/approvals.key`` (0600); its public half in ``approvals.pub``. Redeeming
checks, in order: shape, signature, expiry, the pending question's action digest, single use
(nonce recorded in the same transaction as the answer). Each refusal is one line.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.approvals.model import Choice, canonical_json, fmt_time, refuse

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from corral.approvals.queue import PendingAnswer, PendingQueue

MAX_TTL = 7 * 86400
MAX_TOKEN_CHARS = 4096


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    if not text or any(c not in _B64 for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The approvals signing key, created (0600, directory 0700) on first use."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise refuse(f"approvals key {path} is readable by others (mode {mode:04o})",
                         f"chmod 600 {path}, or delete it to make a new one")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise refuse(f"{path} is not an Ed25519 key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    path.with_suffix(".pub").write_bytes(pub)
    return key


def _public_key(path: Path) -> Ed25519PublicKey:
    """The verifying key: from the private key when this user can read it (so a swapped
    ``approvals.pub`` changes nothing), else from ``approvals.pub``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if path.exists() and os.access(path, os.R_OK):
        return load_or_create_key(path).public_key()
    pub_path = path.with_suffix(".pub")
    if pub_path.exists():
        pub = serialization.load_pem_public_key(pub_path.read_bytes())
        if not isinstance(pub, Ed25519PublicKey):
            raise refuse(f"{pub_path} is not an Ed25519 public key")
        return pub
    raise refuse("no approvals key on this machine, so no token can be verified",
                 f"expected {path} or {pub_path}")


def sign_token(key: Ed25519PrivateKey, pending_id: str, action_digest: str,
               choice: Choice | str, exp: float, nonce: str | None = None) -> str:
    """The token text for these exact claims (low level: ``mint_token`` fills them in)."""
    payload = {"v": 1, "pending_id": pending_id, "action_digest": action_digest,
               "scope": Choice(choice).value, "exp": int(exp),
               "nonce": nonce or secrets.token_urlsafe(16)}
    body = canonical_json(payload).encode("utf-8")
    return _b64e(body) + "." + _b64e(key.sign(body))


def mint_token(queue: PendingQueue, pending_id: str, choice: Choice | str, *,
               ttl: float = 900, key_path: Path | None = None,
               now: float | None = None) -> str:
    """Mint a token that answers pending question ``pending_id`` with ``choice``.

    The token expires after ``ttl`` seconds or with the question, whichever comes first."""
    t = time.time() if now is None else now
    if not 0 < ttl <= MAX_TTL:
        raise refuse(f"token lifetime must be between 1s and {MAX_TTL // 86400} days")
    item = queue.get(pending_id)
    if item is None:
        raise refuse(f"no pending question {pending_id!r}", "run `corral approve` to list them")
    if item.answered is not None:
        raise refuse(f"pending question {pending_id} was already answered ({item.answered})"
                     if item.answered not in ("expired", "cancelled") else
                     f"pending question {pending_id} is already {item.answered}")
    if item.expires_at <= t:
        raise refuse(f"pending question {pending_id} expired at {fmt_time(item.expires_at)}")
    from corral.approvals.prompt import offered_choices

    offered = offered_choices(item.question())
    if Choice(choice) not in offered:
        raise refuse(f"{Choice(choice).value} is not offered for pending question {pending_id}",
                     "offered: " + ", ".join(c.value for c in offered))
    key = load_or_create_key(key_path or queue.store.key_file)
    return sign_token(key, pending_id, item.digest, choice, min(t + ttl, item.expires_at))


def read_token(token: str) -> dict[str, Any]:
    """The claims of a token, without verifying anything (for display)."""
    text = token.strip()
    if len(text) > MAX_TOKEN_CHARS or text.count(".") != 1:
        raise refuse("token is malformed (expected two base64url parts joined by '.')")
    body_b64, _ = text.split(".")
    try:
        claims = json.loads(_b64d(body_b64).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise refuse("token is malformed (payload is not base64url JSON)") from None
    if not isinstance(claims, dict):
        raise refuse("token is malformed (payload is not a JSON object)")
    return claims


def redeem_token(queue: PendingQueue, token: str, *, key_path: Path | None = None,
                 now: float | None = None) -> PendingAnswer:
    """Verify a token and answer its pending question; refused with a one-line reason when
    malformed, tampered, expired, bound to another action, or already used."""
    from cryptography.exceptions import InvalidSignature

    from corral.approvals.queue import PendingAnswer

    t = time.time() if now is None else now
    claims = read_token(token)
    body_b64, sig_b64 = token.strip().split(".")
    try:
        body, sig = _b64d(body_b64), _b64d(sig_b64)
    except ValueError:
        raise refuse("token is malformed (not base64url)") from None
    pub = _public_key(key_path or queue.store.key_file)
    try:
        pub.verify(sig, body)
    except InvalidSignature:
        raise refuse("token signature does not verify (tampered, or minted with another "
                     "machine's key)") from None
    try:
        if claims["v"] != 1:
            raise refuse(f"token version {claims['v']!r} is not supported")
        pending_id, digest = str(claims["pending_id"]), str(claims["action_digest"])
        exp, nonce = int(claims["exp"]), str(claims["nonce"])
        choice = Choice(claims["scope"])
    except (KeyError, TypeError, ValueError):
        raise refuse("token is malformed (missing or bad claims)") from None
    if t >= exp:
        raise refuse(f"token expired at {fmt_time(exp)}")
    queue.answer(pending_id, choice, by="remote", now=t, nonce=nonce, digest=digest)
    return PendingAnswer(pending_id, choice, "remote")
