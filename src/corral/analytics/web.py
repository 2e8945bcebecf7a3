"""The dashboard: an ASGI app (Starlette) over the rollups, and its static page.

Team-level by default. Anything that names a person (``by=user``, a ``user`` filter, the user
column of a drill-down, user names in a timeline) needs the investigator token: these numbers
are for tuning controls, not for ranking people. The token is compared in constant time and
travels in the ``Authorization`` header (the page keeps it in the URL fragment, which browsers
never send). Only Host headers naming loopback are served (no DNS rebinding from a web page).

``make_app`` takes the event source and rollup store, so ``corral server run`` can mount the
same app over its own store later.
"""

from __future__ import annotations

import dataclasses
import hmac
import io
import threading
import time
from pathlib import Path
from typing import Any

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


class _State:
    def __init__(self, source: EventSource, store: RollupStore, settings: Settings,
                 investigator_token: str | None) -> None:
        self.source, self.store, self.settings = source, store, settings
        self.token = investigator_token
        self.lock = threading.Lock()
        self.refreshed = 0.0

    def fresh(self) -> RollupStore:
        now = time.monotonic()
        if now - self.refreshed >= REFRESH_EVERY:
            self.store.refresh(self.source, self.settings)
            self.refreshed = now
        return self.store

    def investigator(self, request: Request) -> bool:
        if not self.token:
            return False
        auth = request.headers.get("authorization", "")
        given = auth[7:] if auth.lower().startswith("bearer ") else ""
        return hmac.compare_digest(given.encode(), self.token.encode())


def _refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": f"corral: analytics: {reason}"}, status_code=status)


def _query(request: Request, st: _State) -> Query | JSONResponse:
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
    if (by == "user" or user is not None) and not st.investigator(request):
        return _refuse(403, "per-user views need the investigator token "
                       "(corral dashboard --investigator)")
    return Query(since_ns=since, until_ns=until, team=p.get("team") or None,
                 agent=p.get("agent") or None, repo=p.get("repo") or None, user=user, by=by)


def make_app(source: EventSource, store: RollupStore, settings: Settings, *,
             investigator_token: str | None = None,
             allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Starlette:
    st = _State(source, store, settings, investigator_token)

    def locked(fn: Any) -> Any:
        def handler(request: Request) -> Response:
            with st.lock:
                try:
                    return fn(request)  # type: ignore[no-any-return]
                except CorralError as exc:
                    return JSONResponse({"error": exc.line()}, status_code=503)
        return handler

    @locked
    def stats(request: Request) -> Response:
        q = _query(request, st)
        if isinstance(q, JSONResponse):
            return q
        return JSONResponse(compute(st.fresh(), q, settings))

    @locked
    def chart(request: Request) -> Response:
        q = _query(request, st)
        if isinstance(q, JSONResponse):
            return q
        return JSONResponse(series(st.fresh(), q, settings))

    @locked
    def sessions(request: Request) -> Response:
        q = _query(request, st)
        if isinstance(q, JSONResponse):
            return q
        keys = {k: request.query_params[k] for k in DRILL_KEYS if k in request.query_params}
        metric = request.query_params.get("metric") or None
        return JSONResponse({"sessions": drill(st.fresh(), q, settings, metric, keys,
                                               with_users=st.investigator(request))})

    @locked
    def timeline(request: Request) -> Response:
        from rich.console import Console

        from corral.telemetry.timeline import session_tree

        events = st.source.session(request.path_params["sid"])
        if not events:
            return _refuse(404, "no such session")
        names: set[str] = set()
        if not st.investigator(request):  # the person: user, host, and both inside attributes
            names = {n for ev in events for n in (ev.user, ev.host) if len(n) > 1}
            events = [dataclasses.replace(ev, user="(user hidden)", host="(host hidden)")
                      for ev in events]
        tree = session_tree(events)
        console = Console(record=True, width=140, color_system=None, file=io.StringIO())
        console.print(tree)
        text = console.export_text()
        for n in sorted(names, key=len, reverse=True):
            text = text.replace(n, "(hidden)")
        return PlainTextResponse(text)

    @locked
    def opts(request: Request) -> Response:
        out: dict[str, Any] = dict(options(st.fresh(), settings))
        out["investigator"] = st.investigator(request)
        return JSONResponse(out)

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

