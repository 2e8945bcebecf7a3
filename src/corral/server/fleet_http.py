"""The fleet's HTTP endpoints in ``corral server run`` (docs/fleet.md).

| method, path | credential | what |
|---|---|---|
| ``POST /v1/fleet/enroll`` | enrolment token (in the body) | register a device (``corral.server.enroll``) |
| ``GET /v1/fleet/policy`` | the device's ingest token | its signed policy bundle |
| ``POST /v1/fleet/checkin`` | the device's ingest token | what the machine reports (versions, hooks, lag, drift) |
| ``GET /v1/fleet/identity`` | none | the identity provider machines sign in with |

A device's ingest token is bound to it: ``POST /v1/logs`` with it must carry that device's id
(``corral.device.id``) and nothing else (``bind_ingest``), so every stored event names the
device whose credential sent it.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from corral.server import tokens
from corral.server.enroll import enrol, load_settings
from corral.server.fleetdb import Device, FleetRefused, open_fleet
from corral.server.policy import bundle_for, policy_key, public_b64

if TYPE_CHECKING:
    from corral.server.app import Server

MAX_REQUEST = 64 * 1024
REPORT_KEYS = frozenset({"corral_version", "agents", "hooks", "policy_applied", "forwarding",
                         "drift", "identity", "hostname"})


def _fail(status: int, line: str) -> Response:
    return PlainTextResponse(f"corral: server: {line}\n", status_code=status)


class FleetHttp:
    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.fleet = open_fleet(srv.cfg)
        self.settings = load_settings(srv.cfg.data)
        self.key = policy_key(srv.cfg.data)
        self.public_key = public_b64(self.key)

    def close(self) -> None:
        self.fleet.close()

    def routes(self) -> list[Route]:
        return [Route("/v1/fleet/enroll", self.enroll, methods=["POST"]),
                Route("/v1/fleet/policy", self.policy, methods=["GET"]),
                Route("/v1/fleet/checkin", self.checkin, methods=["POST"]),
                Route("/v1/fleet/identity", self.identity, methods=["GET"])]

    # -- helpers ------------------------------------------------------------------------------
    def _device(self, header: str | None) -> Device:
        status, reason, tok = tokens.check(self.srv.reader, header, "ingest")
        if status != 200 or tok is None or header is None:
            raise FleetRefused(status if status != 200 else 401, reason or "no token")
        dev = self.fleet.device_by_token(tokens.digest(header[7:].strip()))
        if dev is None:
            raise FleetRefused(403, "this token does not belong to an enrolled device")
        if dev.revoked_ns is not None:
            raise FleetRefused(401, f"device {dev.id} is revoked")
        return dev

    async def _json(self, request: Request) -> dict[str, Any]:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST:
                raise FleetRefused(413, f"request larger than {MAX_REQUEST} bytes")
        try:
            doc = json.loads(bytes(body))
        except (ValueError, UnicodeDecodeError):
            raise FleetRefused(400, "request body is not JSON") from None
        if not isinstance(doc, dict):
            raise FleetRefused(400, "request body is not a JSON object")
        return doc

    # -- handlers -----------------------------------------------------------------------------
    async def enroll(self, request: Request) -> Response:
        try:
            req = await self._json(request)
            answer = await asyncio.to_thread(enrol, self.fleet, self.srv.writer_store, req,
                                             self.settings, self.public_key)
        except FleetRefused as exc:
            return _fail(exc.status, exc.reason)
        return JSONResponse(answer)

    async def policy(self, request: Request) -> Response:
        try:
            dev = await asyncio.to_thread(self._device, request.headers.get("authorization"))
        except FleetRefused as exc:
            return _fail(exc.status, exc.reason)
        applied = request.headers.get("x-corral-policy-applied", "")
        raw, version = await asyncio.to_thread(bundle_for, self.fleet, dev, self.key,
                                               self.settings.bundle_ttl_seconds)
        await asyncio.to_thread(
            self.fleet.seen, dev.id, policy_served=version,
            policy_applied=int(applied) if applied.isdigit() else None,
            corral_version=request.headers.get("x-corral-version", "")[:64] or None)
        return Response(raw, media_type="application/json")

    async def checkin(self, request: Request) -> Response:
        try:
            dev = await asyncio.to_thread(self._device, request.headers.get("authorization"))
            doc = await self._json(request)
        except FleetRefused as exc:
            return _fail(exc.status, exc.reason)
        report = {k: v for k, v in doc.items() if k in REPORT_KEYS}
        applied = report.get("policy_applied")
        await asyncio.to_thread(
            self.fleet.seen, dev.id, report=report,
            policy_applied=applied if isinstance(applied, int) else None,
            corral_version=str(report.get("corral_version", ""))[:64] or None)
        return JSONResponse({"device_id": dev.id,
                             "policy_version": await asyncio.to_thread(
                                 self.fleet.policy_version)})

    async def identity(self, request: Request) -> Response:
        return JSONResponse({"oidc": self.settings.oidc or None})

    # -- ingest -------------------------------------------------------------------------------
    def bind_ingest(self, header: str | None, devices: dict[str, int]) -> Response | None:
        """Refuse a batch whose claimed device is not the token's device; record the device's
        ingest (last seen, newest event time: the forwarding lag). Tokens that belong to no
        device (created with ``corral server token create``) are not bound."""
        if not header or not header.startswith("Bearer "):
            return None
        dev = self.fleet.device_by_token(tokens.digest(header[7:].strip()))
        if dev is None:
            return None
        if dev.revoked_ns is not None:
            return _fail(401, f"device {dev.id} is revoked")
        other = [d for d in devices if d != dev.id]
        if other:
            return _fail(403, f"this token belongs to device {dev.id}, the batch claims "
                         f"device {other[0][:80]!r}")
        import time

        self.fleet.seen(dev.id, ingest_ns=time.time_ns(),
                        newest_event_ns=max(devices.values()) if devices else None)
        return None
