"""Whatever a server (or something posing as one) answers, the forwarder moves its cursor only
on an OTLP acknowledgement, and fails with its own two error kinds, never anything else."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from corral.forward import Forwarder, ForwardError, Retryable, ServerSettings
from corral.forward import cursor as cursors
from corral.telemetry.journal import journal_file
from tests.forward.conftest import TOKEN, fill
from tests.loopback import AcceptLoop


class Scripted:
    """A raw HTTP/1.1 responder on loopback: reads one request, sends ``response`` verbatim."""

    def __init__(self) -> None:
        self.response = b""
        self.loop = AcceptLoop(self._answer)
        self.url = f"http://127.0.0.1:{self.loop.port}"

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(self.response)
            except OSError:
                pass


@pytest.fixture(scope="module")
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    yield server
    server.loop.close()


STATUS = st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 408, 413, 415, 429, 500, 502,
                          503, 504, 599])
CTYPE = st.sampled_from(["application/x-protobuf", "application/json",
                         "application/json; charset=utf-8", "text/html", "", "\x00garbage"])
ACK = ExportLogsServiceResponse().SerializeToString()
PARTIAL = ExportLogsServiceResponse()
PARTIAL.partial_success.rejected_log_records = 2
BODY = st.one_of(st.binary(max_size=2048), st.just(ACK), st.just(PARTIAL.SerializeToString()),
                 st.just(b'{"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"no"}}'),
                 st.just(b"{}"), st.just(b"[1,2]"), st.just(b"null"),
                 st.binary(min_size=1, max_size=1).map(lambda b: b * (1 << 21)))
RETRY_AFTER = st.one_of(st.none(), st.sampled_from(["0", "1", "-5", "1e9", "Wed, 21 Oct 2015 "
                                                    "07:28:00 GMT", "soon", "\u2603"]))


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(status=STATUS, ctype=CTYPE, body=BODY, retry_after=RETRY_AFTER)
def test_hostile_answers(home: Path, scripted: Scripted, status: int, ctype: str, body: bytes,
                         retry_after: str | None) -> None:
    if not journal_file(home).exists():
        fill(home, 3)
    headers = [f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(body)}",
               "Connection: close"]
    if ctype:
        headers.append(f"Content-Type: {ctype}")
    if retry_after is not None:
        headers.append(f"Retry-After: {retry_after}")
    scripted.response = ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8") + body
    path = cursors.cursor_file(journal_file(home), scripted.url)
    path.unlink(missing_ok=True)
    fwd = Forwarder(ServerSettings(scripted.url, TOKEN, "test"), journal_file(home), timeout=5)
    try:
        recs, _ = fwd.step()
    except Retryable as exc:
        assert status in (200, 408, 429, 500, 502, 503, 504) or "broken HTTP" in exc.reason
        assert 0 <= exc.retry_after <= 600
        advanced = False
    except ForwardError as exc:
        assert status not in (408, 429, 500, 502, 503, 504)
        assert "\n" not in exc.line() and exc.exit_code == 1
        advanced = False
    else:
        advanced = True
        assert recs == 3
        assert status == 200
        assert ctype.split(";")[0] in ("application/x-protobuf", "application/json")
        assert body not in (PARTIAL.SerializeToString(),) and len(body) <= 1 << 20
    finally:
        fwd.close()
    stored = cursors.load(path, fwd.position().journal_id)  # type: ignore[union-attr]
    assert (stored.seq == 3) is advanced
