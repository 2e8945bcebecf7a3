"""The ASGI app (Starlette on uvicorn): ingest, checkpoints, proofs, health and metrics.

Writes go through one writer task per process that merges the requests waiting at that moment
into one transaction (group commit): a request is answered 200 only after the transaction
holding its records committed. Reads use their own store handle.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from corral.server import config as sconfig
from corral.server import ingest, tokens
from corral.server import integrity as it
from corral.server.metrics import Metrics
from corral.server.store.base import AppendResult, Incoming, Store


class Overloaded(Exception):
    pass


@dataclass
class _Job:
    items: list[Incoming]
    done: asyncio.Future[AppendResult] = field(default_factory=lambda: asyncio.get_running_loop()
                                               .create_future())


class Writer:
    """Group commit: one transaction for every request queued while the last one ran."""

    def __init__(self, store: Store, max_queue: int, max_batch: int, metrics: Metrics) -> None:
        self.store = store
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.pending = 0
        self.metrics = metrics
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, items: list[Incoming]) -> AppendResult:
        if self.pending and self.pending + len(items) > self.max_queue:  # one big batch passes
            raise Overloaded
        job = _Job(items)
        self.pending += len(items)
        self._queue.put_nowait(job)
        try:
            return await job.done
        finally:
            self.pending -= len(items)

    async def _run(self) -> None:
        while True:  # never dies: a dead writer would leave every later request waiting
            try:
                await self._one()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.reject(f"writer:{type(exc).__name__}")

    async def _one(self) -> None:
        jobs = [await self._queue.get()]
        n = len(jobs[0].items)
        while n < self.max_batch and not self._queue.empty():
            job = self._queue.get_nowait()
            jobs.append(job)
            n += len(job.items)
        items = [i for j in jobs for i in j.items]
        try:
            res = await asyncio.to_thread(self.store.append, items, time.time_ns())
        except Exception as exc:
            for j in jobs:
                if not j.done.done():
                    j.done.set_exception(exc)
            return
        for j in jobs:
            if not j.done.done():
                j.done.set_result(res)
        self.metrics.stored(res)


class Server:
    def __init__(self, cfg: sconfig.ServerConfig) -> None:
        self.cfg = cfg
        self.key = sconfig.signing_key(cfg)
        self.name, _ = sconfig.verifier(cfg)
        self.writer_store = sconfig.open_store(cfg)
        sqlite = cfg.database == "sqlite"
        self.reader = sconfig.open_store(cfg) if sqlite else self.writer_store
        self.cp_store = sconfig.open_store(cfg) if sqlite else self.writer_store
        self.metrics = Metrics()
        from corral.server.foreground import Foreground

        self.foreground = Foreground()  # background folds give way to requests
        self.writer = Writer(self.writer_store, cfg.max_queue_events, cfg.max_batch_events,
                             self.metrics)
        self._cp_task: asyncio.Task[None] | None = None
        from corral.server.api import ComplianceApi

        self.api = ComplianceApi(self)
        from corral.server.fleet_http import FleetHttp

        self.devices = FleetHttp(self)  # enrolment, device policy, check-ins (docs/fleet.md)
        from corral.server.analyst import Analyst

        self.analyst = Analyst(self)  # POST /v1/triage and the /analytics dashboard

    # -- checkpoints ------------------------------------------------------------------------
    def cut_checkpoint(self) -> int | None:
        """Sign the current tree head unless it is signed already (own store handle: it runs
        in a thread beside the request handlers)."""
        st = self.cp_store
        size, _ = st.head()
        latest = st.latest_checkpoint()
        if size == 0 or (latest and latest[0] >= size):
            return None
        root = st.tree().root(size)
        note = it.sign_checkpoint(it.Checkpoint(self.cfg.origin, size, root), self.name,
                                  self.key)
        st.add_checkpoint(size, note, time.time_ns())
        export(self.cfg, size, note)
        return size

    async def _checkpoints(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.checkpoint_interval)
            try:
                await asyncio.to_thread(self.cut_checkpoint)
            except Exception as exc:  # a full disk: retry next interval, ingest goes on
                self.metrics.reject(f"checkpoint:{type(exc).__name__}")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.writer.start()
        self._cp_task = asyncio.get_running_loop().create_task(self._checkpoints())
        self.api.start()
        self.analyst.start()
        try:
            yield
        finally:
            self._cp_task.cancel()
            await self.analyst.stop()
            await self.api.stop()
            await self.writer.stop()
            with contextlib.suppress(Exception):
                self.cut_checkpoint()
            for st in {id(s): s for s in (self.writer_store, self.reader,
                                          self.cp_store)}.values():
                st.close()
            self.devices.close()

    # -- handlers ---------------------------------------------------------------------------
    def _auth(self, request: Request, need: str) -> Response | None:
        status, reason, _ = tokens.check(self.reader, request.headers.get("authorization"),
                                         need)
        if status == 200:
            return None
        self.metrics.reject("auth")
        return _fail(status, f"corral: server: {reason}")

    async def logs(self, request: Request) -> Response:
        denied = self._auth(request, "ingest")
        if denied:
            return denied
        limit = self.cfg.max_body_bytes
        try:
            length = int(request.headers.get("content-length") or 0)
        except ValueError:
            return self._bad(400, "bad Content-Length")
        if length > limit:
            return self._bad(413, f"body exceeds {limit} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return self._bad(413, f"body exceeds {limit} bytes")
        ctype = request.headers.get("content-type", "")
        as_json = ctype.split(";")[0].strip().lower() == ingest.JSON
        try:
            enc = request.headers.get("content-encoding", "identity").strip().lower()
            raw = bytes(body)
            if enc == "gzip":
                raw = ingest.gunzip(raw, limit)
            elif enc not in ("identity", ""):
                raise ingest.BadRequest(415, f"unsupported content encoding {enc!r}")
            decoded = ingest.decode(ingest.parse(raw, ctype))
        except ingest.BadRequest as exc:
            return self._bad(exc.status, exc.reason)
        bound = await asyncio.to_thread(self.devices.bind_ingest,
                                        request.headers.get("authorization"), decoded.devices)
        if bound is not None:  # a device's token sending another device's events
            self.metrics.reject("device")
            return bound
        if decoded.items:
            try:
                await self.writer.submit(decoded.items)
            except Overloaded:
                self.metrics.reject("overload")
                return _fail(429, "corral: server: too many events queued", retry=1)
            except Exception as exc:
                self.metrics.reject("store")
                return _fail(503, f"corral: server: store unavailable ({_short(exc)})",
                             retry=5)
        self.metrics.ingested(decoded)
        if decoded.rejected:
            self.metrics.reject("record", decoded.rejected)
        msg = "; ".join(decoded.reasons)
        return Response(ingest.response(decoded.rejected, msg, as_json),
                        media_type=ingest.JSON if as_json else ingest.PROTOBUF)

    def _bad(self, status: int, reason: str) -> Response:
        self.metrics.reject(str(status))
        return _fail(status, f"corral: server: {reason}")

    async def latest(self, request: Request) -> Response:
        cp = self.reader.latest_checkpoint()
        if cp is None:
            return _fail(404, "corral: server: no checkpoint yet")
        return PlainTextResponse(cp[1])

    async def inclusion(self, request: Request) -> Response:
        denied = self._auth(request, "read")
        if denied:
            return denied
        try:
            seq = int(request.query_params["seq"])
            size = int(request.query_params.get("tree_size") or self.reader.head()[0])
        except (KeyError, ValueError):
            return _fail(400, "corral: server: seq and tree_size must be integers")
        if not 0 < seq <= size or size > self.reader.head()[0]:
            return _fail(400, f"corral: server: seq {seq} is not in a tree of size {size}")
        lh = self.reader.leaf_hash(seq)  # stored: it outlives an expired event's content
        proof = self.reader.tree().inclusion(seq - 1, size)
        return JSONResponse({"seq": seq, "leaf_index": seq - 1, "tree_size": size,
                             "leaf_hash": _b64(lh or b""),
                             "hashes": [_b64(h) for h in proof]})

    async def consistency(self, request: Request) -> Response:
        denied = self._auth(request, "read")
        if denied:
            return denied
        try:
            first = int(request.query_params["first"])
            second = int(request.query_params["second"])
        except (KeyError, ValueError):
            return _fail(400, "corral: server: first and second must be integers")
        if not 0 < first <= second or second > self.reader.head()[0]:
            return _fail(400, f"corral: server: no consistency proof from {first} to {second}")
        proof = self.reader.tree().consistency(first, second)
        return JSONResponse({"first": first, "second": second,
                             "hashes": [_b64(h) for h in proof]})

    async def event(self, request: Request) -> Response:
        denied = self._auth(request, "read")
        if denied:
            return denied
        try:
            seq = int(request.path_params["seq"])
        except ValueError:
            return _fail(400, "corral: server: seq must be an integer")
        leaf = self.reader.leaf(seq)
        if leaf is None:
            return _fail(404, f"corral: server: no event {seq}")
        if not leaf:  # its content expired under retention or was erased
            from corral.server.api import retention_line

            gone = self.reader.tombstone_for(seq)
            return _fail(410, f"corral: server: event {seq} was deleted: "
                              f"{retention_line(gone) if gone else 'no tombstone found'}")
        return Response(leaf, media_type="application/json")

    async def healthz(self, request: Request) -> Response:
        try:
            size, _ = self.reader.head()
        except Exception as exc:
            return JSONResponse({"status": "error", "error": _short(exc)}, status_code=503)
        return JSONResponse({"status": "ok", "size": size, "queued": self.writer.pending})

    async def metrics_page(self, request: Request) -> Response:
        denied = self._auth(request, "read")
        if denied:
            return denied
        size, _ = self.reader.head()
        text = self.metrics.render(size, self.reader.size_bytes(), self.writer.pending)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _short(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def _fail(status: int, line: str, retry: int | None = None) -> Response:
    headers = {"Retry-After": str(retry)} if retry else None
    return PlainTextResponse(line + "\n", status_code=status, headers=headers)


def export(cfg: sconfig.ServerConfig, size: int, note: str) -> None:
    """Write a checkpoint to the export directory (``<size>.txt`` and ``latest.txt``)."""
    d = cfg.export_dir
    d.mkdir(parents=True, exist_ok=True)
    for name in (f"{size:012d}.txt", "latest.txt"):
        tmp = d / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(note)
        tmp.replace(d / name)


def build(cfg: sconfig.ServerConfig) -> tuple[Starlette, Server]:
    srv = Server(cfg)
    routes = [
        Route("/v1/logs", srv.logs, methods=["POST"]),
        # every read but /healthz leaves a server.access record (ComplianceApi.audited)
        Route("/v1/checkpoints/latest", srv.api.audited(srv.latest, "/v1/checkpoints/latest",
                                                        anonymous=True), methods=["GET"]),
        Route("/v1/proofs/inclusion", srv.api.audited(srv.inclusion, "/v1/proofs/inclusion"),
              methods=["GET"]),
        Route("/v1/proofs/consistency", srv.api.audited(srv.consistency,
                                                        "/v1/proofs/consistency"),
              methods=["GET"]),
        Route("/v1/events/{seq}", srv.api.audited(srv.event, "/v1/events/{seq}"),
              methods=["GET"]),
        Route("/healthz", srv.healthz, methods=["GET"]),
        Route("/metrics", srv.api.audited(srv.metrics_page, "/metrics"), methods=["GET"]),
        *srv.api.routes(),
        *srv.devices.routes(),
        *srv.analyst.routes(),
    ]
    from starlette.middleware import Middleware

    from corral.server import foreground

    return Starlette(routes=routes, lifespan=srv.lifespan,
                     middleware=[Middleware(foreground.Middleware, fg=srv.foreground)]), srv
