"""Push sinks: the server sends the log to a SIEM itself, each sink from its own durable cursor.

Kinds (config.toml ``[[sinks]]``, docs/compliance-api.md):
- ``syslog``: RFC 5424 messages over TCP, or TLS (RFC 5425), framed by octet counting
  (RFC 6587); the message is the event as JSON, in OCSF or ECS, or a CEF record;
- ``hec``: Splunk's HTTP Event Collector wire format (``POST /services/collector/event``,
  ``Authorization: Splunk <token>``, events concatenated);
- ``file``: the compliance log files, copied as they are cut into a directory.

A sink sends a batch, and only when the receiver accepted all of it moves its cursor (a file
under ``DATA/sinks/``, replaced atomically). A receiver that is down is retried with backoff from
the same cursor: nothing is lost, and at most the last batch is sent twice (every event carries
its ``id``). Run sinks on one replica: each process with sinks configured sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import socket
import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from corral.server import compliance, formats
from corral.server.store.base import Scan, Store

KINDS = ("syslog", "hec", "file")
PAYLOADS = ("json", "ocsf", "ecs", "cef")


class SinkError(Exception):
    pass


@dataclass(frozen=True)
class SinkConfig:
    name: str
    kind: str
    url: str = ""  # syslog: tcp://host:port or tls://host:port; hec: https://host:8088
    payload: str = "json"
    token: str = ""  # hec
    token_env: str = ""  # hec: read the token from this environment variable at start
    ca_file: str = ""  # tls / https: a private CA
    directory: str = ""  # file
    event_types: tuple[str, ...] = ()
    batch: int = 500
    interval: float = 1.0
    max_backoff: float = 30.0
    extra: dict[str, Any] = field(default_factory=dict)


def parse(doc: list[Any]) -> list[SinkConfig]:
    """``[[sinks]]`` tables to configs; a bad one stops the server with the reason."""
    out = []
    for i, t in enumerate(doc):
        if not isinstance(t, dict):
            raise ValueError(f"sinks[{i}] must be a table")
        name = str(t.get("name") or "")
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise ValueError(f"sinks[{i}]: name must be letters, digits, '-' or '_'")
        kind = str(t.get("type") or "")
        if kind not in KINDS:
            raise ValueError(f"sink {name}: type must be one of {', '.join(KINDS)}")
        payload = str(t.get("payload", "json"))
        if payload not in PAYLOADS or (payload == "cef" and kind != "syslog"):
            raise ValueError(f"sink {name}: payload {payload} is not available for {kind}")
        token = str(t.get("token") or "")
        token_env = str(t.get("token_env") or "")
        cfg = SinkConfig(name, kind, str(t.get("url") or ""), payload, token, token_env,
                         str(t.get("ca_file") or ""), str(t.get("directory") or ""),
                         tuple(str(x) for x in t.get("event_types", [])),
                         int(t.get("batch", 500)), float(t.get("interval", 1.0)),
                         float(t.get("max_backoff", 30.0)))
        if kind == "syslog" and not cfg.url.startswith(("tcp://", "tls://")):
            raise ValueError(f"sink {name}: url must be tcp://HOST:PORT or tls://HOST:PORT")
        if kind == "hec" and (not cfg.url.startswith(("http://", "https://")) or
                              not (token or token_env)):
            raise ValueError(f"sink {name}: needs an http(s):// url and a token (or token_env)")
        if kind == "file" and not cfg.directory:
            raise ValueError(f"sink {name}: needs a directory")
        if not 1 <= cfg.batch <= 10_000:
            raise ValueError(f"sink {name}: batch must be 1..10000")
        out.append(cfg)
    return out


class Cursor:
    """A sink's position, durable: written to a temp file, fsynced, renamed over the old."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> int:
        try:
            return int(self.path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0

    def save(self, value: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as fh:
            fh.write(f"{value}\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)


# -- encodings ------------------------------------------------------------------------------

def _rfc3339(ns: int) -> str:
    dt = datetime.datetime.fromtimestamp(ns // 10**9, datetime.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{(ns % 10**9) // 1000:06d}Z"


def _hdr(s: str, n: int) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, at most n, or '-'."""
    s = "".join(c for c in s if 33 <= ord(c) <= 126)[:n]
    return s or "-"


def _cef_h(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def _cef_v(s: str) -> str:
    return (s.replace("\\", "\\\\").replace("=", "\\=").replace("\n", "\\n")
            .replace("\r", "\\r"))


def cef(doc: dict[str, Any]) -> str:
    v = formats.view(doc)
    a = v["attributes"]
    decision = str(a.get("agent.decision") or a.get("network.policy.decision") or "")
    sev = 3 if decision and decision not in formats.ALLOWED else 1
    ext = {"rt": str(int(v["time_unix_nano"]) // 10**6), "externalId": str(v["id"]),
           "cn1Label": "seq", "cn1": str(v["seq"]), "deviceExternalId": str(v["device"])}
    for key, val in (("suser", v.get("user")), ("shost", v.get("host")),
                     ("act", decision), ("dhost", a.get("server.address")),
                     ("dpt", a.get("server.port")), ("cs1", v.get("session_id")),
                     ("cs2", a.get("gen_ai.tool.name")),
                     ("cs3", a.get("process.command_line"))):
        if val not in (None, ""):
            if key.startswith("cs"):
                ext[key + "Label"] = {"cs1": "session", "cs2": "tool", "cs3": "command"}[key]
            ext[key] = str(val)
    name = str(v["name"])
    return (f"CEF:0|corral|corral|1|{_cef_h(name)}|{_cef_h(name)}|{sev}|" +
            " ".join(f"{k}={_cef_v(x)}" for k, x in ext.items()))


def syslog_frame(doc: dict[str, Any], leaf: bytes, payload: str) -> bytes:
    """One RFC 5424 message, octet-counted (RFC 6587 / RFC 5425)."""
    v = formats.view(doc)
    a = v["attributes"]
    decision = str(a.get("agent.decision") or a.get("network.policy.decision") or "")
    severity = 4 if decision and decision not in formats.ALLOWED else 6
    pri = 16 * 8 + severity  # facility local0
    msg = (cef(doc).encode() if payload == "cef" else
           b"\n".join(formats.encode(leaf, payload, doc)))
    head = (f"<{pri}>1 {_rfc3339(int(v['time_unix_nano']))} "
            f"{_hdr(str(v.get('host') or v.get('device') or ''), 255)} corral - "
            f"{_hdr(str(v['name']), 32)} - ").encode()
    body = head + msg
    return str(len(body)).encode() + b" " + body


def hec_body(rows: list[tuple[int, bytes]], payload: str) -> bytes:
    parts = []
    for _, leaf in rows:
        doc = json.loads(leaf)
        v = formats.view(doc)
        for e in formats.encode(leaf, payload, doc):
            parts.append(b'{"time":%.6f,"host":%s,"source":"corral","sourcetype":"corral:%s",'
                         b'"event":%s}' % (int(v["time_unix_nano"]) / 1e9,
                                           json.dumps(str(v.get("host") or v["device"]))
                                           .encode(), payload.encode(), e))
    return b"".join(parts)


# -- transports -----------------------------------------------------------------------------

def _ssl_context(ca_file: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def send_syslog(cfg: SinkConfig, frames: list[bytes]) -> None:
    scheme, rest = cfg.url.split("://", 1)
    host, _, port = rest.rpartition(":")
    try:
        raw = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
    except (OSError, ValueError) as exc:
        raise SinkError(f"cannot connect to {cfg.url}: {exc}") from exc
    try:
        sock: socket.socket = raw
        if scheme == "tls":
            sock = _ssl_context(cfg.ca_file).wrap_socket(raw, server_hostname=host.strip("[]"))
        sock.sendall(b"".join(frames))
        # TCP acknowledges nothing: a clean close after the receiver read everything is the
        # best syslog offers, so shut down writing and wait for its close
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        while sock.recv(4096):
            pass
    except (OSError, ssl.SSLError) as exc:
        raise SinkError(f"{cfg.url}: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            raw.close()


def send_hec(cfg: SinkConfig, client: httpx.Client, body: bytes) -> None:
    url = cfg.url.rstrip("/") + "/services/collector/event"
    try:
        r = client.post(url, content=body, headers={"Authorization": f"Splunk {cfg.token}"})
    except httpx.HTTPError as exc:
        raise SinkError(f"{url}: {exc}") from exc
    if r.status_code != 200:
        raise SinkError(f"{url}: HTTP {r.status_code} {r.text[:200]}")


class Sink:
    """One sink's loop: read from the cursor, send, then advance the cursor."""

    def __init__(self, cfg: SinkConfig, data: Path, store: Store) -> None:
        if cfg.kind == "hec" and not cfg.token:
            tok = os.environ.get(cfg.token_env, "")
            if not tok:
                raise SinkError(f"sink {cfg.name}: environment variable {cfg.token_env} is "
                                "not set")
            cfg = replace(cfg, token=tok)
        self.cfg = cfg
        self.store = store
        self.cursor = Cursor(data / "sinks" / f"{cfg.name}.cursor")
        self.sent = 0
        self.failures = 0
        self.last_error = ""
        verify: ssl.SSLContext | bool = _ssl_context(cfg.ca_file) if cfg.ca_file else True
        self._http = httpx.Client(timeout=30, verify=verify) if cfg.kind == "hec" else None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def step(self) -> int:
        """Send one batch; returns how many events (or files) went out."""
        if self.cfg.kind == "file":
            return self._files()
        after = self.cursor.load()
        head = self.store.head()[0]
        if after >= head:
            return 0
        rows = self.store.scan(Scan(after, head, self.cfg.batch, self.cfg.event_types))
        if not rows:
            self.cursor.save(head)
            return 0
        if self.cfg.kind == "syslog":
            send_syslog(self.cfg, [syslog_frame(json.loads(leaf), leaf, self.cfg.payload)
                                   for _, leaf in rows])
        else:
            assert self._http is not None
            send_hec(self.cfg, self._http, hec_body(rows, self.cfg.payload))
        # nothing matched between the last row and the batch's end: skip past it next time
        last = rows[-1][0] if len(rows) == self.cfg.batch else head
        self.cursor.save(last)
        self.sent += len(rows)
        return len(rows)

    def _files(self) -> int:
        after_ns = self.cursor.load()
        page, _ = compliance.listing(self.store, None, after_ns, 100)
        if self.cfg.event_types:
            page_send = [f for f in page if f.event_type in self.cfg.event_types]
        else:
            page_send = page
        d = Path(self.cfg.directory)
        try:
            d.mkdir(parents=True, exist_ok=True)
            for f in page_send:
                body = compliance.render(self.store, f)
                tmp = d / f".{f.id}.jsonl.tmp"
                with open(tmp, "wb") as fh:
                    fh.write(body)
                    fh.flush()
                    os.fsync(fh.fileno())
                tmp.replace(d / f"{f.id}.jsonl")
        except OSError as exc:
            raise SinkError(f"{d}: {exc}") from exc
        if page:
            self.cursor.save(page[-1].end_ns)
        self.sent += len(page_send)
        return len(page_send)

    async def run(self) -> None:
        backoff = self.cfg.interval
        while True:
            try:
                n = await asyncio.to_thread(self.step)
                backoff = self.cfg.interval
                if n:
                    continue  # catching up: the next batch at once
            except SinkError as exc:
                self.failures += 1
                self.last_error = str(exc)
                backoff = min(self.cfg.max_backoff, max(backoff * 2, self.cfg.interval))
            await asyncio.sleep(backoff)
