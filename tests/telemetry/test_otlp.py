"""OTLP export against a real receiver on loopback that decodes ExportLogsServiceRequest."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.errors import CorralError
from corral.telemetry import (
    Journal,
    Telemetry,
    ToolDecision,
    ToolResult,
    journal_file,
    load_public_key,
)
from corral.telemetry.journal import checkpoint_message
from corral.telemetry.otlp import ExporterConfig, OtlpExporter, exporter_config
from corral.telemetry.stamp import span_id, trace_id

from .conftest import make_cfg
from .otlp_receiver import Receiver, attrs


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def _head_hash(home: Path) -> str:
    import sqlite3

    conn = sqlite3.connect(journal_file(home))
    try:
        return str(conn.execute("SELECT hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()[0])
    finally:
        conn.close()


def _emit_pair(tel: Telemetry) -> None:
    tel.emit_event(ToolDecision(tool_name="shell", decision="denied", source="automated_reviewer",
                                rationale="deletes the home directory", command_line="rm -rf ~"),
                   call_id="call-1", turn_id="t1")
    tel.emit_event(ToolResult(tool_name="shell", tool_kind="shell", exit_code=3,
                              duration_ms=12.5, success=False, output="boom"), call_id="call-1")


def test_events_arrive_as_typed_otlp_log_records(home: Path, receiver: Receiver) -> None:
    cfg = make_cfg(home, {"telemetry": {"exporter": {"endpoint": receiver.url,
                                                      "headers": {"x-tenant": "acme"}}}})
    tel = Telemetry.open(cfg, "sess-otlp", agent="codex", agent_version="0.169.0")
    _emit_pair(tel)
    tel.close()
    recs = receiver.wait_for(2)
    assert [r.event_name for r in recs] == ["agent.tool.decision", "agent.tool.result"]
    dec, res = recs
    a = attrs(dec)
    assert a["event.name"] == "agent.tool.decision"
    assert a["agent.decision"] == "denied" and a["agent.decision.source"] == "automated_reviewer"
    assert a["gen_ai.tool.call.id"] == "call-1" and a["agent.turn.id"] == "t1"
    assert a["session.id"] == "sess-otlp" and a["gen_ai.agent.version"] == "0.169.0"
    assert a["corral.journal.seq"] == 1
    r = attrs(res)
    assert r["process.exit.code"] == 3 and isinstance(r["process.exit.code"], int)
    assert r["agent.tool.duration_ms"] == 12.5 and r["agent.tool.success"] is False
    assert r["gen_ai.tool.call.result.length"] == 4
    assert res.time_unix_nano > 0 and res.observed_time_unix_nano >= res.time_unix_nano
    assert res.severity_number == 9
    assert dec.trace_id == trace_id("sess-otlp") and dec.span_id == span_id("call-1")
    assert receiver.headers[0]["x-tenant"] == "acme"
    assert receiver.headers[0]["content-type"] == "application/x-protobuf"
    (cp,) = receiver.checkpoints()
    c = attrs(cp)
    assert c["corral.journal.checkpoint.seq"] == 2
    assert c["corral.journal.checkpoint.head_hash"] == _head_hash(home)
    load_public_key(home).verify(  # type: ignore[union-attr]
        bytes.fromhex(c["corral.journal.checkpoint.signature"]),
        checkpoint_message(c["corral.journal.id"], 2, c["corral.journal.checkpoint.head_hash"],
                           c["corral.journal.checkpoint.prev_seq"],
                           c["corral.journal.checkpoint.time_unix_nano"]))
    res_attrs = {kv.key: kv.value.string_value
                 for kv in receiver.requests[0].resource_logs[0].resource.attributes}
    assert res_attrs["service.name"] == "corral"


def test_otlp_json_protocol(home: Path, receiver: Receiver) -> None:
    cfg = make_cfg(home, {"telemetry": {"exporter": {"endpoint": receiver.url + "/v1/logs",
                                                      "protocol": "http/json"}}})
    tel = Telemetry.open(cfg, "sess-json")
    _emit_pair(tel)
    tel.close()
    recs = receiver.wait_for(2)
    assert len(recs) == 2
    raw = receiver.json_bodies[0]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert raw["traceId"] == trace_id("sess-json").hex()  # OTLP/JSON: hex, not base64
    assert raw["severityNumber"] == 9 and isinstance(raw["timeUnixNano"], str)
    assert raw["eventName"] == "agent.tool.decision"


def test_requirements_force_the_exporter(home: Path, receiver: Receiver) -> None:
    cfg = make_cfg(home, {"telemetry": {"exporter": {"endpoint": "http://127.0.0.1:9/"}}},
                   {"telemetry": {"exporter": {"endpoint": receiver.url}}})
    conf = exporter_config(cfg)
    assert conf is not None and conf.source == "requirements"
    tel = Telemetry.open(cfg, "sess-forced")
    _emit_pair(tel)
    tel.close()
    assert len(receiver.wait_for(2)) == 2


def test_retries_after_collector_errors(home: Path, receiver: Receiver) -> None:
    receiver.fail_next = 2
    exp = OtlpExporter(ExporterConfig(endpoint=receiver.url + "/v1/logs", schedule_delay=0.05))
    tel = Telemetry.open(None, "sess-retry", sink=exp)
    _emit_pair(tel)
    recs = receiver.wait_for(2, timeout=15)
    tel.close()
    assert len(recs) == 2 and receiver.failures == 2
    assert exp.dropped == 0 and exp.attempts_failed == 2


def test_collector_down_never_blocks_and_drops_are_journaled(home: Path) -> None:
    port = _free_port()  # nothing listens here
    exp = OtlpExporter(ExporterConfig(endpoint=f"http://127.0.0.1:{port}/v1/logs",
                                      max_queue=50, batch_size=10, schedule_delay=0.05,
                                      max_attempts=2, max_backoff=0.05, timeout_seconds=0.5))
    tel = Telemetry.open(None, "sess-down", sink=exp)
    t0 = time.perf_counter()
    for i in range(500):
        tel.emit("agent.custom.tick", {"i.n": i})
    tel.flush()
    elapsed = time.perf_counter() - t0
    tel.close()
    assert elapsed < 5, f"emit blocked on a dead collector ({elapsed:.1f}s)"
    drops = [e for e in Journal(journal_file(home)).events()
             if e.name == "agent.telemetry.drop"]
    assert drops, "drops were not journaled"
    assert {d.attributes["agent.telemetry.reason"] for d in drops} <= {"queue_full",
                                                                        "export_failed"}
    assert sum(int(d.attributes["agent.telemetry.dropped"]) for d in drops) == exp.dropped
    assert exp.dropped >= 450 and exp.sent == 0


def test_bad_exporter_config_is_refused(home: Path) -> None:
    with pytest.raises(CorralError, match="not an http"):
        exporter_config(make_cfg(home, {"telemetry": {"exporter": {"endpoint": "localhost"}}}))
    with pytest.raises(CorralError, match="not supported"):
        exporter_config(make_cfg(home, {"telemetry": {"exporter": {
            "endpoint": "http://x", "protocol": "carrier-pigeon"}}}))


def test_mutual_tls_with_client_certificate_from_config(home: Path, tmp_path: Path) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca.configure_trust(server_ctx)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client = ca.issue_cert("agent-host.example")
    ca_file, cert, key = tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key"
    ca.cert_pem.write_to_path(str(ca_file))
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    rec = Receiver(tls=server_ctx)
    try:
        tls = {"ca_file": str(ca_file), "client_cert": str(cert), "client_key": str(key)}
        cfg = make_cfg(home, {"telemetry": {"exporter": {"endpoint": rec.url, "tls": tls}}})
        tel = Telemetry.open(cfg, "sess-mtls")
        _emit_pair(tel)
        tel.close()
        assert len(rec.wait_for(2)) == 2
        assert ("DNS", "agent-host.example") in rec.peer_certs[0]["subjectAltName"]

        # without the client certificate the collector refuses; the drop is journaled
        cfg = make_cfg(home, {"telemetry": {"exporter": {
            "endpoint": rec.url, "tls": {"ca_file": str(ca_file)}, "timeout_seconds": 2}}})
        tel = Telemetry.open(cfg, "sess-nocert")
        exp = tel._sink
        assert isinstance(exp, OtlpExporter)
        exp.conf = dataclasses.replace(exp.conf, max_attempts=1)
        _emit_pair(tel)
        tel.close()
        assert exp.sent == 0 and exp.dropped == 3  # two events + the session-end checkpoint
        drops = [e for e in Journal(journal_file(home)).events("sess-nocert")
                 if e.name == "agent.telemetry.drop"]
        assert drops and drops[0].attributes["agent.telemetry.reason"] == "export_failed"
    finally:
        rec.close()


def test_otlp_grpc_export_to_a_real_grpc_receiver(home: Path) -> None:
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    got: list = []  # type: ignore[type-arg]
    meta: list = []  # type: ignore[type-arg]

    class Svc(logs_service_pb2_grpc.LogsServiceServicer):  # type: ignore[misc]
        def Export(self, request, context):  # type: ignore[no-untyped-def]
            got.append(request)
            meta.append(dict(context.invocation_metadata()))
            return ExportLogsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Svc(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        cfg = make_cfg(home, {"telemetry": {"exporter": {
            "endpoint": f"http://127.0.0.1:{port}", "protocol": "grpc",
            "headers": {"Authorization": "Bearer collector-token-123456"}}}})
        tel = Telemetry.open(cfg, "sess-grpc")
        _emit_pair(tel)
        tel.close()
        recs = [lr for r in got for rl in r.resource_logs for sl in rl.scope_logs
                for lr in sl.log_records if lr.event_name != "agent.journal.checkpoint"]
        assert [r.event_name for r in recs] == ["agent.tool.decision", "agent.tool.result"]
        assert attrs(recs[1])["process.exit.code"] == 3
        assert meta[0]["authorization"] == "Bearer collector-token-123456"
    finally:
        server.stop(0)


def test_grpc_collector_down_counts_drops(home: Path) -> None:
    exp = OtlpExporter(ExporterConfig(endpoint=f"http://127.0.0.1:{_free_port()}",
                                      protocol="grpc", max_attempts=2, max_backoff=0.05,
                                      timeout_seconds=0.5, schedule_delay=0.05))
    tel = Telemetry.open(None, "sess-grpc-down", sink=exp)
    _emit_pair(tel)
    tel.close()
    assert exp.sent == 0 and exp.dropped == 3  # two events + the session-end checkpoint
