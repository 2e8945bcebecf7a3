"""HTTP/1.1 proxy side: absolute-form forwarding and CONNECT tunnels, with strict parsing.

Parsing is deliberately strict (CRLF only, no obs-fold, one framing header, limited sizes): a
proxy that is lenient where the server is strict invites request smuggling.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
from dataclasses import dataclass

from corral.netproxy.gate import Blocked, Gate, Target
from corral.netproxy.relay import relay
from corral.netproxy.timeouts import within as _within

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HOP_BY_HOP = {
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization",
    b"proxy-authenticate", b"te", b"trailer", b"transfer-encoding", b"upgrade",
}


class HttpError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True)
class Limits:
    """Sizes and timeouts that keep hostile clients from holding resources."""

    max_head: int = 64 * 1024
    max_headers: int = 100
    head_timeout: float = 10.0
    idle_timeout: float | None = 300.0  # bodies and tunnels that move nothing; None: no limit


@dataclass
class Head:
    start: tuple[bytes, bytes, bytes]
    headers: list[tuple[bytes, bytes]]

    def get(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]


_REASONS = {
    200: "OK", 400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed",
    407: "Proxy Authentication Required", 408: "Request Timeout",
    431: "Request Header Fields Too Large", 501: "Not Implemented", 502: "Bad Gateway",
    504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


async def read_head(
    reader: asyncio.StreamReader, limits: Limits, timeout: float | None
) -> Head | None:
    """Read one message head; None on clean EOF before any byte."""
    try:
        raw = await _within(reader.readuntil(b"\r\n\r\n"), timeout)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise HttpError(400, "incomplete request head") from None
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request head over the size limit") from None
    except TimeoutError:
        raise HttpError(408, "request head not received in time") from None
    lines = raw[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not all(parts):
        raise HttpError(400, "malformed start line")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if not line or line[:1] in (b" ", b"\t"):
            raise HttpError(400, "malformed header (obsolete line folding)")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name) or b"\n" in value or b"\r" in value or b"\0" in value:
            raise HttpError(400, "malformed header")
        headers.append((name, value.strip(b" \t")))
    if len(headers) > limits.max_headers:
        raise HttpError(431, "too many headers")
    return Head((parts[0], parts[1], parts[2]), headers)


def _framing(head: Head, is_request: bool) -> tuple[str, int]:
    """('chunked', 0) | ('length', n) | ('none', 0) | ('close', 0)."""
    te = head.get(b"transfer-encoding")
    cl = head.get(b"content-length")
    if te:
        if cl:
            raise HttpError(400, "both Transfer-Encoding and Content-Length")
        if len(te) != 1 or te[0].strip().lower() != b"chunked":
            raise HttpError(501, "unsupported Transfer-Encoding")
        return "chunked", 0
    if cl:
        values = {v.strip() for v in b",".join(cl).split(b",")}
        if len(values) != 1:
            raise HttpError(400, "conflicting Content-Length")
        v = values.pop()
        if not v.isdigit() or len(v) > 18:
            raise HttpError(400, "bad Content-Length")
        return "length", int(v)
    return ("none", 0) if is_request else ("close", 0)


async def _copy_exact(
    r: asyncio.StreamReader, w: asyncio.StreamWriter, n: int, t: float | None
) -> None:
    while n > 0:
        chunk = await _within(r.read(min(n, 1 << 18)), t)
        if not chunk:
            raise ConnectionError("peer closed mid-body")
        w.write(chunk)
        n -= len(chunk)
        await w.drain()


async def _copy_chunked(r: asyncio.StreamReader, w: asyncio.StreamWriter, t: float | None) -> None:
    while True:
        line = await _within(r.readuntil(b"\r\n"), t)
        size_text = line[:-2].split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 16 or any(
            c not in b"0123456789abcdefABCDEF" for c in size_text
        ):
            raise HttpError(400, "bad chunk size")
        size = int(size_text, 16)
        w.write(line)
        if size == 0:
            while True:  # trailers, then the empty line
                trailer = await _within(r.readuntil(b"\r\n"), t)
                w.write(trailer)
                if trailer == b"\r\n":
                    await w.drain()
                    return
        await _copy_exact(r, w, size + 2, t)


async def _copy_body(
    r: asyncio.StreamReader, w: asyncio.StreamWriter, framing: tuple[str, int], t: float | None
) -> None:
    kind, n = framing
    if kind == "length":
        await _copy_exact(r, w, n, t)
    elif kind == "chunked":
        await _copy_chunked(r, w, t)
    elif kind == "close":
        while chunk := await _within(r.read(1 << 18), t):
            w.write(chunk)
            await w.drain()


def split_authority(netloc: str, default_port: int | None) -> tuple[str, int]:
    """``host[:port]`` or ``[v6]:port`` into (host, port); a missing port needs a default."""
    if netloc.startswith("["):
        end = netloc.find("]")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            raise HttpError(400, "malformed IPv6 authority")
        port_s = rest[1:] if rest else ""
    else:
        host, sep, port_s = netloc.rpartition(":")
        if not sep:
            host, port_s = netloc, ""
    if not host:
        raise HttpError(400, "request target needs a host")
    if not port_s:
        if default_port is None:
            raise HttpError(400, "CONNECT target must be host:port")
        return host, default_port
    if not (port_s.isascii() and port_s.isdigit()) or len(port_s) > 5:
        raise HttpError(400, "bad port in request target")
    return host, int(port_s)


def error_response(status: int, text: str, extra: list[tuple[str, str]] | None = None) -> bytes:
    body = (text.rstrip("\n") + "\n").encode()
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    lines += [f"{k}: {v}" for k, v in extra or []]
    lines += ["Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(body)}",
              "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


_HINTS = {
    "denied": "the policy denies this host; ask the user if it is really needed",
    "not_allowed": "ask the user to approve {host} or add it to [network] domains",
    "not_allowed_managed": "only admin-managed domains are allowed; ask your admin",
    "not_allowed_local": "private and local addresses need an allow_local entry (host:port)",
    "method_not_allowed": "this host is read-only (limited mode): use GET, HEAD or OPTIONS",
    "mitm_required": "limited mode needs HTTPS interception; ask the user to enable it",
    "bad_port": "this port is not allowed",
}


def blocked_response(b: Blocked, protocol: str) -> bytes:
    text = (
        f"corral: network: {b.protocol or protocol} to {b.host}:{b.port} was blocked: "
        f"{b.detail} (reason {b.reason})."
    )
    hint = _HINTS.get(b.reason)
    if hint:
        text += " " + hint.format(host=b.host) + "."
    return error_response(403, text, [("x-corral-block", b.reason)])


Pool = dict[tuple[str, int, bool], tuple[asyncio.StreamReader, asyncio.StreamWriter]]


def close_pool(pool: Pool) -> None:
    for _r, w in pool.values():
        w.close()
    pool.clear()


class HttpHandler:
    """Serves one client connection: a sequence of proxy requests or one CONNECT tunnel."""

    def __init__(
        self, gate: Gate, limits: Limits, credentials: tuple[str, str] | None = None,
        mitm: object | None = None,
    ) -> None:
        self.gate = gate
        self.limits = limits
        self.credentials = credentials
        self.mitm = mitm

    def _authorised(self, head: Head) -> bool:
        if self.credentials is None:
            return True
        for v in head.get(b"proxy-authorization"):
            scheme, _, token = v.partition(b" ")
            if scheme.lower() != b"basic":
                continue
            try:
                got = base64.b64decode(token.strip(), validate=True)
            except ValueError:
                return False
            want = f"{self.credentials[0]}:{self.credentials[1]}".encode()
            return hmac.compare_digest(got, want)
        return False

    async def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str | None
    ) -> None:
        pool: Pool = {}
        try:
            await self._serve(reader, writer, client, pool)
        finally:
            close_pool(pool)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str | None,
        pool: Pool,
    ) -> None:
        timeout = self.limits.head_timeout
        while True:
            try:
                head = await read_head(reader, self.limits, timeout)
                if head is None:
                    return
                keep = await self._one(head, reader, writer, client, pool)
            except HttpError as exc:
                writer.write(error_response(exc.status, f"corral: network: {exc.text}"))
                await writer.drain()
                return
            except Blocked as b:
                if b.reason in ("connect_failed", "resolve_failed"):
                    writer.write(error_response(502, f"corral: network: {b.detail}",
                                                [("x-corral-block", b.reason)]))
                else:
                    writer.write(blocked_response(b, "http"))
                await writer.drain()
                return
            if not keep:
                return

    async def _one(
        self, head: Head, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        client: str | None, pool: Pool,
    ) -> bool:
        method_b, target_b, version = head.start
        if not _TOKEN.match(method_b):
            raise HttpError(400, "malformed method")
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        if not self._authorised(head):
            writer.write(error_response(
                407, "corral: network: proxy credentials required",
                [("Proxy-Authenticate", 'Basic realm="corral"')],
            ))
            await writer.drain()
            return False
        method = method_b.decode("ascii")
        try:
            target_s = target_b.decode("ascii")
        except UnicodeDecodeError:
            raise HttpError(400, "non-ASCII request target") from None
        if method == "CONNECT":
            await self._connect(target_s, reader, writer, client)
            return False
        return await self._forward(method, target_s, head, reader, writer, client, pool=pool)

    async def _connect(
        self, authority: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        client: str | None,
    ) -> None:
        host, port = split_authority(authority, default_port=None)
        target = await self.gate.authorize(host, port, "https", None, client)
        if target.limited:
            await self._intercept(target, reader, writer, client)
            return
        try:
            up_r, up_w = await self.gate.open(target, client)
        except Blocked as b:
            writer.write(blocked_response(b, "https") if b.reason != "connect_failed"
                         else error_response(502, f"corral: network: {b.detail}"))
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await relay(reader, writer, up_r, up_w, self.limits.idle_timeout)

    async def _intercept(
        self, target: Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        client: str | None,
    ) -> None:
        from corral.netproxy.mitm import intercept

        if self.mitm is None:  # gate refuses limited CONNECT without MITM; belt and braces
            raise Blocked("mitm_required", target.host.name, target.port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await intercept(self, target, reader, writer, client)

    async def _forward(
        self, method: str, target_s: str, head: Head, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter, client: str | None, *, via: Target | None = None,
        pool: Pool | None = None,
    ) -> bool:
        if via is None:
            if not target_s.lower().startswith("http://"):
                if target_s.lower().startswith("https://"):
                    raise HttpError(400, "use CONNECT for https:// URLs")
                raise HttpError(400, "this is a proxy: send absolute-form http:// requests")
            rest = target_s[7:]
            cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
            netloc, path = rest[:cut], rest[cut:] or "/"
            if path.startswith("?"):
                path = "/" + path
            if "@" in netloc:
                raise HttpError(400, "request URL must not carry credentials")
            host, port = split_authority(netloc, default_port=80)
            t = await self.gate.authorize(host, port, "http", method, client)
        else:
            t = via
            self.gate.check_method(t, method, client)
            netloc, path = "", target_s
        req_framing = _framing(head, is_request=True)
        version = head.start[2]
        conn_tokens = {
            tok.strip().lower() for v in head.get(b"connection") for tok in v.split(b",")
        }
        client_keep = (version == b"HTTP/1.1" and b"close" not in conn_tokens) or (
            version == b"HTTP/1.0" and b"keep-alive" in conn_tokens
        )
        expect = [v.lower() for v in head.get(b"expect")]
        out = [f"{method} {path} HTTP/1.1".encode()]
        host_value = netloc.encode() if netloc else (head.get(b"host") or [b""])[0]
        out.append(b"Host: " + host_value)
        for k, v in head.headers:
            lk = k.lower()
            if lk in _HOP_BY_HOP or lk in conn_tokens or lk in (b"host", b"expect"):
                continue
            out.append(k + b": " + v)
        if req_framing[0] == "chunked":
            out.append(b"Transfer-Encoding: chunked")
        out.append(b"Connection: keep-alive" if pool is not None else b"Connection: close")
        payload = b"\r\n".join(out) + b"\r\n\r\n"
        key = (t.host.name, t.port, via is not None)
        up = pool.pop(key, None) if pool is not None else None
        if up is not None and up[0].at_eof():
            up[1].close()
            up = None
        reused = up is not None
        if up is None:
            up = await self._open_upstream(t, via, client)
        if b"100-continue" in expect and req_framing[0] != "none":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        pooled = False
        try:
            try:
                resp = await self._exchange(up, payload, reader, req_framing, writer)
            except (ConnectionError, asyncio.IncompleteReadError, HttpError):
                if not reused or req_framing[0] != "none":
                    raise
                up[1].close()  # a kept-alive upstream went stale: one fresh try, no body to redo
                up = await self._open_upstream(t, via, client)
                resp = await self._exchange(up, payload, reader, req_framing, writer)
            status = resp.start[1]
            if status == b"101":
                raise HttpError(502, "protocol upgrades are not supported through the proxy")
            no_body = method == "HEAD" or status in (b"204", b"304")
            framing = ("none", 0) if no_body else _framing(resp, is_request=False)
            keep = client_keep and framing[0] != "close"
            writer.write(_emit_head(resp, keep, chunked=framing[0] == "chunked"))
            await _copy_body(up[0], writer, framing, self.limits.idle_timeout)
            await writer.drain()
            resp_tokens = {
                tok.strip().lower() for v in resp.get(b"connection") for tok in v.split(b",")
            }
            if (keep and pool is not None and framing[0] != "close"
                    and resp.start[0] == b"HTTP/1.1" and b"close" not in resp_tokens):
                pool[key] = up
                pooled = True
            return keep
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError,
                asyncio.LimitOverrunError) as exc:
            raise HttpError(502, f"upstream error: {type(exc).__name__}") from None
        finally:
            if not pooled:
                up[1].close()

    async def _exchange(
        self, up: tuple[asyncio.StreamReader, asyncio.StreamWriter], payload: bytes,
        reader: asyncio.StreamReader, req_framing: tuple[str, int], writer: asyncio.StreamWriter,
    ) -> Head:
        """Send the request (head and body) and return the final response head."""
        up_r, up_w = up
        up_w.write(payload)
        await _copy_body(reader, up_w, req_framing, self.limits.idle_timeout)
        await up_w.drain()
        while True:
            resp = await read_head(up_r, self.limits, self.limits.idle_timeout)
            if resp is None:
                raise HttpError(502, "upstream closed without a response")
            status = resp.start[1]
            if not status.startswith(b"1") or status == b"101":
                return resp
            writer.write(_emit_head(resp, keep=None))  # interim (1xx) responses are relayed

    async def _open_upstream(
        self, t: Target, via: Target | None, client: str | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if via is None:
            return await self.gate.open(t, client)
        return await self._mitm_upstream(t, client)

    async def _mitm_upstream(
        self, target: Target, client: str | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        from corral.netproxy.mitm import open_tls_upstream

        return await open_tls_upstream(self, target, client)


def _emit_head(resp: Head, keep: bool | None, chunked: bool = False) -> bytes:
    parts = [b" ".join(resp.start)]
    conn_tokens = {t.strip().lower() for v in resp.get(b"connection") for t in v.split(b",")}
    for k, v in resp.headers:
        lk = k.lower()
        if lk in _HOP_BY_HOP or lk in conn_tokens:
            continue
        parts.append(k + b": " + v)
    if chunked:
        parts.append(b"Transfer-Encoding: chunked")
    if keep is not None:
        parts.append(b"Connection: keep-alive" if keep else b"Connection: close")
    return b"\r\n".join(parts) + b"\r\n\r\n"
