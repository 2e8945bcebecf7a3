"""A real OTLP/HTTP ingest peer for forwarding tests, in-process or as a subprocess.

It does what the contract asks of ``corral server``: bearer token, gzip, protobuf, store each
record once by ``event.id`` in SQLite (committed before the 200), and it can be told to
misbehave: answer 503/429 with Retry-After, refuse (400/401), reject records (partial success),
die in the middle of a batch after storing half of it, or ack slowly. As a subprocess its
control file (JSON) is re-read on every request, so a test can revoke a token or change the
fault while it runs; ``die`` really exits the process (``os._exit``) mid-batch.

    python tests/forward/peer.py DB CONTROL PORTFILE [PORT]
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, name TEXT, seq INTEGER, body TEXT,
                                   hash TEXT, prev TEXT, journal TEXT, pos INTEGER);
CREATE TABLE IF NOT EXISTS received (n INTEGER);
CREATE TABLE IF NOT EXISTS resource (key TEXT PRIMARY KEY, value TEXT);
"""


def attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


class Store:
    """What the peer has durably stored (one row per event id) and everything it received."""

    def __init__(self, path: Path) -> None:
        self.path = path
        conn = self.connect()
        conn.executescript(_SCHEMA)
        conn.close()

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # survives kill -9 (not power loss): enough here
        return conn

    def add(self, req: ExportLogsServiceRequest, upto: int | None = None) -> int:
        conn = self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            n = 0
            pos = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            for rl in req.resource_logs:
                for k, v in attrs(rl.resource.attributes).items():
                    conn.execute("INSERT OR REPLACE INTO resource VALUES (?,?)", (k, str(v)))
                for sl in rl.scope_logs:
                    for lr in sl.log_records:
                        if upto is not None and n >= upto:
                            break
                        a = attrs(lr.attributes)
                        pos += 1
                        conn.execute(
                            "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?)",
                            (a["event.id"], lr.event_name, a.get("corral.journal.seq")
                             or a.get("corral.journal.checkpoint.seq"), lr.body.string_value,
                             a.get("corral.journal.hash"), a.get("corral.journal.prev_hash"),
                             a.get("corral.journal.id"), pos))
                        conn.execute("INSERT INTO received VALUES (1)")
                        n += 1
            conn.execute("COMMIT")
            return n
        finally:
            conn.close()

    def ids(self) -> list[str]:
        conn = self.connect()
        try:
            return [r[0] for r in conn.execute("SELECT id FROM events WHERE name != "
                                               "'agent.journal.checkpoint' ORDER BY seq")]
        finally:
            conn.close()

    def rows(self) -> list[tuple[str, str, int, str, str, str]]:
        """(id, name, seq, body, hash, prev) of journal records, in seq order."""
        conn = self.connect()
        try:
            return list(conn.execute(
                "SELECT id, name, seq, body, hash, prev FROM events WHERE name != "
                "'agent.journal.checkpoint' ORDER BY seq"))
        finally:
            conn.close()

    def checkpoints(self) -> list[tuple[str, int]]:
        conn = self.connect()
        try:
            return list(conn.execute("SELECT id, seq FROM events WHERE name = "
                                     "'agent.journal.checkpoint' ORDER BY seq"))
        finally:
            conn.close()

    def received(self) -> int:
        conn = self.connect()
        try:
            return int(conn.execute("SELECT COUNT(*) FROM received").fetchone()[0])
        finally:
            conn.close()

    def resource(self) -> dict[str, str]:
        conn = self.connect()
        try:
            return dict(conn.execute("SELECT key, value FROM resource"))
        finally:
            conn.close()


def chain_ok(rows: list[tuple[str, str, int, str, str, str]]) -> bool:
    """The server's view of the machine's chain: every hash recomputes from prev + body."""
    prev = "0" * 64
    for _id, _name, _seq, body, h, p in rows:
        if p != prev or hashlib.sha256(p.encode() + body.encode()).hexdigest() != h:
            return False
        prev = h
    return True


class Peer:
    """The ingest peer. ``control`` is a dict (in-process) or read from ``control_file``."""

    def __init__(self, store: Store, port: int = 0, control_file: Path | None = None,
                 in_process: bool = True, tls: Any = None) -> None:
        self.store = store
        self.control_file = control_file
        self.control: dict[str, Any] = {"tokens": ["tok"], "mode": "ok"}
        self.schedule: list[str] = []  # per-request modes, consumed first (in-process)
        self.requests = 0
        self.in_process = in_process
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                peer.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.tls = tls
        if tls is not None:  # an ssl.SSLContext for the server side
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            self.server.handle_error = lambda *a: None  # type: ignore[method-assign]
        self.port = self.server.server_address[1]
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> Peer:
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _control(self) -> dict[str, Any]:
        if self.control_file is not None:
            try:
                return dict(json.loads(self.control_file.read_text()))
            except (OSError, ValueError):
                return self.control
        return self.control

    def _reply(self, h: BaseHTTPRequestHandler, status: int, body: bytes = b"",
               headers: dict[str, str] | None = None) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length", "0")))
        ctl = self._control()
        with self.lock:
            self.requests += 1
            mode = self.schedule.pop(0) if self.schedule else str(ctl.get("mode", "ok"))
        auth = h.headers.get("Authorization", "")
        if h.path != "/v1/logs":
            return self._reply(h, 404)
        if auth.removeprefix("Bearer ") not in ctl.get("tokens", []):
            return self._reply(h, 401, b"token revoked or unknown")
        if mode in ("503", "429"):
            return self._reply(h, int(mode), b"overloaded",
                               {"Retry-After": str(ctl.get("retry_after", 0))})
        if mode == "400":
            return self._reply(h, 400, b"malformed: test says so")
        if h.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        req = ExportLogsServiceRequest.FromString(body)
        total = sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)
        if mode == "die":  # store half, then vanish without an answer
            self.store.add(req, upto=total // 2)
            if not self.in_process:
                os._exit(137)
            h.close_connection = True
            h.connection.close()
            return None
        if mode == "partial":
            resp = ExportLogsServiceResponse()
            resp.partial_success.rejected_log_records = 1
            resp.partial_success.error_message = "one record is not acceptable"
            self.store.add(req, upto=total - 1)
            return self._reply(h, 200, resp.SerializeToString(),
                               {"Content-Type": "application/x-protobuf"})
        self.store.add(req)
        if mode == "slow":
            time.sleep(float(ctl.get("delay", 0.05)))
        return self._reply(h, 200, ExportLogsServiceResponse().SerializeToString(),
                           {"Content-Type": "application/x-protobuf"})


def main(argv: list[str]) -> None:
    db, control, portfile = Path(argv[0]), Path(argv[1]), Path(argv[2])
    port = int(argv[3]) if len(argv) > 3 else 0
    peer = Peer(Store(db), port, control_file=control, in_process=False)
    tmp = portfile.with_suffix(".tmp")
    tmp.write_text(str(peer.port))
    tmp.replace(portfile)
    peer.server.serve_forever(0.05)


if __name__ == "__main__":
    main(sys.argv[1:])
