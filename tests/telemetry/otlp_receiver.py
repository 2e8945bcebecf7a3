"""A real OTLP/HTTP logs receiver on loopback (http.server + opentelemetry-proto), for tests."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

CHECKPOINT = "agent.journal.checkpoint"


class Receiver:
    """Collects decoded requests. ``fail_next`` makes the next N POSTs answer 503."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.peer_certs: list[Any] = []
        self.requests: list[ExportLogsServiceRequest] = []
        self.json_bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail_next = 0
        self.failures = 0
        self.lock = threading.Lock()
        self.got = threading.Condition(self.lock)
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with rec.lock:
                    if self.path != "/v1/logs":
                        self.send_response(404)
                        self.end_headers()
                        return
                    if rec.fail_next > 0:
                        rec.fail_next -= 1
                        rec.failures += 1
                        self.send_response(503)
                        self.send_header("Retry-After", "0")
                        self.end_headers()
                        return
                    if rec.tls is not None:
                        rec.peer_certs.append(self.connection.getpeercert())
                    rec.headers.append({k.lower(): v for k, v in self.headers.items()})
                    if self.headers.get("Content-Type") == "application/json":
                        data = json.loads(body)
                        rec.json_bodies.append(data)
                        from google.protobuf.json_format import ParseDict

                        req = ExportLogsServiceRequest()
                        ParseDict(_hex_ids_to_b64(json.loads(body)), req)
                    else:
                        req = ExportLogsServiceRequest.FromString(body)
                    rec.requests.append(req)
                    rec.got.notify_all()
                out = ExportLogsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.server.handle_error = lambda *a: None  # type: ignore[method-assign]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def all_records(self) -> list[Any]:
        with self.lock:
            return [lr for r in self.requests for rl in r.resource_logs
                    for sl in rl.scope_logs for lr in sl.log_records]

    def records(self) -> list[Any]:
        """Event records, without the exported journal checkpoints."""
        return [r for r in self.all_records() if r.event_name != CHECKPOINT]

    def checkpoints(self) -> list[Any]:
        return [r for r in self.all_records() if r.event_name == CHECKPOINT]

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Any]:
        with self.got:
            self.got.wait_for(lambda: sum(
                1 for r in self.requests for rl in r.resource_logs for sl in rl.scope_logs
                for lr in sl.log_records if lr.event_name != CHECKPOINT) >= n, timeout)
        return self.records()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _hex_ids_to_b64(data: dict[str, Any]) -> dict[str, Any]:
    import base64

    for rl in data.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for rec in sl.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in rec:
                        rec[key] = base64.b64encode(bytes.fromhex(rec[key])).decode()
    return data


def attrs(record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in record.attributes:
        which = kv.value.WhichOneof("value")
        if which == "array_value":
            out[kv.key] = [v.string_value for v in kv.value.array_value.values]
        else:
            out[kv.key] = getattr(kv.value, which)
    return out
