"""The OTLP/HTTP logs receiver: real protobuf and OTLP/JSON requests over HTTP, shaped like the
records Codex and Claude Code export, mapped into our schema and journaled at the content tier."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import tomllib
from pathlib import Path

import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from corral.config import load_config
from corral.integrations.otel_map import (
    NativeRecord,
    args_for_agent,
    env_for_agent,
    map_record,
)
from corral.integrations.otlp_receiver import Receiver, parse_request, records
from corral.telemetry import Journal, Telemetry
from corral.telemetry.schema import validate

T0 = 1_790_000_000_000_000_000


def _kv(key: str, value: object) -> KeyValue:
    v = AnyValue()
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    elif isinstance(value, list):
        v.array_value.values.extend(AnyValue(string_value=x) for x in value)
    else:
        v.string_value = str(value)
    return KeyValue(key=key, value=v)


def request(service: str, recs: list[dict], event_name_field: bool = False,
            ) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend([_kv("service.name", service), _kv("service.version", "1")])
    sl = rl.scope_logs.add()
    sl.scope.name = "test"
    for i, attrs in enumerate(recs):
        attrs = dict(attrs)
        body = attrs.pop("_body", None)
        lr = LogRecord(time_unix_nano=T0 + i, severity_number=9)
        if event_name_field:
            lr.event_name = attrs.pop("_event_name")
        if body is not None:
            lr.body.string_value = body
        lr.trace_id = bytes(range(16))
        lr.attributes.extend(_kv(k, v) for k, v in attrs.items())
        sl.log_records.append(lr)
    return req


CODEX = [
    {"event.name": "codex.conversation_starts", "conversation.id": "conv-1", "model": "gpt-5",
     "approval_policy": "on-request", "sandbox_policy": "workspace-write",
     "mcp_servers": ["fs"]},
    {"event.name": "codex.user_prompt", "conversation.id": "conv-1", "prompt_length": 27,
     "prompt": "[REDACTED]"},
    {"event.name": "codex.sse_event", "event.kind": "response.output_text.delta"},
    {"event.name": "codex.tool_decision", "conversation.id": "conv-1", "tool_name": "shell",
     "call_id": "call_9", "decision": "approved", "source": "Config"},
    {"event.name": "codex.tool_decision", "tool_name": "shell", "call_id": "call_10",
     "decision": "ApprovedForSession", "source": "User"},
    {"event.name": "codex.tool_result", "conversation.id": "conv-1", "tool_name": "shell",
     "call_id": "call_9", "arguments": json.dumps({"command": ["pytest", "-q"]}),
     "duration_ms": 812, "success": "false",
     "output": "FAILED test_x.py - token ghp_" + "a" * 36},
    {"event.name": "codex.tool_result", "tool_name": "read_file", "call_id": "call_11",
     "arguments": "{}", "mcp_server": "fs", "success": "true", "output": "ok"},
    {"event.name": "codex.network_proxy.domain_policy_decision",
     "network.policy.decision": "deny", "network.policy.source": "baseline_policy",
     "network.policy.reason": "not_allowed", "server.address": "evil.example",
     "server.port": 443, "network.transport.protocol": "https_connect"},
]


@pytest.fixture
def tel(tmp_path: Path):
    def open_at(tier: int) -> Telemetry:
        work = tmp_path / "w"
        work.mkdir(exist_ok=True)
        cfg = load_config(work, home=tmp_path / "home", system=tmp_path / "etc")
        return Telemetry.open(cfg, agent="codex", tier=tier)
    opened: list[Telemetry] = []

    def make(tier: int = 1) -> Telemetry:
        t = open_at(tier)
        opened.append(t)
        return t
    yield make
    for t in opened:
        with contextlib.suppress(Exception):
            t.close()


def _events(t: Telemetry) -> list:
    t.flush(10)
    return list(Journal(t.journal_path).events(session_id=t.session_id))


def test_codex_protobuf_export_is_mapped_and_journaled(tel):
    t = tel(1)
    with Receiver(t) as rx:
        body = request("codex_cli_rs", CODEX).SerializeToString()
        r = httpx.post(f"{rx.endpoint}/v1/logs", content=body, headers={
            "Content-Type": "application/x-protobuf", "Authorization": f"Bearer {rx.token}"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
        resp = ExportLogsServiceResponse.FromString(r.content)
        assert not resp.HasField("partial_success")
        assert (rx.accepted, rx.dropped, rx.rejected) == (7, 1, 0)
    evs = _events(t)
    names = [e.name for e in evs]
    assert names == ["agent.import.record", "agent.user_prompt", "agent.tool.decision",
                     "agent.tool.decision", "agent.tool.result", "agent.tool.result",
                     "agent.network.decision"]
    start, prompt, d1, d2, res, mcp, net = evs
    assert start.attributes["agent.import.event"] == "codex.conversation_starts"
    assert json.loads(start.attributes["agent.import.raw"])["attributes"]["approval_policy"] \
        == "on-request"
    assert "prompt.sha256" not in prompt.attributes  # codex sent no prompt, only its length
    assert prompt.attributes["agent.import.prompt_length"] == 27
    assert (d1.attributes["agent.decision"], d1.attributes["agent.decision.source"],
            d1.call_id) == ("auto_approved", "rule", "import:call_9")
    assert (d2.attributes["agent.decision"], d2.attributes["agent.decision.source"]) == (
        "approved_for_session", "user")
    a = res.attributes
    assert (a["gen_ai.tool.type"], a["process.command_line"], a["agent.tool.success"],
            a["agent.tool.duration_ms"], a["gen_ai.conversation.id"]) == (
        "shell", "pytest -q", False, 812.0, "conv-1")
    output = CODEX[5]["output"]
    assert a["gen_ai.tool.call.result.sha256"] == hashlib.sha256(output.encode()).hexdigest()
    assert "gen_ai.tool.call.result" not in a  # tier 1: no content
    raw = json.loads(a["agent.import.raw"])
    assert raw["attributes"]["output"] == f"<content: {len(output)} bytes>"
    assert mcp.attributes["gen_ai.tool.type"] == "mcp"
    assert mcp.attributes["mcp.server.name"] == "fs"
    n = net.attributes
    assert (n["network.policy.decision"], n["server.address"], n["server.port"],
            n["network.policy.source"]) == ("deny", "evil.example", 443, "rule")


CLAUDE = [
    {"_event_name": "user_prompt", "_body": "claude_code.user_prompt", "event.name":
     "user_prompt", "session.id": "sess-7", "prompt.id": "p-1", "prompt_length": "30",
     "prompt": "deploy with key AKIAABCDEFGHIJKLMNOP please"},
    {"_event_name": "tool_decision", "_body": "claude_code.tool_decision",
     "session.id": "sess-7", "prompt.id": "p-1", "tool_name": "Bash", "decision": "reject",
     "source": "user_reject"},
    {"_event_name": "tool_result", "_body": "claude_code.tool_result", "session.id": "sess-7",
     "prompt.id": "p-1", "tool_name": "Bash", "success": "true", "duration_ms": "41",
     "tool_parameters": json.dumps({"bash_command": "ls", "full_command": "ls -la"})},
    {"_event_name": "api_request", "_body": "claude_code.api_request", "session.id": "sess-7",
     "model": "claude-sonnet-4", "input_tokens": "1200", "output_tokens": "80",
     "cost_usd": "0.0123", "duration_ms": "2100"},
]


def test_claude_code_otlp_json_gzip_at_tier_2(tel):
    t = tel(2)
    with Receiver(t) as rx:
        doc = MessageToDict(request("claude-code", CLAUDE, event_name_field=True))
        for lr in doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"]:
            lr["traceId"] = bytes(range(16)).hex()  # OTLP/JSON spells ids in hex
        r = httpx.post(f"{rx.endpoint}/v1/logs", content=gzip.compress(json.dumps(doc).encode()),
                       headers={"Content-Type": "application/json", "Content-Encoding": "gzip",
                                "Authorization": f"Bearer {rx.token}"})
        assert r.status_code == 200 and r.json() == {}
    prompt, decision, result, api = _events(t)
    assert prompt.name == "agent.user_prompt" and prompt.turn_id == "import:p-1"
    assert prompt.attributes["prompt"] == "deploy with key [REDACTED:aws_access_key_id] please"
    assert prompt.attributes["agent.import.source"] == "claude-code"
    assert "AKIA" not in prompt.attributes["agent.import.raw"]
    assert (decision.attributes["agent.decision"], decision.attributes["agent.decision.source"]
            ) == ("denied", "user")
    assert result.attributes["process.command_line"] == "ls -la"
    assert result.attributes["agent.tool.duration_ms"] == 41.0
    assert api.name == "agent.model.request"
    assert (api.attributes["gen_ai.usage.input_tokens"], api.attributes["agent.model.cost_usd"],
            api.attributes["gen_ai.request.model"]) == (1200, 0.0123, "claude-sonnet-4")


def test_refusals_are_one_line_and_nothing_is_journaled(tel):
    t = tel(1)
    with Receiver(t) as rx:
        url = f"{rx.endpoint}/v1/logs"
        auth = {"Authorization": f"Bearer {rx.token}"}
        body = request("codex", CODEX[:2]).SerializeToString()
        r = httpx.post(url, content=body)
        assert r.status_code == 401
        r = httpx.post(url, content=body, headers={"Content-Type": "application/json",
                                                   "Authorization": "Bearer nope"})
        assert r.json()["message"] == \
            "corral: telemetry: OTLP receiver: bad or missing bearer token"
        r = httpx.post(url, content=b"\xff\x00garbage", headers=auth)
        assert r.status_code == 400
        r = httpx.post(url, content=b"not gzip", headers={**auth, "Content-Encoding": "gzip"})
        assert r.status_code == 400
        r = httpx.post(url, content=b"x", headers={**auth, "Content-Type": "text/plain"})
        assert r.status_code == 415
        r = httpx.post(f"{rx.endpoint}/v2/logs", content=body, headers=auth)
        assert r.status_code == 404
        r = httpx.post(f"{rx.endpoint}/v1/metrics", content=b"", headers=auth)
        assert r.status_code == 200  # accepted and dropped
        assert rx.accepted == 0
    assert _events(t) == []


def test_error_bodies_are_rpc_status_with_grpc_codes(tel):
    """OTLP/HTTP: a 4xx/5xx body is a google.rpc.Status whose code is a gRPC code (the hand
    encoding put the HTTP status there: 401 is no gRPC code, UNAUTHENTICATED is 16)."""
    from google.protobuf.json_format import Parse
    from google.rpc import code_pb2, status_pb2

    t = tel(1)
    with Receiver(t) as rx:
        url = f"{rx.endpoint}/v1/logs"
        auth = {"Authorization": f"Bearer {rx.token}"}
        cases = [({}, b"", 401, code_pb2.UNAUTHENTICATED),
                 (auth, b"\xff\x00garbage", 400, code_pb2.INVALID_ARGUMENT),
                 ({**auth, "Content-Type": "text/plain"}, b"x", 415, code_pb2.INVALID_ARGUMENT)]
        for headers, body, http_status, code in cases:
            r = httpx.post(url, content=body, headers=headers)
            assert r.status_code == http_status
            st_ = status_pb2.Status.FromString(r.content)
            assert st_.code == code and st_.message.startswith("corral: telemetry: OTLP ")
        r = httpx.post(f"{rx.endpoint}/v2/logs", headers={**auth,
                                                          "Content-Type": "application/json"})
        st_ = Parse(r.text, status_pb2.Status())
        assert (r.status_code, st_.code) == (404, code_pb2.NOT_FOUND)


def test_journal_failure_is_503_so_the_agent_retries(tel):
    t = tel(1)
    with Receiver(t, token="") as rx:
        t.close()
        r = httpx.post(f"{rx.endpoint}/v1/logs",
                       content=request("codex", CODEX[1:2]).SerializeToString(),
                       headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"


def test_env_and_args_point_each_agent_at_the_receiver():
    env = env_for_agent("claude-code", "http://127.0.0.1:4318/", token="tok", tier=1)
    assert env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] == "http://127.0.0.1:4318/v1/logs"
    assert env["OTEL_EXPORTER_OTLP_LOGS_HEADERS"] == "authorization=Bearer tok"
    assert env["OTEL_LOG_USER_PROMPTS"] == "0" and env["CLAUDE_CODE_ENABLE_TELEMETRY"] == "1"
    assert env_for_agent("claude-code", "http://x", tier=2)["OTEL_LOG_USER_PROMPTS"] == "1"
    assert env_for_agent("codex", "http://x") == {}
    args = args_for_agent("codex", "http://127.0.0.1:4318", token="tok", tier=2)
    overrides = {}
    for flag, kv in zip(args[::2], args[1::2], strict=True):
        assert flag == "-c"
        key, value = kv.split("=", 1)
        overrides[key] = tomllib.loads(f"v = {value}")["v"]
    assert overrides["otel.exporter"] == {"otlp-http": {
        "endpoint": "http://127.0.0.1:4318/v1/logs", "protocol": "binary",
        "headers": {"authorization": "Bearer tok"}}}
    assert overrides["otel.log_user_prompt"] is True


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["application/x-protobuf",
                                                 "application/json"]))
def test_fuzz_parse_request_only_raises_value_error(data, ctype):
    try:
        req = parse_request(data, ctype)
    except ValueError:
        return
    for rec in records(req):
        m = map_record(rec)
        assert m is None or validate(m.name, m.attributes) is None


_val = st.one_of(st.text(max_size=30), st.integers(), st.booleans(),
                 st.floats(allow_nan=True), st.lists(st.text(max_size=5), max_size=3))


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(["codex.user_prompt", "codex.tool_decision", "codex.tool_result",
                             "codex.network_proxy.block_decision", "codex.sandbox_outcome",
                             "tool_result", "api_request", "whatever", "claude_code.x"]),
       attrs=st.dictionaries(st.sampled_from(
           ["tool_name", "decision", "source", "arguments", "output", "success", "duration_ms",
            "server.address", "server.port", "network.policy.decision", "outcome", "prompt",
            "tool_parameters", "mcp_server", "call_id", "input_tokens", "session.id"]), _val),
       service=st.sampled_from(["codex", "claude-code", "other"]))
def test_fuzz_mapping_always_yields_valid_events(name, attrs, service):
    m = map_record(NativeRecord(name=name, attributes=attrs, resource={"service.name": service}))
    assert m is not None
    assert validate(m.name, m.attributes) is None, (m.name, m.attributes)


def test_unix_socket_listener_for_a_sandbox_bridge(tel, tmp_path):
    import os

    t = tel(1)
    sock = tmp_path / "otlp.sock"
    with Receiver(t, unix_socket=sock) as rx:
        assert rx.endpoint == f"unix:{sock}" and (os.stat(sock).st_mode & 0o777) == 0o600
        # The socket's mode and the peer's uid authenticate: no token to hand to the agent.
        assert rx.token == ""
        client = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)))
        r = client.post("http://bridge/v1/logs",
                        content=request("codex_exec", CODEX[1:2]).SerializeToString(),
                        headers={"Content-Type": "application/x-protobuf"})
        assert r.status_code == 200 and rx.accepted == 1
        client.close()
    assert not sock.exists()
    assert [e.name for e in _events(t)] == ["agent.user_prompt"]
