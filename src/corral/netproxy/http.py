"""HTTP/1.1 proxy side: absolute-form forwarding and CONNECT tunnels.

Message framing is h11's, and every request and response is written out again by h11 rather
than passed through as raw bytes: the proxy and the server cannot disagree about where a
message ends, which is what request smuggling needs. The proxy stays stricter than h11 where a
lenient reader could be fooled (CRLF only, no obsolete line folding, no Transfer-Encoding
together with Content-Length, limited head size and header count).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import re
from dataclasses import dataclass, field
from typing import Protocol

import h11

from corral.netproxy.broker import USED, Broker, Leak
from corral.netproxy.gate import Blocked, Gate, NetworkDecision, Target
from corral.netproxy.relay import relay
from corral.netproxy.timeouts import within as _within

_HOP_BY_HOP = {
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization",
    b"proxy-authenticate", b"te", b"trailer", b"transfer-encoding", b"upgrade",
}
# Names a trailer section must not carry (framing, routing, hop-by-hop).
_NOT_TRAILERS = _HOP_BY_HOP | {b"content-length", b"host"}
_HAS_HOST = re.compile(rb"\r\nhost:", re.IGNORECASE)
_QUOTED = re.compile(r":\s*b?['\"].*", re.DOTALL)
_READ = 1 << 18


class Filter(Protocol):
    """A body stream filter (``corral.netproxy.broker``): ``feed`` each chunk (may hold some
    back or raise), ``flush`` at the end, ``value`` for a single header or trailer value."""

    def feed(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...
    def value(self, data: bytes) -> bytes: ...


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


_REASONS = {
    200: "OK", 400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed",
    407: "Proxy Authentication Required", 408: "Request Timeout",
    431: "Request Header Fields Too Large", 501: "Not Implemented", 502: "Bad Gateway",
    504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


def unread(reader: asyncio.StreamReader, data: bytes) -> None:
    """Put bytes back in front of the reader's buffer (StreamReader has no unread())."""
    buf = reader._buffer  # type: ignore[attr-defined]
    buf[0:0] = data


def _why(exc: h11.ProtocolError) -> str:
    """h11's message without the peer's bytes it quotes."""
    return _QUOTED.sub("", str(exc)) or "malformed message"


@dataclass
class Request:
    """One parsed request head and the h11 connection that will answer it."""

    conn: h11.Connection
    event: h11.Request
    synthetic_host: bool = False

    def get(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.event.headers if k == name]


@dataclass
class Upstream:
    """A connection to a server, with the h11 state that frames it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    conn: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))

    def close(self) -> None:
        self.writer.close()


def _tokens(values: list[bytes]) -> set[bytes]:
    return {tok.strip().lower() for v in values for tok in v.split(b",")}


def _check_framing(headers: list[tuple[bytes, bytes]], status: int, who: str) -> bool:
    """Refuse Transfer-Encoding with Content-Length (h11 would let TE win); True if chunked."""
    names = [k for k, _ in headers]
    chunked = b"transfer-encoding" in names
    if chunked and b"content-length" in names:
        raise HttpError(status, f"{who} has both Transfer-Encoding and Content-Length")
    return chunked


async def read_request(
    reader: asyncio.StreamReader, limits: Limits, timeout: float | None
) -> Request | None:
    """Read one request head; None on clean EOF before any byte.

    The head is read up to its blank line and no further, so whatever follows (a body, a
    pipelined request, a tunnel's first bytes) stays in ``reader``.
    """
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
    if raw.count(b"\n") != raw.count(b"\r\n"):
        raise HttpError(400, "malformed head (bare LF)")
    if b"\r\n " in raw or b"\r\n\t" in raw:
        raise HttpError(400, "malformed header (obsolete line folding)")
    synthetic = _HAS_HOST.search(raw) is None
    if synthetic:  # h11 insists on Host; a proxy request names its host in the target
        raw = raw[:-2] + b"Host: \r\n\r\n"
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head)
    conn.receive_data(raw)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        raise HttpError(exc.error_status_hint, f"malformed request: {_why(exc)}") from None
    if not isinstance(event, h11.Request):
        raise HttpError(400, "malformed request")
    if len(event.headers) - synthetic > limits.max_headers:
        raise HttpError(431, "too many headers")
    if event.http_version not in (b"1.0", b"1.1"):
        raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
    _check_framing(list(event.headers), 400, "request")
    return Request(conn, event, synthetic)


async def _next_event(
    conn: h11.Connection, reader: asyncio.StreamReader, timeout: float | None, status: int,
) -> h11.Event:
    """The next h11 event, reading as needed; a framing error becomes HttpError(status)."""
    while True:
        try:
            ev = conn.next_event()
        except h11.RemoteProtocolError as exc:
            who = "request" if status < 500 else "upstream response"
            raise HttpError(status, f"malformed {who}: {_why(exc)}") from None
        if ev is not h11.NEED_DATA:
            assert not isinstance(ev, type)  # PAUSED: never asked for past a message's end
            return ev
        conn.receive_data(await _within(reader.read(_READ), timeout))


async def _pump(
    src: h11.Connection, reader: asyncio.StreamReader, dst: h11.Connection,
    writer: asyncio.StreamWriter, timeout: float | None, status: int, trailers: bool,
    transform: Filter | None = None, head: bytes = b"",
) -> None:
    """Stream one message body from ``src`` to ``dst`` (re-framed), one read at a time,
    through ``transform`` when given. ``head`` (the message's head, already framed) goes out
    with the first chunk that passed ``transform``, so a body refused at once sends nothing."""
    while True:
        ev = await _next_event(src, reader, timeout, status)
        if isinstance(ev, h11.Data):
            if transform is None:
                writer.write(head + (dst.send(ev) or b""))
            else:
                data = transform.feed(bytes(ev.data))
                writer.write(head + (dst.send(h11.Data(data=data)) or b"" if data else b""))
            head = b""
            await writer.drain()
        elif isinstance(ev, h11.EndOfMessage):
            if transform is not None and (tail := transform.flush()):
                head += dst.send(h11.Data(data=tail)) or b""
            keep = [(k, v if transform is None else transform.value(v))
                    for k, v in ev.headers.raw_items()
                    if k.lower() not in _NOT_TRAILERS] if trailers else []
            writer.write(head + (dst.send(h11.EndOfMessage(headers=keep)) or b""))
            return
        else:
            raise ConnectionError("peer closed mid-body")


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
    "credential_exfiltration": "placeholders of brokered credentials only work on their own "
    "hosts; corral attaches the real credential there",
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


Pool = dict[tuple[str, int, bool], Upstream]


def close_pool(pool: Pool) -> None:
    for up in pool.values():
        up.close()
    pool.clear()


class HttpHandler:
    """Serves one client connection: a sequence of proxy requests or one CONNECT tunnel."""

    def __init__(
        self, gate: Gate, limits: Limits, credentials: tuple[str, str] | None = None,
        mitm: object | None = None, broker: Broker | None = None,
    ) -> None:
        self.gate = gate
        self.limits = limits
        self.credentials = credentials
        self.mitm = mitm
        self.broker = broker or None

    def _authorised(self, req: Request) -> bool:
        if self.credentials is None:
            return True
        for v in req.get(b"proxy-authorization"):
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
            await self.serve_requests(reader, writer, client, pool, via=None)
        finally:
            close_pool(pool)

    async def serve_requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str | None,
        pool: Pool, via: Target | None,
    ) -> None:
        """Requests on one client connection until either side ends it (``via``: inside an
        intercepted tunnel to that target)."""
        while True:
            try:
                req = await read_request(reader, self.limits, self.limits.head_timeout)
                if req is None:
                    return
                keep = await self._one(req, reader, writer, client, pool, via)
            except HttpError as exc:
                writer.write(error_response(exc.status, f"corral: network: {exc.text}"))
                await writer.drain()
                return
            except Blocked as b:
                if b.reason in ("connect_failed", "resolve_failed"):
                    writer.write(error_response(502, f"corral: network: {b.detail}",
                                                [("x-corral-block", b.reason)]))
                else:
                    writer.write(blocked_response(b, "http" if via is None else "https"))
                await writer.drain()
                return
            if not keep:
                return

    async def _one(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        client: str | None, pool: Pool, via: Target | None,
    ) -> bool:
        method = req.event.method.decode("ascii")
        try:
            target_s = req.event.target.decode("ascii")
        except UnicodeDecodeError:
            raise HttpError(400, "non-ASCII request target") from None
        if via is not None:
            if not target_s.startswith("/"):
                raise HttpError(400, "requests inside a tunnel must be origin-form (/path)")
            return await self._forward(method, target_s, req, reader, writer, client,
                                       via=via, pool=pool)
        if not self._authorised(req):
            writer.write(error_response(
                407, "corral: network: proxy credentials required",
                [("Proxy-Authenticate", 'Basic realm="corral"')],
            ))
            await writer.drain()
            return False
        if method == "CONNECT":
            await self._connect(target_s, reader, writer, client)
            return False
        return await self._forward(method, target_s, req, reader, writer, client, pool=pool)

    async def _connect(
        self, authority: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        client: str | None,
    ) -> None:
        host, port = split_authority(authority, default_port=None)
        target = await self.gate.authorize(host, port, "https", None, client)
        if target.limited or self.brokered(target):
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

    def brokered(self, target: Target) -> bool:
        """A credential's destination: its HTTPS is intercepted to attach the secret."""
        return self.broker is not None and self.broker.covers(target.host.name, target.port)

    async def intercept_stream(self, target: Target, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter, client: str | None) -> None:
        """TLS from a raw forward (``corral.netproxy.local``) to a brokered destination:
        terminated and served like an intercepted CONNECT."""
        from dataclasses import replace

        from corral.netproxy.mitm import intercept

        await intercept(self, replace(target, protocol="https"), reader, writer, client)

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
        self, method: str, target_s: str, req: Request, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter, client: str | None, *, via: Target | None = None,
        pool: Pool,
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
            host_value = netloc.encode()
        else:
            t = via
            if t.limited:
                self.gate.check_method(t, method, client)
            path = target_s
            given = b"" if req.synthetic_host else req.get(b"host")[0]
            host_value = given or t.host.name.encode()
        ev = req.event
        conn_tokens = _tokens(req.get(b"connection"))
        chunked = bool(req.get(b"transfer-encoding"))
        has_body = chunked or req.get(b"content-length")[:1] not in ([], [b"0"])
        headers = [(b"Host", host_value)]
        for k, v in ev.headers.raw_items():
            lk = k.lower()
            if lk in _HOP_BY_HOP or lk in conn_tokens or lk in (b"host", b"expect"):
                continue
            headers.append((k, v))
        guard: Filter | None = None
        redact: Filter | None = None
        if self.broker is not None:
            path, headers, guard, redact = self._broker_head(t, via is not None, method, path,
                                                             headers, client)
        if chunked:
            headers.append((b"Transfer-Encoding", b"chunked"))
        headers.append((b"Connection", b"keep-alive"))
        try:
            out = h11.Request(method=ev.method, target=path.encode(), headers=headers)
        except h11.LocalProtocolError as exc:
            raise HttpError(400, f"malformed request: {_why(exc)}") from None
        key = (t.host.name, t.port, via is not None)
        up = pool.pop(key, None)
        if up is not None and up.reader.at_eof():
            up.close()
            up = None
        reused = up is not None
        if up is None:
            up = await self._open_upstream(t, via, client)
        if has_body and req.conn.they_are_waiting_for_100_continue:
            writer.write(req.conn.send(
                h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")) or b"")
        pooled = False
        try:
            try:
                resp = await self._exchange(up, out, req, reader, writer, chunked, guard)
            except (ConnectionError, asyncio.IncompleteReadError, HttpError):
                if not reused or has_body:
                    raise
                up.close()  # a kept-alive upstream went stale: one fresh try, no body to redo
                up = await self._open_upstream(t, via, client)
                resp = await self._exchange(up, out, req, reader, writer, chunked, guard)
            resp_tokens = _tokens([v for k, v in resp.headers if k == b"connection"])
            resp_chunked = _check_framing(list(resp.headers), 502, "upstream response")
            back = [(k, v if redact is None else redact.value(v))
                    for k, v in resp.headers.raw_items()
                    if k.lower() not in _HOP_BY_HOP and k.lower() not in resp_tokens]
            if resp_chunked:
                back.append((b"Transfer-Encoding", b"chunked"))
            writer.write(req.conn.send(h11.Response(
                status_code=resp.status_code, headers=back, reason=resp.reason)) or b"")
            await _pump(up.conn, up.reader, req.conn, writer, self.limits.idle_timeout, 502,
                        trailers=resp_chunked and ev.http_version == b"1.1", transform=redact)
            await writer.drain()
            keep = req.conn.our_state is h11.DONE and req.conn.their_state is h11.DONE
            if (keep and up.conn.our_state is h11.DONE and up.conn.their_state is h11.DONE
                    and not up.conn.trailing_data[0]):
                up.conn.start_next_cycle()
                pool[key] = up
                pooled = True
            return keep
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError,
                asyncio.LimitOverrunError) as exc:
            raise HttpError(502, f"upstream error: {type(exc).__name__}") from None
        except h11.LocalProtocolError as exc:  # what the upstream sent cannot be re-framed
            raise HttpError(502, f"upstream response: {_why(exc)}") from None
        except Leak as lk:  # a placeholder in the body: the rest never reaches the server
            raise self.gate.leak(t, method, client, lk.credential.name, lk.credential.hosts,
                                 lk.where) from None
        finally:
            if not pooled:
                up.close()

    def _broker_head(
        self, t: Target, tls: bool, method: str, path: str, headers: list[tuple[bytes, bytes]],
        client: str | None,
    ) -> tuple[str, list[tuple[bytes, bytes]], Filter | None, Filter | None]:
        """The credential broker on one request head: secrets attached for their own
        destination (one journaled decision naming them), placeholders anywhere else refused;
        the request body's guard and the response's redactor."""
        assert self.broker is not None
        host, port = t.host.name, t.port
        ob = self.broker.outbound(host, port, path, headers, tls)
        if ob.leaked is not None:
            raise self.gate.leak(t, method, client, ob.leaked.name, ob.leaked.hosts, ob.where)
        if ob.used:
            self.gate.emit(NetworkDecision(host, port, t.protocol, method, "allow",
                                           f"broker:{','.join(ob.used)}", USED, client))
        redact = self.broker.redactor(host, port, ob.injected) if tls else None
        return ob.target, ob.headers, self.broker.body_guard(host, port, tls), redact

    async def _exchange(
        self, up: Upstream, out: h11.Request, req: Request, reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter, chunked: bool, guard: Filter | None = None,
    ) -> h11.Response:
        """Send the request (head and body) and return the final response head."""
        head = up.conn.send(out) or b""
        if guard is None:
            up.writer.write(head)
            head = b""
        await _pump(req.conn, reader, up.conn, up.writer, self.limits.idle_timeout, 400,
                    trailers=chunked, transform=guard, head=head)
        left, _closed = req.conn.trailing_data
        if left:  # the next pipelined request, read along with the body
            unread(reader, bytes(left))
        await up.writer.drain()
        while True:
            ev = await _next_event(up.conn, up.reader, self.limits.idle_timeout, 502)
            if isinstance(ev, h11.Response):
                if len(ev.headers) > self.limits.max_headers:
                    raise HttpError(502, "upstream response has too many headers")
                return ev
            if isinstance(ev, h11.InformationalResponse):  # interim (1xx) responses are relayed
                if ev.status_code == 101:
                    raise HttpError(502, "protocol upgrades are not supported through the proxy")
                info = [(k, v) for k, v in ev.headers.raw_items()
                        if k.lower() not in _HOP_BY_HOP]
                writer.write(req.conn.send(h11.InformationalResponse(
                    status_code=ev.status_code, headers=info, reason=ev.reason)) or b"")
                continue
            raise HttpError(502, "upstream closed without a response")

    async def _open_upstream(self, t: Target, via: Target | None, client: str | None) -> Upstream:
        if via is None:
            r, w = await self.gate.open(t, client)
        else:
            from corral.netproxy.mitm import open_tls_upstream

            r, w = await open_tls_upstream(self, t, client)
        return Upstream(r, w, h11.Connection(h11.CLIENT, max_incomplete_event_size=self.limits.max_head))
