"""``POST /v1/erasures``: an erasure request through the API (admin scope), the same operation
as ``corral server erase`` (corral.server.holds.erase): the user's events lose their content
under one signed tombstone, or, when any of them is under an active legal hold, nothing is
touched and the answer is a 409 with the one line naming the hold. Every request, done, refused
or a dry run, is also recorded in the log as a ``server.access`` event; one that would erase
is recorded before it is applied (``outcome: "requested"``), so an erasure never happens
unrecorded: if that record cannot be written, the answer is a 503 and nothing is touched."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corral.server import config as sconfig
from corral.server import holds, query, retention, tokens
from corral.server.api import _fail

if TYPE_CHECKING:
    from corral.server.api import ComplianceApi

MAX_BODY = 16 * 1024
KEYS = {"user", "since", "until", "reason", "dry_run"}
ENDPOINT = "/v1/erasures"


class _Bad(Exception):
    pass


def routes(api: ComplianceApi) -> list[Route]:
    async def erase(request: Request) -> Response:
        return await _erase(api, request)

    return [Route(ENDPOINT, erase, methods=["POST"])]


def parse(body: bytes) -> tuple[str, int | None, int | None, str, bool]:
    """(user, since_ns, until_ns, reason, dry_run) from the request body; _Bad says why not."""
    if len(body) > MAX_BODY:
        raise _Bad(f"request body over {MAX_BODY} bytes")
    try:
        doc = json.loads(body)
    except ValueError:
        raise _Bad("the body must be a JSON object: {\"user\": …, \"reason\": …}") from None
    if not isinstance(doc, dict):
        raise _Bad("the body must be a JSON object: {\"user\": …, \"reason\": …}")
    extra = sorted(set(doc) - KEYS)
    if extra:
        raise _Bad(f"unknown field {str(extra[0])[:40]!r} (fields: {', '.join(sorted(KEYS))})")
    user, reason, dry = doc.get("user"), doc.get("reason"), doc.get("dry_run", False)
    if not isinstance(user, str) or not query._USER.fullmatch(user) or not _utf8(user):
        raise _Bad("user is required: the OS user or user.name whose events to erase")
    if not isinstance(reason, str) or not _utf8(reason):
        raise _Bad("reason is required (why, for the tombstone)")
    if not isinstance(dry, bool):
        raise _Bad("dry_run must be true or false")
    times: list[int | None] = []
    for key in ("since", "until"):
        v = doc.get(key)
        if isinstance(v, bool) or (v is not None and not isinstance(v, (str, int))):
            raise _Bad(f"{key} must be ISO-8601 or nanoseconds since the epoch")
        try:
            times.append(None if v is None else query.parse_time(key, str(v)))
        except query.BadQuery as exc:
            raise _Bad(str(exc)) from None
    if times[0] is not None and times[1] is not None and times[1] <= times[0]:
        raise _Bad("until must be later than since")
    try:
        reason = holds.check_reason(reason)
    except holds.Refused as exc:
        raise _Bad(str(exc).replace("--reason", "reason")) from None
    return user, times[0], times[1], reason, dry


def _utf8(text: str) -> bool:
    """False for a lone surrogate (JSON can carry one; the log cannot store it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _erase(api: ComplianceApi, request: Request) -> Response:
    srv = api.srv
    status, why, tok = tokens.check(srv.reader, request.headers.get("authorization"), "admin")
    if status != 200 or tok is None:
        srv.metrics.reject("auth")
        return _fail(status, f"erase: {why}")
    try:
        user, lo, hi, reason, dry = parse(await request.body())
    except _Bad as exc:
        return _fail(400, f"erase: {exc}")
    by = f"token {tok.name} ({tok.id})"
    asked: dict[str, Any] = {"user": user, "since_ns": lo, "until_ns": hi, "reason": reason,
                             "dry_run": dry}
    if not dry:  # recorded before anything irreversible: refused (503) if it cannot be
        denied = await api.audit(tok, ENDPOINT, {**asked, "status": None,
                                                 "outcome": "requested"}, 0)
        if denied:
            return denied
    try:
        n, tid = await asyncio.to_thread(_run, api, user, lo, hi, reason, by, dry)
        status, outcome = 200, "dry run" if dry else "erased" if n else "nothing to erase"
        answer: Response = JSONResponse({"user": user, "count": n, "tombstone": tid,
                                         "dry_run": dry})
    except holds.Refused as exc:
        status, outcome, n = 409, str(exc), 0
        answer = _fail(409, str(exc))
    except Exception as exc:  # the store could not take it (a full disk): nothing applied
        srv.metrics.reject("erase")
        status, outcome, n = 503, f"not applied: {type(exc).__name__}", 0
        answer = _fail(503, f"erase: the log could not apply it now ({type(exc).__name__}); "
                            "nothing was erased", retry=5)
    denied = await api.audit(tok, ENDPOINT, {**asked, "status": status, "outcome": outcome}, n)
    if denied and (dry or status != 200):
        return denied  # nothing was done: the one thing to say is that it was not recorded
    return answer  # done: the request was recorded before it, the tombstone says what was done


def _run(api: ComplianceApi, user: str, lo: int | None, hi: int | None, reason: str, by: str,
         dry: bool) -> tuple[int, str | None]:
    srv = api.srv
    st = sconfig.open_store(srv.cfg) if srv.cfg.database == "sqlite" else srv.writer_store
    try:
        return holds.erase(st, retention.Signer(srv.name, srv.key), user, lo, hi, reason, by,
                           time.time_ns(), dry)
    finally:
        if st is not srv.writer_store:
            st.close()
