"""The analysts' side of ``corral server run``: triage and analytics over the fleet's log.

* ``POST /v1/triage`` (investigator token): the alert JSON in the body, the same verdict JSON
  ``corral triage --json`` prints, computed by the same engine (``corral.triage``) over the
  store (``corral.server.source.StoreSource``). The verdict is recorded in the log as a
  ``triage.verdict`` event (an OCSF Detection Finding, class 2004, in every SIEM format) and the
  call as a ``server.access`` record; if either cannot be stored, the answer is 503, never an
  unrecorded verdict.
* ``/analytics/`` (analyst token; per-user views need investigator): the dashboard of
  ``corral dashboard`` (``corral.analytics.web.make_app``) over the store, every data request
  admitted by the server's tokens and recorded as ``server.access``. ``corral stats --server``
  reads ``/analytics/api/stats``. Rollups live in ``DATA/analytics/rollup.db`` (derived, safe
  to delete) and are folded from the log every few seconds in the background, and before an
  answer (at most once a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from corral.server import config as sconfig
from corral.server import tokens
from corral.server.source import SERVER_SOURCE, StoreSource
from corral.server.store.base import Incoming, Store, Token

if TYPE_CHECKING:
    from corral.analytics import RollupStore, Settings
    from corral.analytics.web import Caller
    from corral.server.app import Server

TRIAGE_SESSION = "corral-triage"  # as `corral triage` records its verdicts on a machine
REFOLD_EVERY = 5.0  # seconds between background rollup folds


def _json_fail(status: int, line: str, retry: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry)} if retry else None
    return JSONResponse({"error": line}, status_code=status, headers=headers)


class Analyst:
    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.cfg = srv.cfg
        self._lock = threading.Lock()  # the triage's read handle: one thread at a time
        self._store: Store | None = None
        self._opened: list[Store] = []
        self._rollup: RollupStore | None = None
        self._task: asyncio.Task[None] | None = None
        self._settings: Settings | None = None

    # -- shared pieces -------------------------------------------------------------------------
    def _open(self) -> Store:
        """A read handle of its own (SQLite), or the shared pool (PostgreSQL)."""
        if self.cfg.database != "sqlite":
            return self.srv.reader
        st = sconfig.open_store(self.cfg, readonly=True)
        self._opened.append(st)
        return st

    def store(self) -> Store:
        if self._store is None:
            self._store = self._open()
        return self._store

    def source(self, store: Store | None = None, background: bool = False) -> StoreSource:
        state = self.srv.api.state()

        def seqs(sid: str) -> list[int] | None:
            state.refresh()
            got = state.session(sid)
            return None if got is None else list(got[1])

        return StoreSource(store or self.store(), self.cfg.origin, seqs,
                           self.srv.foreground.pause if background else None)

    def settings(self) -> Settings:
        if self._settings is None:
            from corral.analytics import Settings

            self._settings = Settings.from_table(self.cfg.analytics)
        return self._settings

    def rollup(self) -> RollupStore:
        if self._rollup is None:
            from corral.analytics import RollupStore

            self._rollup = RollupStore.open(self.cfg.data / "analytics" / "rollup.db")
        return self._rollup

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._refold())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._rollup is not None:
            self._rollup.close()
        for st in self._opened:
            st.close()

    async def _refold(self) -> None:
        """Keep the rollups close to the log, so a page never waits for a large fold; fold the
        server's state (sessions -> seqs) once first, so the first triage after a start does
        not wait for it (17 s over 1,000,000 events)."""
        try:
            await asyncio.to_thread(self.srv.api.state().refresh, self.srv.foreground.pause)
        except Exception as exc:  # a request folds it for itself
            self.srv.metrics.reject(f"state_fold:{type(exc).__name__}")
        while True:
            await asyncio.sleep(REFOLD_EVERY)
            try:
                await asyncio.to_thread(self.refold)
            except Exception as exc:  # the next round retries; requests fold for themselves
                self.srv.metrics.reject(f"analytics_fold:{type(exc).__name__}")

    def refold(self) -> int:
        from corral.analytics import RollupStore

        store = (sconfig.open_store(self.cfg, readonly=True) if self.cfg.database == "sqlite"
                 else self.srv.reader)
        rollup = RollupStore.open(self.cfg.data / "analytics" / "rollup.db")
        try:
            return rollup.refresh(self.source(store, background=True), self.settings())
        finally:
            rollup.close()
            if store is not self.srv.reader:
                store.close()

    def routes(self) -> list[Route | Mount]:
        from corral.analytics.web import make_app

        app = make_app(self.source(self._open()), self.rollup(), self.settings(),
                       gate=TokenGate(self), allowed_hosts=("*",))
        return [Route("/v1/triage", self.triage, methods=["POST"]),
                Mount("/analytics", app=app)]

    # -- POST /v1/triage -----------------------------------------------------------------------
    def admit(self, request: Request, need: str) -> Token | Response:
        status, reason, tok = tokens.check(self.srv.reader, request.headers.get("authorization"),
                                           need)
        if status != 200 or tok is None:
            self.srv.metrics.reject("auth")
            return _json_fail(status, f"corral: server: {reason}")
        wait = self.srv.api.buckets.take(tok.id)
        if wait:
            self.srv.metrics.reject("rate")
            return _json_fail(429, f"corral: server: token {tok.name} is over its rate limit",
                              retry=max(1, int(wait + 0.999)))
        return tok

    async def triage(self, request: Request) -> Response:
        from corral.triage.alerts import MAX_BYTES, AlertError, load_alert

        tok = self.admit(request, "investigator")
        if isinstance(tok, Response):
            return tok
        model_param = request.query_params.get("model")
        unknown = [k for k in request.query_params if k != "model"]
        if unknown or model_param not in (None, "none"):
            return _json_fail(400, "corral: server: triage: only model=none may be given "
                                   "(the model is the server's [triage] config)")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BYTES:
                return _json_fail(413, f"corral: triage: alert: (document): larger than "
                                       f"{MAX_BYTES} bytes")
        try:
            alert = load_alert(bytes(body))
        except AlertError as exc:
            return _json_fail(400, exc.line())
        try:
            verdict = await asyncio.to_thread(self._triage, alert, model_param != "none")
        except Exception as exc:
            self.srv.metrics.reject("triage")
            return _json_fail(503, f"corral: server: triage: {type(exc).__name__}: "
                                   f"{(str(exc).splitlines() or [''])[0][:200]}", retry=5)
        from corral.telemetry.ulid import new_ulid
        from corral.triage.verdict import event_attributes

        attrs = {**event_attributes(verdict, alert), "corral.origin": "pipeline"}
        now = time.time_ns()
        verdict.id = new_ulid()
        rec = {"v": 1, "id": verdict.id, "name": "triage.verdict", "time_unix_nano": now,
               "session_id": TRIAGE_SESSION, "turn_id": None, "call_id": None,
               "user": tok.name, "host": "", "agent_name": TRIAGE_SESSION, "agent_version": "",
               "corral_version": _version(), "tier": 1, "attributes": attrs}
        try:
            await self.srv.writer.submit([Incoming(verdict.id, "triage.verdict", now, "server",
                                                   SERVER_SOURCE, rec)])
        except Exception as exc:
            self.srv.metrics.reject("store")
            return _json_fail(503, f"corral: server: cannot record the verdict in the log, "
                                   f"refused ({type(exc).__name__})", retry=5)
        denied = await self.srv.api.audit(tok, "/v1/triage", {
            "alert_id": alert.id, "alert_form": alert.form, "verdict_id": verdict.id,
            "model": model_param or "config"}, len(verdict.evidence))
        if denied:
            return _json_fail(503, "corral: server: cannot record this call in the log, "
                                   "refused", retry=5)
        return JSONResponse(verdict.to_json())

    def _triage(self, alert: Any, with_model: bool) -> Any:
        from corral.triage.verdict import run

        table = dict(self.cfg.triage or {})
        with self._lock:
            return run(alert, self.source(), table.get, None if with_model else "none")


class TokenGate:
    """The dashboard's gate in the server: an analyst (or investigator, or admin) token for any
    data; per-user views for investigator and admin tokens; every answer recorded first."""

    investigator_hint = "an investigator-scoped token: corral server token create --scope " \
                        "investigator"

    def __init__(self, analyst: Analyst) -> None:
        self.analyst = analyst

    def admit(self, request: Request) -> Caller | Response:
        from corral.analytics.web import Caller

        tok = self.analyst.admit(request, "analyst")
        if isinstance(tok, Response):
            return tok
        base = tok.scope.split(";", 1)[0]
        return Caller(investigator=base in ("investigator", "admin"), token=tok)

    def audit(self, caller: Caller, endpoint: str, filters: dict[str, Any],
              count: int) -> Response | None:
        import anyio.from_thread

        denied = anyio.from_thread.run(self.analyst.srv.api.audit, caller.token,
                                       "/analytics" + endpoint, filters, count)
        if denied is None:
            return None
        return _json_fail(503, "corral: server: cannot record this read in the log, refused",
                          retry=5)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("corral")
    except Exception:
        return ""
