"""Framing the proxy passes on: a server behind it only ever sees messages the proxy framed.

A raw recording server stands upstream, so the tests see the exact bytes the proxy sends. The
bodies here are the ones a lenient server could read differently from the proxy (the gap that
request smuggling uses, e.g. to get a POST past limited mode inside a GET's body).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.netproxy import PolicyInputs

from .conftest import ProxyFactory, local
from .test_hostile import exchange

CANNED = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Recorder:
    """Loopback server that records every byte per connection and answers each head it sees
    with ``reply`` (once per head)."""

    def __init__(self, reply: bytes = CANNED) -> None:
        self.reply = reply
        self.received: list[bytes] = []
        self.proxy_port: int | None = None  # a proxy in front of it, shared across examples
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c: socket.socket) -> None:
        idx = len(self.received)
        self.received.append(b"")
        answered = 0
        c.settimeout(5)
        with c:
            try:
                while chunk := c.recv(65536):
                    self.received[idx] += chunk
                    while self.received[idx].count(b"\r\n\r\n") > answered:
                        answered += 1
                        c.sendall(self.reply)
            except OSError:
                pass

    def all(self) -> bytes:
        time.sleep(0.2)  # let the proxy's last writes land
        return b"".join(self.received)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.close()


def _post(port: int, body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST http://127.0.0.1:%d/u HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s"
            b"Transfer-Encoding: chunked\r\n\r\n%s" % (port, port, extra, body))


# (chunked body, bytes the upstream must never see)
BAD_BODIES = [
    # chunk data not followed by CRLF: a server that skips to the next line reads "0\r\n..."
    # as part of this chunk's footer and the next bytes as a new request
    (b"5\r\nhelloXX0\r\n\r\n", b"helloXX"),
    (b"5\r\nhello\n0\r\n\r\n", b"hello\n0"),
    # bare LF inside a chunk-size line: a server splitting on LF sees a different chunk size
    (b"5;a\nb\r\nhello\r\n0\r\n\r\n", b"5;a\nb"),
    # a trailer that is not a header line
    (b"5\r\nhello\r\n0\r\nGET /smuggled HTTP/1.1\r\n\r\n", b"GET /smuggled"),
]


@pytest.mark.parametrize(("body", "never"), BAD_BODIES)
def test_malformed_chunked_body_is_refused_not_passed_on(
    body: bytes, never: bytes, recorder: Recorder, make_proxy: ProxyFactory
) -> None:
    proxy, _ = make_proxy(local(recorder.port))
    assert proxy.endpoints and proxy.endpoints.http
    out = exchange(proxy.endpoints.http[1], _post(recorder.port, body), timeout=5)
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    assert b"corral: network: malformed request" in out
    assert never not in recorder.all()


def test_chunked_body_is_reframed_and_framing_trailers_dropped(
    recorder: Recorder, make_proxy: ProxyFactory
) -> None:
    proxy, _ = make_proxy(local(recorder.port))
    assert proxy.endpoints and proxy.endpoints.http
    body = (b"5;ext=1\r\nhello\r\n0\r\nX-Sum: 1\r\nContent-Length: 99\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    out = exchange(proxy.endpoints.http[1], _post(recorder.port, body, b"Connection: close\r\n"))
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"ok"), out
    seen = recorder.all()
    head, _, sent = seen.partition(b"\r\n\r\n")
    assert sent == b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"  # extension and framing trailers gone
    assert head.lower().count(b"transfer-encoding") == 1


def test_pipelined_requests_after_a_body_are_each_answered(
    recorder: Recorder, make_proxy: ProxyFactory
) -> None:
    # Reading a body may read into the next request; that request must still be served.
    proxy, _ = make_proxy(local(recorder.port))
    assert proxy.endpoints and proxy.endpoints.http
    p = recorder.port
    reqs = (b"POST http://127.0.0.1:%d/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"GET http://127.0.0.1:%d/b HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET http://127.0.0.1:%d/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            % (p, p, p))
    out = exchange(proxy.endpoints.http[1], reqs)
    assert out.count(b"HTTP/1.1 200 ") == 3, out
    seen = recorder.all()
    assert [seen.index(x) for x in (b"POST /a ", b"GET /b ", b"GET /c ")] == sorted(
        seen.index(x) for x in (b"POST /a ", b"GET /b ", b"GET /c "))
    assert b"\r\n\r\nabcGET /b" in seen


def test_upgrade_is_not_passed_upstream(recorder: Recorder, make_proxy: ProxyFactory) -> None:
    proxy, _ = make_proxy(local(recorder.port))
    assert proxy.endpoints and proxy.endpoints.http
    req = (b"GET http://127.0.0.1:%d/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\n"
           b"Upgrade: websocket\r\n\r\n" % recorder.port)
    out = exchange(proxy.endpoints.http[1], req)
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"ok"), out
    assert b"upgrade" not in recorder.all().lower()


UPSTREAM_CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n7\r\n chunks\r\n0\r\n\r\n")


def test_http10_client_gets_no_chunked_response(make_proxy: ProxyFactory) -> None:
    # HTTP/1.0 has no chunked coding: the body must reach a 1.0 client unframed, ended by close.
    rec = Recorder(UPSTREAM_CHUNKED)
    try:
        proxy, _ = make_proxy(local(rec.port))
        assert proxy.endpoints and proxy.endpoints.http
        out = exchange(proxy.endpoints.http[1],
                       b"GET http://127.0.0.1:%d/ HTTP/1.0\r\n\r\n" % rec.port)
    finally:
        rec.close()
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"transfer-encoding" not in head.lower(), out
    assert body == b"hello chunks"


@pytest.mark.parametrize(("reply", "want"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "502"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok", "502"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n", "cut"),
])
def test_ambiguous_upstream_response_is_refused(
    reply: bytes, want: str, make_proxy: ProxyFactory
) -> None:
    rec = Recorder(reply)
    try:
        proxy, _ = make_proxy(PolicyInputs(domains={"127.0.0.1": "allow"},
                                           allow_local=[f"127.0.0.1:{rec.port}"]))
        assert proxy.endpoints and proxy.endpoints.http
        out = exchange(proxy.endpoints.http[1],
                       b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % rec.port)
    finally:
        rec.close()
    if want == "502":  # refused before anything reached the client
        assert out.startswith(b"HTTP/1.1 502 ") and b"corral: network: " in out, out
    else:  # the head was already sent: the client sees a cut-off message, never a complete one
        assert out.startswith(b"HTTP/1.1 200 ") and not out.endswith(b"0\r\n\r\n"), out


def _wait_for(pred: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_bodies_stream_without_waiting_for_the_end(make_proxy: ProxyFactory) -> None:
    # 10 MB declared, 200 KB sent: that part must arrive while the rest is still owed, upstream
    # (request body) and to the client (response body).
    part = b"z" * 200_000
    rec = Recorder(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + part)
    try:
        proxy, _ = make_proxy(local(rec.port))
        assert proxy.endpoints and proxy.endpoints.http
        port = proxy.endpoints.http[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"POST http://127.0.0.1:%d/up HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 10000000\r\n\r\n" % rec.port + part)
            assert _wait_for(lambda: sum(map(len, rec.received)) > len(part)), "request body held"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET http://127.0.0.1:%d/down HTTP/1.1\r\nHost: x\r\n\r\n" % rec.port)
            got = b""
            while len(got) < len(part):
                chunk = s.recv(65536)
                assert chunk, got[:200]
                got += chunk
            assert got.startswith(b"HTTP/1.1 200 ")
    finally:
        rec.close()


_CHUNKISH = st.lists(st.sampled_from([
    b"5\r\nhello\r\n", b"0\r\n\r\n", b"0\r\n", b"3;x=y\r\nabc\r\n", b"\r\n", b"\n", b"\r",
    b"X-T: 1\r\n", b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", b"ff\r\n", b"z" * 7,
    b"1\r\n", b"a", b" ", b"-1\r\n", b"0x5\r\n", b"Content-Length: 3\r\n",
]), max_size=12).map(b"".join)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=_CHUNKISH)
def test_what_reaches_the_server_is_one_well_framed_request(
    body: bytes, recorder: Recorder, make_proxy: ProxyFactory
) -> None:
    # Whatever chunked body a client sends, the server sees one request that a strict parser
    # accepts (or a clean prefix of one, when the proxy refused the rest): never a second one.
    proxy = _shared_proxy(recorder, make_proxy)
    before = len(recorder.received)
    exchange(proxy, _post(recorder.port, body, b"Connection: close\r\n"), half_close=True)
    time.sleep(0.02)  # the recorder's thread may still be appending the last bytes
    for seen in recorder.received[before:]:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(seen)
        events = []
        while (ev := conn.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
            events.append(type(ev).__name__)
        assert events.count("Request") <= 1, (body, seen)
        if "EndOfMessage" in events:
            assert not conn.trailing_data[0], (body, seen)


def _shared_proxy(recorder: Recorder, make_proxy: ProxyFactory) -> int:
    """One proxy per recorder for all of a hypothesis test's examples."""
    if recorder.proxy_port is None:
        proxy, _ = make_proxy(local(recorder.port))
        assert proxy.endpoints and proxy.endpoints.http
        recorder.proxy_port = proxy.endpoints.http[1]
    return recorder.proxy_port
