"""Bearer tokens: random, shown once, stored only as a SHA-256 digest.

Scopes: ``ingest`` (POST /v1/logs), ``read`` (events, proofs, checkpoints), ``analyst``
(the analytics, team-level: ``/v1/stats``, the dashboard), ``investigator`` (what an analyst
may, plus per-user views and ``POST /v1/triage``), ``admin`` (all).
A revocation is a row of its own (the store is insert-only), checked on every request, so a
revoked token is refused from the next request on.

A read token may be narrowed when created: to some event types, and with or without the
content tier (prompts, arguments and outputs; without it they come back as hash and length).
The narrowing is part of the stored scope string, ``read;types=a,b;content``.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from corral.server.store.base import Store, Token

SCOPES = ("ingest", "read", "analyst", "investigator", "admin")
# What each scope also allows beyond its own name (admin allows everything).
IMPLIES = {"investigator": frozenset({"analyst"})}
PREFIX = "corral_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Grant:
    """What a token may read: event types (None: all) and whether content comes unredacted."""

    base: str
    types: frozenset[str] | None
    content: bool


def grant(scope: str) -> Grant:
    base, *opts = scope.split(";")
    types: frozenset[str] | None = None
    content = base == "admin"
    for o in opts:
        if o == "content":
            content = True
        elif o.startswith("types="):
            types = frozenset(t for t in o[6:].split(",") if t)
    return Grant(base, types, content)


def create(store: Store, scope: str, name: str = "", expires_days: int | None = None,
           event_types: list[str] | None = None, content: bool = False) -> str:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r} (use {', '.join(SCOPES)})")
    if (event_types or content) and scope != "read":
        raise ValueError("event types and the content tier narrow read tokens only")
    for t in event_types or []:
        if not t or not all(c.isalnum() or c in "._" for c in t):
            raise ValueError(f"bad event type {t!r}")
    if event_types:
        scope += ";types=" + ",".join(sorted(set(event_types)))
    if content:
        scope += ";content"
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
    base = tok.scope.split(";", 1)[0]
    if base != need and base != "admin" and need not in IMPLIES.get(base, ()):
        return 403, f"token scope {base} does not allow {need}", tok
    return 200, "", tok
