"""OTLP/HTTP log export of journaled events (protobuf or JSON), off the agent's path.

The journal writer offers each committed event; a bounded queue feeds one background thread that
batches, POSTs to ``/v1/logs`` and retries with exponential backoff. Nothing here ever blocks or
raises into the pipeline: when the queue is full or a batch is given up, the events are counted
and the count is reported through ``on_drop`` (the journal records it as ``agent.telemetry.drop``).
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import queue
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SEVERITY_NUMBER_INFO, LogRecord

from corral.errors import CorralError
from corral.telemetry.schema import SCHEMA_VERSION, Event
from corral.telemetry.stamp import span_id, trace_id

PROTOCOLS = ("http/protobuf", "http/json", "grpc")
SCOPE_NAME = "corral.telemetry"
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class ExporterConfig:
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = 10.0
    protocol: str = "http/protobuf"
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    max_queue: int = 4096
    batch_size: int = 512
    schedule_delay: float = 1.0
    max_attempts: int = 6
    max_backoff: float = 30.0
    source: str = "config"


def logs_url(endpoint: str) -> str:
    """A bare ``http://host:4318`` gets ``/v1/logs``; a URL with a path is used as given."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CorralError("telemetry", f"exporter endpoint {endpoint!r} is not an http(s) URL")
    if parts.path in ("", "/"):
        parts = parts._replace(path="/v1/logs")
    return urlunsplit(parts)


def grpc_target(endpoint: str) -> tuple[str, bool]:
    """(host:port, use TLS) for an OTLP/gRPC endpoint such as ``http://collector:4317``."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https", "grpc", "grpcs") or not parts.hostname:
        raise CorralError("telemetry", f"gRPC exporter endpoint {endpoint!r} is not a URL "
                          "like http://host:4317")
    return f"{parts.hostname}:{parts.port or 4317}", parts.scheme in ("https", "grpcs")


def exporter_config(cfg: Any) -> ExporterConfig | None:
    """The exporter to use: one forced by requirements wins over the user's config."""
    forced = cfg.requirements.get("telemetry.exporter")
    table, source = (forced, "requirements") if forced else (cfg.get("telemetry.exporter"), "config")
    if not table or not isinstance(table, dict) or not table.get("endpoint"):
        return None
    protocol = str(table.get("protocol", "http/protobuf"))
    if protocol not in PROTOCOLS:
        raise CorralError("telemetry", f"telemetry.exporter.protocol {protocol!r} from {source} "
                          f"is not supported", hint=f"use one of {', '.join(PROTOCOLS)}")
    tls = table.get("tls") or {}
    endpoint = str(table["endpoint"])
    if protocol == "grpc":
        grpc_target(endpoint)  # validates
    else:
        endpoint = logs_url(endpoint)
    return ExporterConfig(
        endpoint=endpoint,
        headers={str(k): str(v) for k, v in dict(table.get("headers") or {}).items()},
        timeout_seconds=float(table.get("timeout_seconds", 10.0)),
        protocol=protocol,
        ca_file=tls.get("ca_file"), client_cert=tls.get("client_cert"),
        client_key=tls.get("client_key"), source=source,
    )


def exporter_from_config(cfg: Any) -> OtlpExporter | None:
    conf = exporter_config(cfg)
    return OtlpExporter(conf) if conf else None


# -- encoding -----------------------------------------------------------------------------------

def _any(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, tuple | list):
        out = AnyValue()
        out.array_value.values.extend(_any(v) for v in value)
        return out
    return AnyValue(string_value=str(value))


def log_record(ev: Event, observed_ns: int) -> LogRecord:
    attrs: dict[str, Any] = {
        "event.name": ev.name, "event.id": ev.id, "session.id": ev.session_id,
        "gen_ai.conversation.id": ev.session_id, "user.name": ev.user,
        "gen_ai.agent.name": ev.agent_name, "corral.content_tier": ev.tier,
    }
    if ev.agent_version:
        attrs["gen_ai.agent.version"] = ev.agent_version
    if ev.turn_id:
        attrs["agent.turn.id"] = ev.turn_id
    if ev.call_id:
        attrs["gen_ai.tool.call.id"] = ev.call_id
    if ev.seq is not None:
        attrs["corral.journal.seq"] = ev.seq
    attrs.update(ev.attributes)
    rec = LogRecord(
        time_unix_nano=ev.time_unix_nano, observed_time_unix_nano=observed_ns,
        severity_number=SEVERITY_NUMBER_INFO, severity_text="INFO", event_name=ev.name,
        body=AnyValue(string_value=ev.name), trace_id=trace_id(ev.session_id),
    )
    if ev.call_id:
        rec.span_id = span_id(ev.call_id)
    rec.attributes.extend(KeyValue(key=k, value=_any(v)) for k, v in attrs.items())
    return rec


def encode_request(events: list[Event]) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    if not events:
        return req
    first = events[0]
    rl = req.resource_logs.add()
    for k, v in (("service.name", "corral"), ("service.version", first.corral_version),
                 ("host.name", first.host)):
        rl.resource.attributes.add(key=k, value=AnyValue(string_value=v))
    sl = rl.scope_logs.add()
    sl.scope.name = SCOPE_NAME
    sl.scope.version = str(SCHEMA_VERSION)
    now = time.time_ns()
    sl.log_records.extend(log_record(ev, now) for ev in events)
    return req


def to_json(req: ExportLogsServiceRequest) -> bytes:
    """OTLP/JSON: lowerCamelCase, enums as integers, 64-bit ints as strings, ids as hex."""
    import json

    from google.protobuf.json_format import MessageToDict

    data = MessageToDict(req, use_integers_for_enums=True)
    for rl in data.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for rec in sl.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in rec:
                        rec[key] = base64.b64decode(rec[key]).hex()
    return json.dumps(data, separators=(",", ":")).encode()


# -- the exporter -------------------------------------------------------------------------------

class OtlpExporter:
    """Bounded, batching, retrying OTLP/HTTP log exporter. ``offer`` never blocks."""

    def __init__(self, conf: ExporterConfig) -> None:
        self.conf = conf
        self.on_drop: Callable[[int, str, str], None] | None = None
        self.sent = 0
        self.dropped = 0
        self.attempts_failed = 0
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=conf.max_queue + 1)
        self._pending_drops = {"queue_full": 0, "export_failed": 0}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = 0.0
        self._ssl = self._ssl_context()
        self._grpc_channel: Any = None
        self._grpc: Any = self._grpc_stub() if conf.protocol == "grpc" else None
        self._thread = threading.Thread(target=self._run, name="corral-otlp", daemon=True)
        self._thread.start()

    def _ssl_context(self) -> ssl.SSLContext | None:
        c = self.conf
        if c.protocol == "grpc" or not c.endpoint.startswith("https:"):
            return None
        try:
            ctx = ssl.create_default_context(cafile=c.ca_file)
            if c.client_cert:
                ctx.load_cert_chain(c.client_cert, c.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise CorralError("telemetry", f"exporter TLS files unusable: {exc}") from exc
        return ctx

    def _grpc_stub(self) -> Any:
        try:  # imported by name: grpcio ships no type information
            grpc: Any = importlib.import_module("grpc")
            stubs: Any = importlib.import_module(
                "opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc")
        except ImportError as exc:
            raise CorralError("telemetry", f"OTLP/gRPC export needs grpcio ({exc})",
                              hint="reinstall corral with its dependencies") from exc
        target, secure = grpc_target(self.conf.endpoint)
        c = self.conf
        if secure:
            def read(p: str | None) -> bytes | None:
                if p is None:
                    return None
                with open(p, "rb") as fh:
                    return fh.read()

            try:
                creds = grpc.ssl_channel_credentials(read(c.ca_file), read(c.client_key),
                                                     read(c.client_cert))
            except OSError as exc:
                raise CorralError("telemetry", f"exporter TLS files unusable: {exc}") from exc
            channel = grpc.secure_channel(target, creds)
        else:
            channel = grpc.insecure_channel(target)
        self._grpc_channel = channel
        return stubs.LogsServiceStub(channel)

    def offer(self, event: Event) -> None:
        if self._queue.qsize() >= self.conf.max_queue:  # one slot stays free for close()
            self._count_drop("queue_full", 1)
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._count_drop("queue_full", 1)

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued (one attempt per batch, bounded by ``timeout``), then stop."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)  # wake the thread if it is waiting for events
        self._thread.join(timeout + 1.0)
        left = 0
        while True:
            try:
                if self._queue.get_nowait() is not None:
                    left += 1
            except queue.Empty:
                break
        if left:
            self._count_drop("export_failed", left)
        self._report_drops()
        if self._grpc is not None:
            self._grpc_channel.close()

    def _count_drop(self, reason: str, n: int) -> None:
        with self._lock:
            self.dropped += n
            self._pending_drops[reason] += n

    def _report_drops(self) -> None:
        with self._lock:
            pending = {k: v for k, v in self._pending_drops.items() if v}
            for k in pending:
                self._pending_drops[k] = 0
        cb = self.on_drop
        if cb is not None:
            for reason, n in pending.items():
                # reporting a drop must never kill the exporter
                with contextlib.suppress(Exception):
                    cb(n, reason, self.conf.endpoint)

    def _collect(self) -> list[Event]:
        batch: list[Event] = []
        wait_until = time.monotonic() + self.conf.schedule_delay
        while len(batch) < self.conf.batch_size:
            remaining = wait_until - time.monotonic()
            if self._stop.is_set():
                remaining = 0
            try:
                item = (self._queue.get(timeout=remaining) if remaining > 0
                        else self._queue.get_nowait())
            except queue.Empty:
                break
            if item is None:
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while True:
            batch = self._collect()
            if batch:
                self._send(batch)
            self._report_drops()
            if self._stop.is_set() and (self._queue.empty() or time.monotonic() > self._deadline):
                return

    def _send(self, batch: list[Event]) -> None:
        req = encode_request(batch)
        if self.conf.protocol == "grpc":
            body, ctype = b"", "grpc"
        elif self.conf.protocol == "http/json":
            body, ctype = to_json(req), "application/json"
        else:
            body, ctype = req.SerializeToString(), "application/x-protobuf"
        delay = 0.5
        for attempt in range(1, self.conf.max_attempts + 1):
            retry_after = self._export_grpc(req) if self._grpc else self._post(body, ctype)
            if retry_after is None:
                self.sent += len(batch)
                return
            self.attempts_failed += 1
            if retry_after < 0 or attempt == self.conf.max_attempts:
                break
            wait = min(max(delay, retry_after), self.conf.max_backoff)
            if self._stop.is_set():
                wait = min(wait, max(0.0, self._deadline - time.monotonic()))
                if wait <= 0:
                    break
            if self._stop.is_set():
                time.sleep(wait)
            else:
                self._stop.wait(wait)
            delay *= 2
        self._count_drop("export_failed", len(batch))

    def _export_grpc(self, req: ExportLogsServiceRequest) -> float | None:
        grpc: Any = importlib.import_module("grpc")

        metadata = [(k.lower(), v) for k, v in self.conf.headers.items()]
        try:
            self._grpc.Export(req, timeout=self.conf.timeout_seconds, metadata=metadata)
            return None
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            retryable = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                         grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED}
            return 0.0 if code in retryable else -1.0

    def _post(self, body: bytes, ctype: str) -> float | None:
        """None on success; seconds to wait before retrying; -1 when retrying cannot help."""
        headers = {"Content-Type": ctype, **self.conf.headers}
        req = urllib.request.Request(self.conf.endpoint, data=body, headers=headers,
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.conf.timeout_seconds,
                                        context=self._ssl) as resp:
                resp.read()
            return None
        except urllib.error.HTTPError as exc:
            if exc.code in _RETRY_STATUS:
                ra = exc.headers.get("Retry-After") if exc.headers else None
                try:
                    return float(ra) if ra else 0.0
                except ValueError:
                    return 0.0
            return -1.0
        except (urllib.error.URLError, OSError, TimeoutError):
            return 0.0
