"""The dashboard: an ASGI app (Starlette) over the rollups, and its static page.

Team-level by default. Anything that names a person (``by=user``, a ``user`` filter, the user
column of a drill-down, user names in a timeline) needs the investigator token: these numbers
are for tuning controls, not for ranking people. The token is compared in constant time and
travels in the ``Authorization`` header (the page keeps it in the URL fragment, which browsers
never send). Only Host headers naming loopback are served (no DNS rebinding from a web page).

``make_app`` takes the event source, the rollup store and a ``Gate``: who may read and how a
read is recorded. ``corral dashboard`` uses ``LocalGate`` (loopback, the one-time investigator
token); ``corral server run`` mounts the same app over its store with a gate that checks the
server's tokens (analyst, investigator) and records every data request as ``server.access``.
"""

from __future__ import annotations

import dataclasses
import hmac
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from corral.analytics.query import BY, DRILL_KEYS, Query, compute, drill, options, series
from corral.analytics.report import parse_time
from corral.analytics.rollup import RollupStore, Settings
from corral.analytics.source import EventSource
from corral.errors import CorralError

STATIC = Path(__file__).parent / "static"
REFRESH_EVERY = 1.0  # seconds: at most one rollup refresh per second of requests


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who asked: whether per-user views are allowed, and what the gate needs to audit."""

    investigator: bool
    token: Any = None


class Gate(Protocol):
    investigator_hint: str  # how to get per-user views, for the 403

    def admit(self, request: Request) -> Caller | Response:
        """The caller, or the refusal to send."""
        ...

    def audit(self, caller: Caller, endpoint: str, filters: dict[str, Any],
              count: int) -> Response | None:
        """Record the read before its answer is sent; a refusal when that fails."""
        ...


class LocalGate:
    """``corral dashboard``: whoever reaches 127.0.0.1 reads team-level numbers (the journal's
    owner); per-user views need the one-time token printed at start. Nothing to audit."""

    investigator_hint = "corral dashboard --investigator"

    def __init__(self, token: str | None) -> None:
        self.token = token

    def admit(self, request: Request) -> Caller:
        if not self.token:
            return Caller(False)
        auth = request.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else ""
        return Caller(hmac.compare_digest(given.encode(), self.token.encode()))

    def audit(self, caller: Caller, endpoint: str, filters: dict[str, Any],
              count: int) -> Response | None:
        return None


class _State:
    def __init__(self, source: EventSource, store: RollupStore, settings: Settings) -> None:
        self.source, self.store, self.settings = source, store, settings
        self.lock = threading.Lock()
        self.refreshed = 0.0

    def fresh(self) -> RollupStore:
        now = time.monotonic()
        if now - self.refreshed >= REFRESH_EVERY:
            self.store.refresh(self.source, self.settings)
            self.refreshed = now
        return self.store


_AUDITED = ("since", "until", "team", "agent", "repo", "by", "user", "metric", *DRILL_KEYS)


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": f"corral: analytics: {reason}"}, status_code=status)


def _query(request: Request, caller: Caller, gate: Gate) -> Query | JSONResponse:
    p = request.query_params
    try:
        since = parse_time(p["since"]) if p.get("since") else None
        until = parse_time(p["until"]) if p.get("until") else None
    except CorralError as exc:
        return JSONResponse({"error": exc.line()}, status_code=400)
    by = p.get("by") or None
    if by is not None and by not in BY:
        return _refuse(400, f"by must be one of {', '.join(BY)}")
    user = p.get("user") or None
    if (by == "user" or user is not None) and not caller.investigator:
        return _refuse(403, f"per-user views need the investigator token "
                       f"({gate.investigator_hint})")
    return Query(since_ns=since, until_ns=until, team=p.get("team") or None,
                 agent=p.get("agent") or None, repo=p.get("repo") or None, user=user, by=by)


def make_app(source: EventSource, store: RollupStore, settings: Settings, *,
             investigator_token: str | None = None, gate: Gate | None = None,
             allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Starlette:
    st = _State(source, store, settings)
    g: Gate = gate if gate is not None else LocalGate(investigator_token)

    Answer = Callable[[Request, Caller], "Response | tuple[Response, int]"]

    def guarded(endpoint: str) -> Callable[[Answer], Callable[[Request], Response]]:
        """Admit the caller, answer under the lock, record the read, then send it."""
        def wrap(fn: Answer) -> Callable[[Request], Response]:
            def handler(request: Request) -> Response:
                caller = g.admit(request)
                if isinstance(caller, Response):
                    return caller
                with st.lock:
                    try:
                        got = fn(request, caller)
                    except CorralError as exc:
                        return JSONResponse({"error": exc.line()}, status_code=503)
                if isinstance(got, Response):
                    return got
                answer, count = got
                filters = {k: v[:200] for k, v in request.query_params.items()
                           if k in _AUDITED}
                if "sid" in request.path_params:
                    filters["session_id"] = request.path_params["sid"][:200]
                denied = g.audit(caller, endpoint, filters, count)
                return denied if denied is not None else answer
            return handler
        return wrap

    @guarded("/api/stats")
    def stats(request: Request, caller: Caller) -> Response | tuple[Response, int]:
        q = _query(request, caller, g)
        if isinstance(q, JSONResponse):
            return q
        out = compute(st.fresh(), q, settings)
        return JSONResponse(out), int(out.get("sessions", 0))

    @guarded("/api/series")
    def chart(request: Request, caller: Caller) -> Response | tuple[Response, int]:
        q = _query(request, caller, g)
        if isinstance(q, JSONResponse):
            return q
        out = series(st.fresh(), q, settings)
        return JSONResponse(out), len(out.get("labels", []))

    @guarded("/api/sessions")
    def sessions(request: Request, caller: Caller) -> Response | tuple[Response, int]:
        q = _query(request, caller, g)
        if isinstance(q, JSONResponse):
            return q
        keys = {k: request.query_params[k] for k in DRILL_KEYS if k in request.query_params}
        metric = request.query_params.get("metric") or None
        rows = drill(st.fresh(), q, settings, metric, keys, with_users=caller.investigator)
        return JSONResponse({"sessions": rows}), len(rows)

    @guarded("/api/session/{id}")
    def timeline(request: Request, caller: Caller) -> Response | tuple[Response, int]:
        from rich.console import Console

        from corral.telemetry.timeline import session_tree

        events = st.source.session(request.path_params["sid"])
        if not events:
            return _refuse(404, "no such session")
        names: set[str] = set()
        if not caller.investigator:  # the person: user, host, and both inside attributes
            names = {n for ev in events for n in (ev.user, ev.host) if len(n) > 1}
            events = [ev.replace(user="(user hidden)", host="(host hidden)")
                      for ev in events]
        tree = session_tree(events)
        console = Console(record=True, width=140, color_system=None, file=io.StringIO())
        console.print(tree)
        text = console.export_text()
        for n in sorted(names, key=len, reverse=True):
            text = text.replace(n, "(hidden)")
        return PlainTextResponse(text), len(events)

    @guarded("/api/options")
    def opts(request: Request, caller: Caller) -> Response | tuple[Response, int]:
        out: dict[str, Any] = dict(options(st.fresh(), settings))
        out["investigator"] = caller.investigator
        return JSONResponse(out), 0

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    routes = [
        Route("/", index),
        Route("/api/stats", stats),
        Route("/api/series", chart),
        Route("/api/sessions", sessions),
        Route("/api/session/{sid}", timeline),
        Route("/api/options", opts),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, middleware=[
        Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))])

