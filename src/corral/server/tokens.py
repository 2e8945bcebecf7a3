"""Bearer tokens: random, shown once, stored only as a SHA-256 digest.

Scopes: ``ingest`` (POST /v1/logs), ``read`` (events, proofs, checkpoints), ``admin`` (all).
A revocation is a row of its own (the store is insert-only), checked on every request, so a
revoked token is refused from the next request on.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from corral.server.store.base import Store, Token

SCOPES = ("ingest", "read", "admin")
PREFIX = "corral_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def create(store: Store, scope: str, name: str = "", expires_days: int | None = None) -> str:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r} (use {', '.join(SCOPES)})")
    secret = PREFIX + secrets.token_urlsafe(32)
    d = digest(secret)
    now = time.time_ns()
    expires = now + expires_days * 86400 * 10**9 if expires_days else None
    store.add_token(Token(d[:12], name or scope, scope, now, expires), d)
    return secret


def check(store: Store, header: str | None, need: str) -> tuple[int, str, Token | None]:
    """(HTTP status, reason, token): 200 when the bearer token is valid for ``need``."""
    if not header or not header.startswith("Bearer "):
        return 401, "missing bearer token", None
    tok = store.token_by_digest(digest(header[7:].strip()))
    if tok is None:
        return 401, "unknown token", None
    if tok.revoked_ns is not None:
        return 401, "token revoked", tok
    if tok.expires_ns is not None and tok.expires_ns < time.time_ns():
        return 401, "token expired", tok
    if tok.scope != need and tok.scope != "admin":
        return 403, f"token scope {tok.scope} does not allow {need}", tok
    return 200, "", tok
