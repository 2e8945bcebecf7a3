"""Gemini CLI's export reaches the receiver as Node's OTLP/JSON exporter sends it: a chunked body
(``Transfer-Encoding: chunked``, no Content-Length) on a kept-alive connection. Before, such a
body was read as empty and nothing was imported."""

from __future__ import annotations

import contextlib
import io
import json
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.config import load_config
from corral.integrations.otel_map import NativeRecord, map_record
from corral.integrations.otlp_receiver import MAX_BODY, Receiver, read_chunked
from corral.telemetry import Journal, Telemetry
from corral.telemetry.schema import validate


def _attr(key: str, value: object) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


def export(*records: dict) -> bytes:
    """An OTLP/JSON logs export shaped like Gemini CLI 0.61's (names in event.name, a sentence
    as the body, attributes typed)."""
    recs = [{"timeUnixNano": "1790000000000000000", "body": {"stringValue": "Tool call."},
             "attributes": [_attr("session.id", "gs-1"), *(_attr(k, v) for k, v in r.items())]}
            for r in records]
    return json.dumps({"resourceLogs": [{
        "resource": {"attributes": [_attr("service.name", "gemini-cli")]},
        "scopeLogs": [{"scope": {"name": "gemini-cli"}, "logRecords": recs}]}]}).encode()


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, at = b"", 0
    for n in sizes:
        part = body[at:at + n]
        if not part:
            break
        out += b"%x\r\n" % len(part) + part + b"\r\n"
        at += len(part)
    if at < len(body):
        out += b"%x\r\n" % (len(body) - at) + body[at:] + b"\r\n"
    return out + b"0\r\n\r\n"


def post(sock: socket.socket, body: bytes, token: str | None) -> bytes:
    """One chunked POST on ``sock`` and its whole answer (read by its Content-Length)."""
    auth = b"Authorization: Bearer %s\r\n" % token.encode() if token else b""
    sock.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
                 b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                 b"Connection: keep-alive\r\n\r\n" + body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


@pytest.fixture
def tel(tmp_path: Path):
    work = tmp_path / "w"
    work.mkdir()
    t = Telemetry.open(load_config(work, home=tmp_path / "home", system=tmp_path / "etc"),
                       agent="gemini", tier=1)
    yield t
    t.close()


def test_chunked_exports_on_one_kept_alive_connection_are_imported(tel):
    first = export({"event.name": "gemini_cli.tool_call", "function_name": "run_shell_command",
                    "success": True, "decision": "accept", "duration_ms": 12,
                    "tool_type": "native"})
    second = export({"event.name": "gemini_cli.api_response", "duration_ms": 40,
                     "input_token_count": 10, "output_token_count": 5, "status_code": 200})
    with Receiver(tel) as rx:
        port = int(rx.endpoint.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            # Node keeps one connection for every export: each body must end where it ends
            assert post(s, chunked(first, [7, 100, 3]), None).startswith(b"HTTP/1.1 401")
            assert post(s, chunked(first, [5, 5, 5, 40]), rx.token).startswith(b"HTTP/1.1 200")
            assert post(s, chunked(second, [1000]), rx.token).startswith(b"HTTP/1.1 200")
    tel.flush(10)
    evs = list(Journal(tel.journal_path).events(session_id=tel.session_id))
    names = [e.name for e in evs if e.attributes.get("agent.import.source") == "gemini"]
    assert names == ["agent.tool.result", "agent.model.request"], names


def test_bad_chunked_bodies_are_refused_and_the_connection_closed(tel):
    with Receiver(tel) as rx:
        port = int(rx.endpoint.rsplit(":", 1)[1])
        for body in (b"zz\r\nabc\r\n0\r\n\r\n",  # not hex
                     b"5\r\nab",  # cut short
                     b"%x\r\n" % (MAX_BODY + 1)):  # too large: refused before reading it
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                          rx.token.encode() + b"\r\nContent-Type: application/json\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n" + body)
                if body == b"5\r\nab":
                    s.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := s.recv(65536):  # the server closes after answering
                    data += chunk
            assert data.startswith(b"HTTP/1.1 413"), (body, data)
            assert b"malformed or larger than" in data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 64), max_size=12),
       st.sampled_from([b"", b"x-trailer: 1\r\n"]))
def test_read_chunked_reassembles_every_split(body, sizes, trailer):
    wire = chunked(body, sizes)
    if trailer:
        wire = wire[:-2] + trailer + b"\r\n"
    stream = io.BytesIO(wire + b"NEXT")
    assert read_chunked(stream, MAX_BODY) == body
    assert stream.read() == b"NEXT"  # the next request starts where it should


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_read_chunked_garbage_is_a_value_error(data):
    with contextlib.suppress(ValueError):  # anything else (IndexError, TypeError...) fails
        read_chunked(io.BytesIO(data), 1000)


_val = st.one_of(st.text(max_size=30), st.integers(), st.booleans(),
                 st.floats(allow_nan=True), st.lists(st.text(max_size=5), max_size=3))


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["gemini_cli.tool_call", "gemini_cli.api_response",
                             "gemini_cli.api_error", "gemini_cli.api_request",
                             "gemini_cli.user_prompt", "gemini_cli.config",
                             "gemini_cli.hook_call", "gen_ai.client.inference.operation.details"]),
       attrs=st.dictionaries(st.sampled_from(
           ["function_name", "function_args", "decision", "success", "duration_ms", "duration",
            "tool_type", "mcp_server_name", "input_token_count", "output_token_count",
            "status_code", "error_type", "prompt", "prompt_id", "prompt_length",
            "session.id", "hook_input"]), _val))
def test_fuzz_gemini_mapping_always_yields_valid_events(name, attrs):
    m = map_record(NativeRecord(name=name, attributes={**attrs, "event.name": name},
                                resource={"service.name": "gemini-cli"}))
    assert m is not None
    assert validate(m.name, m.attributes) is None, (m.name, m.attributes)
