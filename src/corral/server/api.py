"""The compliance API: the event cursor, compliance log files, per-token rate limits, and an
access record in the log for every read.

Reads of compliance data are themselves evidence: each one is appended to the log as a
``server.access`` event (token, endpoint, filters, count) before the data is sent, and if that
append fails the read is refused (503), so there is no unrecorded read.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from corral.server import compliance, formats, query, tokens
from corral.server import config as sconfig
from corral.server.store.base import ComplianceFile, Incoming, Scan, Store, Token

if TYPE_CHECKING:
    from corral.server.app import Server

SCAN_WINDOW = 100_000  # seqs one filtered request may scan; next_cursor resumes after them
ACCESS = "server.access"


def _fail(status: int, reason: str, retry: int | None = None) -> Response:
    headers = {"Retry-After": str(retry)} if retry else None
    return Response(f"corral: server: {reason}\n", status_code=status, headers=headers,
                    media_type="text/plain")


class Buckets:
    """Token buckets per token id: ``rate`` requests a second, ``burst`` at once."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._b: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """0 when allowed, else the seconds until a request would be."""
        now = time.monotonic() if now is None else now
        level, last = self._b.get(key, (float(self.burst), now))
        level = min(float(self.burst), level + (now - last) * self.rate)
        if level >= 1:
            self._b[key] = (level - 1, now)
            return 0.0
        self._b[key] = (level, now)
        return (1 - level) / self.rate if self.rate > 0 else 3600.0


class ComplianceApi:
    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.cfg = srv.cfg
        self.buckets = Buckets(srv.cfg.read_rate, srv.cfg.read_burst)
        self._cut_store: Store | None = None
        self._task: asyncio.Task[None] | None = None
        self.sinks: list[Any] = []
        self._fold: Any = None
        self._sink_tasks: list[asyncio.Task[None]] = []
        self._descriptions: dict[str, bytes] = {}

    def routes(self) -> list[Route]:
        from corral.server import erase_api

        return [*erase_api.routes(self),
                Route("/v1/events", self.events, methods=["GET"]),
                Route("/v1/compliance/logs", self.files, methods=["GET"]),
                Route("/v1/compliance/logs/{file_id}", self.file, methods=["GET"]),
                Route("/v1/sessions", self.stateful, methods=["GET"]),
                Route("/v1/sessions/{session_id}", self.session, methods=["GET"]),
                Route("/v1/users", self.stateful, methods=["GET"]),
                Route("/v1/devices", self.stateful, methods=["GET"]),
                Route("/v1/mcp-servers", self.stateful, methods=["GET"]),
                Route("/v1/tools", self.stateful, methods=["GET"]),
                Route("/v1/ediscovery/bundle", self.bundle, methods=["GET"])]

    # -- background cutting -------------------------------------------------------------------
    def start(self) -> None:
        from corral.server.sinks import Sink

        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._cuts())
        for sc in self.cfg.sinks:
            st = (sconfig.open_store(self.cfg) if self.cfg.database == "sqlite"
                  else self.srv.writer_store)
            sink = Sink(sc, self.cfg.data, st)
            self.sinks.append(sink)
            self._sink_tasks.append(loop.create_task(sink.run()))

    async def stop(self) -> None:
        for t in [self._task, *self._sink_tasks]:
            if t:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        for sink in self.sinks:
            sink.close()
            if sink.store is not self.srv.writer_store:
                sink.store.close()
        if self._fold is not None and self._fold.store is not self.srv.writer_store:
            self._fold.store.close()
        if self._cut_store is not None and self._cut_store is not self.srv.writer_store:
            self._cut_store.close()

    def cut_now(self, now_ns: int | None = None) -> int:
        if self._cut_store is None:
            self._cut_store = (sconfig.open_store(self.cfg) if self.cfg.database == "sqlite"
                               else self.srv.writer_store)
        return compliance.cut(self._cut_store, now_ns or time.time_ns(),
                              self.cfg.compliance_window, self.cfg.compliance_grace)

    async def _cuts(self) -> None:
        every = max(0.2, min(self.cfg.compliance_window / 4, 10.0))
        last_retention = 0.0
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.to_thread(self.cut_now)
            except Exception as exc:  # the next round retries; ingest is unaffected
                self.srv.metrics.reject(f"compliance_cut:{type(exc).__name__}")
            if time.monotonic() - last_retention >= self.cfg.retention_interval:
                last_retention = time.monotonic()
                try:
                    await asyncio.to_thread(self.retention_now)
                except Exception as exc:  # nothing deleted this round; retried next round
                    self.srv.metrics.reject(f"retention:{type(exc).__name__}")

    def retention_now(self, now_ns: int | None = None) -> Any:
        """One retention round on the cutting store handle (corral.server.retention)."""
        from corral.server import retention

        self.cut_now(now_ns)  # opens the handle; files are cut before anything expires
        assert self._cut_store is not None
        return retention.run(self._cut_store, self.cfg.retention or retention.Policy(),
                             retention.Signer(self.srv.name, self.srv.key),
                             now_ns or time.time_ns(),
                             wait=retention.sink_floor(self.cfg.sinks, self.cfg.data))

    # -- access -------------------------------------------------------------------------------
    def _admit(self, request: Request) -> tuple[Token, tokens.Grant] | Response:
        status, reason, tok = tokens.check(self.srv.reader, request.headers.get("authorization"),
                                           "read")
        if status != 200 or tok is None:
            self.srv.metrics.reject("auth")
            return _fail(status, reason)
        wait = self.buckets.take(tok.id)
        if wait:
            self.srv.metrics.reject("rate")
            return _fail(429, f"token {tok.name} is over its rate limit "
                              f"({self.cfg.read_rate:g} requests/s)", retry=math.ceil(wait))
        return tok, tokens.grant(tok.scope)

    def audited(self, handler: Callable[[Request], Awaitable[Response]], endpoint: str,
                anonymous: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` (a single-item read: a proof, an event, a checkpoint, the metrics) with
        the same admission, rate limit and ``server.access`` record as every other read. With
        ``anonymous`` a caller without a token is let in, recorded as ``anonymous`` with its
        address and rate-limited per address."""

        async def read(request: Request) -> Response:
            who = self._caller(request) if anonymous else self._admit(request)
            if isinstance(who, Response):
                return who
            resp = await handler(request)
            if resp.status_code != 200:
                return resp
            filters: dict[str, Any] = {**request.path_params, **request.query_params}
            return await self.audit(who[0], endpoint, filters, 1) or resp

        return read

    def _caller(self, request: Request) -> tuple[Token, tokens.Grant] | Response:
        """A token if one is presented and valid, else ``anonymous`` from this address."""
        status, _, tok = tokens.check(self.srv.reader, request.headers.get("authorization"),
                                      "read")
        if tok is None or status == 401:
            host = request.client.host if request.client else "unknown"
            tok = Token(f"anonymous@{host}", "anonymous", "none", 0, None)
        wait = self.buckets.take(tok.id)
        if wait:
            return _fail(429, f"token {tok.name} is over its rate limit "
                              f"({self.cfg.read_rate:g} requests/s)", retry=math.ceil(wait))
        return tok, tokens.grant(tok.scope)

    def _admit_all_types(self, request: Request, holds: str
                         ) -> tuple[Token, tokens.Grant] | Response:
        """``_admit`` for answers derived from every event type (the state, a timeline): a token
        limited to some types is refused, naming what the answer ``holds``."""
        admitted = self._admit(request)
        if isinstance(admitted, Response):
            return admitted
        tok, grant = admitted
        if grant.types is not None:
            return _fail(403, f"token {tok.name} is limited to some event types; {holds}")
        return admitted

    async def audit(self, tok: Token, endpoint: str, filters: dict[str, Any],
                    count: int) -> Response | None:
        now = time.time_ns()
        rec = {"token": tok.name, "token_id": tok.id, "endpoint": endpoint,
               "filters": filters, "count": count}
        item = Incoming(f"access-{uuid.uuid4().hex}", ACCESS, now, "server", "corral.server",
                        rec)
        try:
            await self.srv.writer.submit([item])
        except Exception as exc:
            self.srv.metrics.reject("audit")
            return _fail(503, f"cannot record this read in the log, refused "
                              f"({type(exc).__name__})", retry=5)
        return None

    # -- GET /v1/events -----------------------------------------------------------------------
    async def events(self, request: Request) -> Response:
        admitted = self._admit(request)
        if isinstance(admitted, Response):
            return admitted
        tok, grant = admitted
        try:
            q = query.parse_events(_params(request))
            fmt = _format(request)
        except query.BadQuery as exc:
            return _fail(400, str(exc))
        names = q.names
        if grant.types is not None:
            outside = [n for n in names if n not in grant.types]
            if outside:
                return _fail(403, f"token {tok.name} may not read {outside[0]} events")
            names = names or tuple(sorted(grant.types))
        data, nxt, more = self.page(q, names, grant.content)
        if fmt != "json":
            data = [e for leaf in data for e in formats.encode(leaf, fmt)]
        denied = await self.audit(tok, "/v1/events", {**q.filters(), "format": fmt},
                                   len(data))
        if denied:
            return denied
        cur = query.cursor(nxt)
        tail = b"".join((b'],"next_cursor":"', cur.encode(), b'","has_more":',
                         b"true" if more else b"false", b"}"))
        if data:  # the page is copied once: the envelope rides on the first and last event
            data[0] = b'{"data":[' + data[0]
            data[-1] = data[-1] + tail
            body = b",".join(data)
        else:
            body = b'{"data":[' + tail
        # the same two values as headers: a client can ask for the next page before it has
        # parsed this one
        return Response(body, media_type="application/json", headers={
            "Corral-Next-Cursor": cur, "Corral-Has-More": "true" if more else "false"})

    def page(self, q: query.EventQuery, names: tuple[str, ...],
             content: bool) -> tuple[list[bytes], int, bool]:
        """Events after the cursor; the cursor is a seq, and seqs commit in order (one append
        transaction at a time), so nothing below a returned cursor can appear later."""
        st = self.srv.reader
        head = st.head()[0]
        bound = min(head, q.after + SCAN_WINDOW)
        post = q.session_id is not None or q.user is not None
        after = q.after
        out: list[bytes] = []
        while len(out) < q.limit and after < bound:
            want = 2000 if post else q.limit - len(out)
            rows = st.scan(Scan(after, bound, want, names, q.device, q.since_ns, q.until_ns))
            if content and not post:  # the stored bytes as they are: no per-row work
                out += [leaf for _, leaf in rows]
                rows_left = []
                if rows:
                    after = rows[-1][0]
            else:
                rows_left = rows
            for seq, leaf in rows_left:
                after = seq
                doc: dict[str, Any] | None = None
                if post:
                    doc = json.loads(leaf)
                    sess, user = query.subject(doc)
                    if (q.session_id is not None and sess != q.session_id) or (
                            q.user is not None and user != q.user):
                        continue
                out.append(leaf if content else _redacted(leaf, doc))
                if len(out) == q.limit:
                    break
            if len(rows) < want:
                after = bound if len(out) < q.limit else after
                break
        return out, after, after < head

    # -- the stateful API ---------------------------------------------------------------------
    def state(self) -> Any:
        """The current state derived from the log (sessions, users, devices, tools), folded
        once and kept up to date; the stateful API and the server's triage read it."""
        if self._fold is None:
            from corral.server.state import State

            st = (sconfig.open_store(self.cfg) if self.cfg.database == "sqlite"
                  else self.srv.writer_store)
            self._fold = State(st)
        return self._fold

    async def stateful(self, request: Request) -> Response:
        admitted = self._admit_all_types(request, "the state is derived from all of them")
        if isinstance(admitted, Response):
            return admitted
        tok, _grant = admitted
        kind = request.url.path.rsplit("/", 1)[-1]
        try:
            params = _params(request)
            query._check_keys(params, {"limit", "after"})
            limit = query.parse_limit(query._one(params, "limit"))
            after = query._one(params, "after")
            if after is not None and not query._IDENT.fullmatch(after):
                raise query.BadQuery("after must be an id from the previous page")
        except query.BadQuery as exc:
            return _fail(400, str(exc))
        state = self.state()
        await asyncio.to_thread(state.refresh)
        rows = state.listing(kind)
        key = "id" if kind in ("sessions", "devices") else "name"
        if after is not None:
            rows = [r for r in rows if str(r[key]) > after]
        page, more = rows[:limit], len(rows) > limit
        denied = await self.audit(tok, f"/v1/{kind}", {"limit": limit, "after": after},
                                   len(page))
        if denied:
            return denied
        return JSONResponse({"data": page, "has_more": more,
                             "next_after": page[-1][key] if page and more else None})

    async def session(self, request: Request) -> Response:
        admitted = self._admit_all_types(request, "a session timeline holds all of them")
        if isinstance(admitted, Response):
            return admitted
        tok, grant = admitted
        sid = request.path_params["session_id"]
        try:
            query._check_keys(_params(request), set())
        except query.BadQuery as exc:
            return _fail(400, str(exc))
        if not query._IDENT.fullmatch(sid):
            return _fail(400, "session id has characters or a length it cannot have")
        state = self.state()
        await asyncio.to_thread(state.refresh)
        got = state.session(sid)
        if got is None:
            return _fail(404, f"no session {sid}")
        summary, seqs = got
        events = []
        for seq in seqs:
            leaf = self.srv.reader.leaf(seq)
            if leaf:  # empty: its content expired or was erased since it was folded
                events.append(leaf if grant.content else _redacted(leaf, None))
        denied = await self.audit(tok, "/v1/sessions/{id}", {"session_id": sid}, len(events))
        if denied:
            return denied
        head = json.dumps({"session": summary}, separators=(",", ":")).encode()[:-1]
        return Response(head + b',"events":[' + b",".join(events) + b"]}",
                        media_type="application/json")

    # -- GET /v1/ediscovery/bundle ------------------------------------------------------------
    async def bundle(self, request: Request) -> Response:
        """The files of ``corral server export`` as one JSON object (write each to a directory
        and run ``corral server verify-bundle`` on it)."""
        admitted = self._admit(request)
        if isinstance(admitted, Response):
            return admitted
        tok, grant = admitted
        if grant.types is not None or not grant.content:
            return _fail(403, f"token {tok.name} needs the content scope and every event type "
                              "for an eDiscovery bundle")
        try:
            params = _params(request)
            query._check_keys(params, {"user", "since", "until"})
            user = query._one(params, "user")
            if user is None or not query._USER.fullmatch(user):
                raise query.BadQuery("user is required (the OS user or user.name to export)")
            since, until = query._one(params, "since"), query._one(params, "until")
            lo = query.parse_time("since", since) if since is not None else None
            hi = query.parse_time("until", until) if until is not None else None
        except query.BadQuery as exc:
            return _fail(400, str(exc))
        files = await asyncio.to_thread(self._bundle, user, lo, hi)
        manifest = json.loads(files["manifest.json"])
        denied = await self.audit(tok, "/v1/ediscovery/bundle",
                                   {"user": user, "since_ns": lo, "until_ns": hi},
                                   int(manifest["count"]))
        if denied:
            return denied
        return JSONResponse({"files": files})

    def _bundle(self, user: str, lo: int | None, hi: int | None) -> dict[str, str]:
        import shutil
        import tempfile
        from pathlib import Path

        from corral.server import ediscovery

        tmp = Path(tempfile.mkdtemp(prefix="corral-bundle-"))
        st = sconfig.open_store(self.cfg) if self.cfg.database == "sqlite" else self.srv.reader
        try:
            ediscovery.export(self.cfg, st, user, lo, hi, tmp / "b")
            return {f: (tmp / "b" / f).read_text() for f in (*ediscovery.FILES,
                                                             "manifest.json")}
        finally:
            if st is not self.srv.reader:
                st.close()
            shutil.rmtree(tmp, ignore_errors=True)

    # -- GET /v1/compliance/logs ---------------------------------------------------------------
    async def files(self, request: Request) -> Response:
        admitted = self._admit(request)
        if isinstance(admitted, Response):
            return admitted
        tok, grant = admitted
        try:
            et, after_ns, limit = query.parse_file_list(_params(request))
        except query.BadQuery as exc:
            return _fail(400, str(exc))
        if et is not None and grant.types is not None and et not in grant.types:
            return _fail(403, f"token {tok.name} may not read {et} events")
        page, more = compliance.listing(self.srv.reader, et, after_ns, limit)
        if grant.types is not None:
            page = [f for f in page if f.event_type in grant.types]
        filters: dict[str, Any] = {"event_type": et, "after_ns": after_ns, "limit": limit}
        denied = await self.audit(tok, "/v1/compliance/logs", filters, len(page))
        if denied:
            return denied
        last = json.dumps(compliance.iso(page[-1].end_ns)) if page else "null"
        return Response(b"".join((b'{"data":[', b",".join(self._described(f) for f in page),
                                  b'],"has_more":', b"true" if more else b"false",
                                  b',"last_end_time":', last.encode(), b"}")),
                        media_type="application/json")

    def _described(self, f: ComplianceFile) -> bytes:
        """A file's listing entry as JSON, kept: a compliance file never changes (a withdrawn
        one is no longer listed), and formatting its times was most of a listing's cost."""
        got = self._descriptions.get(f.id)
        if got is None:
            if len(self._descriptions) >= 200_000:
                self._descriptions.clear()
            got = self._descriptions[f.id] = json.dumps(
                compliance.describe(f), separators=(",", ":"), ensure_ascii=False).encode()
        return got

    async def file(self, request: Request) -> Response:
        admitted = self._admit(request)
        if isinstance(admitted, Response):
            return admitted
        tok, grant = admitted
        try:
            query._check_keys(_params(request), query.FILE_PARAMS)
            fmt = _format(request)
        except query.BadQuery as exc:
            return _fail(400, str(exc))
        fid = request.path_params["file_id"]
        f = self.srv.reader.compliance_file(fid) if len(fid) <= 200 else None
        if f is None:
            return _fail(404, "no such compliance log file")
        gone = self.srv.reader.withdrawn(fid)
        if gone is not None:
            return _fail(410, f"compliance file {fid} was deleted: {retention_line(gone)}")
        if grant.types is not None and f.event_type not in grant.types:
            return _fail(403, f"token {tok.name} may not read {f.event_type} events")
        if not grant.content:
            return _fail(403, f"token {tok.name} lacks the content scope: compliance files "
                              "hold the events exactly as stored (use /v1/events for the "
                              "redacted view)")
        etag = f'"{f.sha256}"' if fmt == "json" else None
        if etag and request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        body = await asyncio.to_thread(self._render, f)
        if hashlib.sha256(body).hexdigest() != f.sha256:
            self.srv.metrics.reject("compliance_file_mismatch")
            return _fail(500, f"compliance file {f.id} no longer matches its recorded sha256: "
                              "the log was altered (run corral server verify)")
        if fmt != "json":  # derived from the verified bytes, so as immutable as they are
            body = b"".join(e + b"\n" for ln in body.splitlines()
                            for e in formats.encode(_event_of(ln), fmt))
            etag = f'"{hashlib.sha256(body).hexdigest()}"'
            if request.headers.get("if-none-match") == etag:
                return Response(status_code=304, headers={"ETag": etag})
        denied = await self.audit(tok, "/v1/compliance/logs/{id}",
                                   {"id": f.id, "format": fmt}, f.count)
        if denied:
            return denied
        return Response(body, media_type="application/x-ndjson",
                        headers={"ETag": etag or "", "Cache-Control": "public, max-age=31536000, "
                                 "immutable"})

    def _render(self, f: Any) -> bytes:
        st = sconfig.open_store(self.cfg) if self.cfg.database == "sqlite" else self.srv.reader
        try:
            return compliance.render(st, f)
        finally:
            if st is not self.srv.reader:
                st.close()


def retention_line(tombstone_leaf: bytes) -> str:
    """What a tombstone event says, in one line (for a 410)."""
    from corral.server.retention import describe

    doc = json.loads(tombstone_leaf)
    return f"{describe(doc.get('record') or {})} (tombstone {doc.get('id')}, seq {doc.get('seq')})"


def _params(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if len(request.url.query) > 8192:
        raise query.BadQuery("query string longer than 8192 bytes")
    for k, v in request.query_params.multi_items():
        out.setdefault(k, []).append(v)
    return out


def _format(request: Request) -> str:
    fmt = request.query_params.get("format", "json")
    if fmt not in formats.FORMATS:
        shown = fmt[:40] if fmt.isprintable() else repr(fmt[:40])
        raise query.BadQuery(f"format {shown} is not available ({', '.join(formats.FORMATS)})")
    return fmt


def _event_of(line: bytes) -> bytes:
    """The stored leaf inside a compliance file line (``{"seq":…,"leaf_hash":…,"event":LEAF}``)."""
    return line[line.index(b'"event":') + 8:-1]


def _redacted(leaf: bytes, doc: dict[str, Any] | None) -> bytes:
    if not query.may_hold_content(leaf):
        return leaf
    parsed = doc if doc is not None else json.loads(leaf)
    red, hit = query.redact(parsed)
    if not hit:
        return leaf
    red["redacted"] = True
    return json.dumps(red, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()
