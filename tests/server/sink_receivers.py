"""Receivers the sink tests start: a syslog collector (RFC 5424 over TCP or TLS, octet-counted
frames) and a Splunk HEC-compatible HTTP endpoint. Both real sockets on loopback."""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ipaddress
import json
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    c, k = tmp / "recv.crt", tmp / "recv.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return c, k


def frames(data: bytes) -> list[bytes]:
    """Split octet-counted syslog frames (RFC 6587 3.4.1)."""
    out = []
    while data:
        n, _, rest = data.partition(b" ")
        size = int(n)
        out.append(rest[:size])
        data = rest[size:]
    return out


class SyslogReceiver:
    def __init__(self, port: int, tls: tuple[Path, Path] | None = None) -> None:
        self.messages: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = port
        self.ctx: ssl.SSLContext | None = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(str(tls[0]), str(tls[1]))
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn: socket.socket) -> None:
        try:
            if self.ctx:
                conn = self.ctx.wrap_socket(conn, server_side=True)
            buf = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buf += chunk
            self.messages += frames(buf)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        """Wake the blocked accept() before closing (tests/loopback.py says why)."""
        self._stop = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(10)
        self.sock.close()


class HecReceiver:
    """Accepts what Splunk's /services/collector/event accepts; ``down`` answers 503."""

    def __init__(self, port: int, token: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.down = False
        self.token = token
        recv = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/services/collector/event":
                    return self._reply(404, {"text": "not found", "code": 404})
                if self.headers.get("Authorization") != f"Splunk {recv.token}":
                    return self._reply(401, {"text": "Invalid token", "code": 4})
                if recv.down:
                    return self._reply(503, {"text": "Server is busy", "code": 9})
                dec = json.JSONDecoder()
                text, i, got = body.decode(), 0, []
                while i < len(text):
                    obj, i = dec.raw_decode(text, i)
                    while i < len(text) and text[i].isspace():
                        i += 1
                    if "event" not in obj:
                        return self._reply(400, {"text": "Event field is required", "code": 12})
                    got.append(obj)
                recv.events += got
                self._reply(200, {"text": "Success", "code": 0})

            def _reply(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
