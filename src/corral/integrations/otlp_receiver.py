"""A local OTLP/HTTP logs receiver: the agents export their own events here, and each one is
mapped (``otel_map``) and emitted into the session's journal through ``Telemetry.emit``.

Serves ``POST /v1/logs`` with ``application/x-protobuf`` or ``application/json`` bodies, gzip or
not, on 127.0.0.1 only. A per-receiver bearer token keeps other local users' processes from
writing into the journal. Traces and metrics are accepted and dropped, so an agent configured
to send them does not log export errors. A journal that cannot be written answers 503: the agent
retries and nothing is acknowledged that was not recorded.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import os
import re
import secrets
import socket
import socketserver
import struct
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from corral.errors import CorralError
from corral.integrations.otel_map import Mapped, NativeRecord, map_record
from corral.telemetry.schema import validate

MAX_BODY = 32 * 1024 * 1024
MAX_CONNECTIONS = 16  # concurrent exports served at once; more get 503 and retry later
# Ids the agent chooses live in their own namespace: they never name one of corral's calls.
IMPORT_ID_PREFIX = "import:"
MAX_IMPORT_ID = 128
_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"


def read_chunked(rfile: Any, limit: int) -> bytes:
    """An HTTP/1.1 ``Transfer-Encoding: chunked`` body from ``rfile`` (at most ``limit`` bytes;
    extensions and trailers read past). ValueError if malformed, cut short or too large."""
    out = bytearray()
    while True:
        line = rfile.readline(1026)
        if not line.endswith(b"\n"):
            raise ValueError("chunk size line missing or too long")
        try:
            size = int(line.split(b";", 1)[0].strip() or b"x", 16)
        except ValueError:
            raise ValueError(f"bad chunk size {line[:40]!r}") from None
        if size < 0 or len(out) + size > limit:
            raise ValueError(f"body larger than {limit} bytes")
        if size == 0:
            break
        data = rfile.read(size)
        if len(data) != size or rfile.readline(3) not in (b"\r\n", b"\n"):
            raise ValueError("chunk cut short")
        out += data
    for _ in range(100):  # trailer fields, up to the empty line
        line = rfile.readline(8192)
        if line in (b"\r\n", b"\n"):
            return bytes(out)
        if not line.endswith(b"\n"):
            break
    raise ValueError("chunked body has no end")


def any_value(v: Any) -> Any:
    """An OTLP ``AnyValue`` as plain Python (kvlists and nested arrays become canonical JSON)."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        items = [any_value(x) for x in v.array_value.values]
        if all(isinstance(x, str) for x in items):
            return items
        return json.dumps(items, sort_keys=True, separators=(",", ":"), default=str)
    if kind == "kvlist_value":
        return json.dumps({kv.key: any_value(kv.value) for kv in v.kvlist_value.values},
                          sort_keys=True, separators=(",", ":"), default=str)
    if kind == "bytes_value":
        return bytes(v.bytes_value).hex()
    return getattr(v, kind)


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


_NAME = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*$")


def event_name(record_name: str, attrs: dict[str, Any], body: Any) -> str:
    """The record's event name: EventName, else the ``event.name`` attribute, else a dotted
    body. Codex's tracing bridge fills EventName with ``event <file>:<line>``, so a candidate
    counts only if it looks like an event name."""
    for cand in (record_name, attrs.get("event.name"), body):
        if isinstance(cand, str) and _NAME.match(cand):
            return cand
    return ""


def records(req: Any) -> list[NativeRecord]:
    """Flatten an ``ExportLogsServiceRequest`` into native records."""
    out: list[NativeRecord] = []
    for rl in req.resource_logs:
        resource = _attrs(rl.resource.attributes)
        for sl in rl.scope_logs:
            for lr in sl.log_records:
                attrs = _attrs(lr.attributes)
                body = any_value(lr.body) if lr.HasField("body") else None
                out.append(NativeRecord(name=event_name(lr.event_name, attrs, body),
                                        attributes=attrs,
                                        resource=resource, body=body,
                                        time_unix_nano=lr.time_unix_nano or
                                        lr.observed_time_unix_nano))
    return out


def _hex_ids_to_base64(doc: Any) -> None:
    """OTLP/JSON spells trace and span ids in hex; protobuf's JSON mapping expects base64."""
    for rl in doc.get("resourceLogs", doc.get("resource_logs", [])) or []:
        for sl in rl.get("scopeLogs", rl.get("scope_logs", [])) or []:
            for lr in sl.get("logRecords", sl.get("log_records", [])) or []:
                for key in ("traceId", "spanId", "trace_id", "span_id"):
                    value = lr.get(key)
                    if isinstance(value, str) and value:
                        try:
                            lr[key] = base64.b64encode(bytes.fromhex(value)).decode()
                        except ValueError:
                            lr.pop(key)


def parse_request(body: bytes, content_type: str) -> Any:
    """Decode an ``ExportLogsServiceRequest`` (protobuf or OTLP/JSON). Raises ValueError."""
    from google.protobuf import json_format
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    req = ExportLogsServiceRequest()
    if content_type.startswith(_JSON):
        try:
            doc = json.loads(body)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            _hex_ids_to_base64(doc)
            json_format.ParseDict(doc, req, ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(str(exc).splitlines()[0] if str(exc) else "bad OTLP/JSON") from exc
        return req
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        raise ValueError(f"bad OTLP protobuf ({exc})") from exc
    return req


class Receiver:
    """``Receiver(telemetry).start()`` -> base URL; agents post to ``<url>/v1/logs``."""

    def __init__(self, telemetry: Any, *, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, unix_socket: Path | None = None,
                 max_connections: int = MAX_CONNECTIONS, quota: Any = None,
                 same_user_only: bool = False,
                 on_record: Callable[[Mapped], None] | None = None) -> None:
        from corral.telemetry.quota import Quota

        self.on_record = on_record  # told of each record journaled (after it is)

        self.telemetry = telemetry
        # On TCP: only processes of our own uid may export (looked up in /proc/net/tcp), so
        # an agent can be pointed here without a token on its command line.
        self.same_user_only = same_user_only
        self.max_connections = max_connections
        # Per session: records and bytes the agent's telemetry may add to the journal.
        self.quota = quota or Quota(telemetry, "import")
        self.host = host
        self.port = port
        # A unix socket instead of TCP: for a sandbox that reaches it through a loopback bridge
        # (like the network proxy); the endpoint is then the bridge's, chosen by the caller.
        # There the socket's mode (0600, in a private directory) and the peer's uid are the
        # authentication, so no token has to be handed to the agent (Codex would carry it on
        # its command line, which every local user can read in ps).
        self.unix_socket = unix_socket
        self.token = token if token is not None else (
            "" if unix_socket is not None else secrets.token_urlsafe(24))
        self.accepted = 0
        self.dropped = 0
        self.rejected = 0
        self._server: ThreadingHTTPServer | _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise CorralError("integrations", "OTLP receiver is not running")
        if self.unix_socket is not None:
            return f"unix:{self.unix_socket}"
        address: Any = self._server.server_address
        return f"http://{self.host}:{address[1]}"

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                uid = None
                if receiver.same_user_only and receiver.unix_socket is None:
                    uid = loopback_peer_uid(self.connection)
                status, ctype, payload = receiver.handle_http(
                    self.path, dict(self.headers.items()), self._body(), peer_uid=uid)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                if status == 503:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(payload)

            def _body(self) -> bytes | None:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    try:  # Gemini CLI's (Node's) exporter streams its body
                        return read_chunked(self.rfile, MAX_BODY)
                    except ValueError:
                        self.close_connection = True  # where the next request starts is lost
                        return None
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    return None
                if length < 0 or length > MAX_BODY:
                    return None
                return self.rfile.read(length)

        server: _UnixHTTPServer | _TCPServer
        if self.unix_socket is not None:
            server = _UnixHTTPServer(str(self.unix_socket), Handler, bind_and_activate=False)
        else:
            server = _TCPServer((self.host, self.port), Handler, bind_and_activate=False)
        server.max_connections = self.max_connections
        try:
            server.server_bind()
            server.server_activate()
        except BaseException:
            server.server_close()
            raise
        self._server = server
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="corral-otlp-receiver", daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            if self.unix_socket is not None:
                self.unix_socket.unlink(missing_ok=True)
            self.quota.close()

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests -------------------------------------------------------------------------

    def handle_http(self, path: str, headers: dict[str, str], body: bytes | None,
                    peer_uid: int | None = None) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request; no sockets involved (``peer_uid``:
        who sent it over TCP, when ``same_user_only``)."""
        h = {k.lower(): v for k, v in headers.items()}
        ctype = (h.get("content-type") or _PROTOBUF).split(";")[0].strip().lower()
        reply_type = _JSON if ctype == _JSON else _PROTOBUF

        def error(status: int, message: str) -> tuple[int, str, bytes]:
            return status, reply_type, _rpc_status(status, f"corral: telemetry: {message}",
                                                   reply_type)

        if self.same_user_only and self.unix_socket is None and peer_uid != os.getuid():
            return error(403, "OTLP receiver: the exporting process is not this user's")
        if self.token:
            auth = h.get("authorization", "")
            if not hmac.compare_digest(auth.encode(), f"Bearer {self.token}".encode()):
                return error(401, "OTLP receiver: bad or missing bearer token")
        route = path.split("?")[0].rstrip("/")
        if route in ("/v1/traces", "/v1/metrics"):
            return 200, reply_type, b"{}" if reply_type == _JSON else b""
        if route != "/v1/logs":
            return error(404, f"OTLP receiver: no such path {route!r} (use /v1/logs)")
        if ctype not in (_JSON, _PROTOBUF):
            return error(415, f"OTLP receiver: unsupported content type {ctype!r}")
        if body is None:
            return error(413, f"OTLP receiver: body missing, malformed or larger than "
                              f"{MAX_BODY} bytes")
        if h.get("content-encoding", "").lower() == "gzip":
            try:
                body = _gunzip(body)
            except (OSError, EOFError, zlib.error, ValueError) as exc:
                return error(400, f"OTLP receiver: bad gzip body ({exc})")
        try:
            req = parse_request(body, ctype)
        except ValueError as exc:
            return error(400, f"OTLP receiver: {exc}")
        try:
            rejected, message = self.ingest(records(req))
        except CorralError as exc:
            return error(503, exc.message)
        return 200, reply_type, _response(reply_type, rejected, message)

    def ingest(self, recs: list[NativeRecord]) -> tuple[int, str]:
        """Map and emit each record. Returns (rejected count, first problem). Raises
        ``CorralError`` when the journal itself has failed."""
        rejected, dropped, first = 0, 0, ""
        for rec in recs:
            if self.quota.exceeded is not None:  # counted, not even mapped
                self.quota.admit(0)
                rejected += 1
                continue
            mapped = map_record(rec)
            if mapped is None:
                dropped += 1
                continue
            problem = validate(mapped.name, mapped.attributes)
            if problem is not None:  # a record we mapped badly: refuse it, keep the rest
                rejected += 1
                first = first or problem
                continue
            if not self.quota.admit(_size(mapped)):
                rejected += 1
                continue
            self._emit(mapped)  # CorralError here means the journal failed: 503
        if self.quota.exceeded is not None and rejected:
            first = first or (f"this session's import quota ({self.quota.exceeded}) is used "
                              "up; further records are counted, not recorded")
        with self._lock:
            self.accepted += len(recs) - rejected - dropped
            self.rejected += rejected
            self.dropped += dropped
        if recs:
            self.telemetry.flush(30)  # acknowledge only what is committed
        return rejected, first

    def _emit(self, m: Mapped) -> None:
        """Journaled as the agent's claim (origin ``import``), whatever its name says, with
        its ids in their own namespace."""
        self.telemetry.emit(m.name, m.attributes, call_id=_import_id(m.call_id),
                            turn_id=_import_id(m.turn_id), content=m.content, origin="import")
        if self.on_record is not None:
            self.on_record(m)


def loopback_peer_uid(conn: socket.socket) -> int | None:
    """The uid owning the other end of a loopback TCP connection, from /proc/net/tcp{,6} (the
    row whose local address is our peer and remote address is us), or None if not found."""
    try:
        peer, local = conn.getpeername(), conn.getsockname()
    except OSError:
        return None
    v6 = conn.family == socket.AF_INET6
    want = (_proc_addr(peer[0], peer[1], v6), _proc_addr(local[0], local[1], v6))
    try:
        with open(f"/proc/net/tcp{'6' if v6 else ''}") as f:
            next(f, None)
            for line in f:
                cols = line.split()
                if len(cols) > 7 and (cols[1], cols[2]) == want:
                    return int(cols[7])
    except (OSError, ValueError):
        return None
    return None


def _proc_addr(host: str, port: int, v6: bool) -> str:
    """``host:port`` as /proc/net/tcp spells it: 32-bit words in host byte order, in hex."""
    if v6:
        words = struct.unpack("=4I", socket.inet_pton(socket.AF_INET6, host))
        return "".join(f"{w:08X}" for w in words) + f":{port:04X}"
    (word,) = struct.unpack("=I", socket.inet_aton(host))
    return f"{word:08X}:{port:04X}"


def _import_id(value: str | None) -> str | None:
    return IMPORT_ID_PREFIX + value[:MAX_IMPORT_ID] if value else None


def _size(m: Mapped) -> int:
    """What a record costs against the bytes quota: its attributes and content, as JSON."""
    return len(json.dumps([m.attributes, m.content], default=str).encode("utf-8", "replace"))


class _Capped:
    """A thread per connection, at most ``max_connections`` at once; past that a 503 and the
    connection is closed (the agent's exporter retries later)."""

    max_connections = MAX_CONNECTIONS
    _slots: threading.BoundedSemaphore

    def server_activate(self) -> None:
        super().server_activate()  # type: ignore[misc]
        self._slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                                b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            self.shutdown_request(request)  # type: ignore[attr-defined]
            return
        super().process_request(request, client_address)  # type: ignore[misc]

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self._slots.release()


class _TCPServer(_Capped, ThreadingHTTPServer):
    """Loopback HTTP, token-authenticated."""


class _UnixHTTPServer(_Capped, socketserver.ThreadingUnixStreamServer):
    """HTTP over a unix socket (private: created with mode 0600; peers of another uid are
    refused)."""

    daemon_threads = True

    def verify_request(self, request: Any, client_address: Any) -> bool:
        creds = request.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                   struct.calcsize("3i"))
        return bool(struct.unpack("3i", creds)[1] == os.getuid())

    def server_bind(self) -> None:
        old = os.umask(0o177)
        try:
            super().server_bind()
        finally:
            os.umask(old)

    def get_request(self) -> tuple[Any, Any]:
        conn, _ = super().get_request()
        return conn, ("unix", 0)  # BaseHTTPRequestHandler expects a (host, port) address


# The gRPC code an OTLP error body carries for each HTTP status we answer with (OTLP/HTTP: the
# body of a 4xx/5xx is a google.rpc.Status, whose code is a google.rpc.Code, not the HTTP one).
_GRPC_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
               404: "NOT_FOUND", 413: "RESOURCE_EXHAUSTED", 415: "INVALID_ARGUMENT",
               429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}


def _rpc_status(http_status: int, message: str, reply_type: str = _PROTOBUF) -> bytes:
    """The OTLP error body: a ``google.rpc.Status`` {code, message}, protobuf or JSON."""
    from google.rpc import code_pb2, status_pb2

    status = status_pb2.Status(
        code=code_pb2.Code.Value(_GRPC_CODES.get(http_status, "INTERNAL")), message=message)
    if reply_type == _JSON:
        from google.protobuf.json_format import MessageToJson

        return MessageToJson(status).encode()
    return bytes(status.SerializeToString())


def _gunzip(body: bytes) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(body, MAX_BODY + 1)
    if len(out) > MAX_BODY:
        raise ValueError("decompressed body too large")
    return out


def _response(reply_type: str, rejected: int, message: str) -> bytes:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceResponse,
    )

    resp = ExportLogsServiceResponse()
    if rejected:
        resp.partial_success.rejected_log_records = rejected
        resp.partial_success.error_message = f"corral: telemetry: {message}"
    if reply_type == _JSON:
        from google.protobuf.json_format import MessageToJson

        return MessageToJson(resp).encode()
    return bytes(resp.SerializeToString())


