"""An HTTPS server for broker tests: a trustme certificate, every request head and body kept,
and a reply that echoes the request's headers (so a server that reflects a secret can be
played)."""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class EchoServer:
    """``EchoServer(tmp_path, "localhost", "127.0.0.1").start()``; ``.ca`` is its CA file."""

    def __init__(self, tmp_path: Path, *names: str, host: str = "127.0.0.1",
                 tls: bool = True) -> None:
        import trustme

        self.names = names or ("localhost", "127.0.0.1")
        self.host = host
        self.tls = tls
        self._ca = trustme.CA()
        self.ca = tmp_path / f"echo-ca-{id(self)}.pem"
        self._ca.cert_pem.write_to_path(str(self.ca))
        self.seen: list[dict[str, Any]] = []
        self._srv: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._srv is not None
        return int(self._srv.server_address[1])

    def url(self, path: str = "/", host: str | None = None) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host or self.names[0]}:{self.port}{path}"

    def start(self) -> EchoServer:
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                doc = {"method": self.command, "path": self.path,
                       "headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": body.decode("latin-1")}
                seen.append(doc)
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Echo-Auth", self.headers.get("Authorization", "-"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _answer

        srv = ThreadingHTTPServer((self.host, 0), Handler)
        srv.daemon_threads = True
        if self.tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ca.issue_cert(*self.names).configure_cert(ctx)
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        self._srv = srv
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None
