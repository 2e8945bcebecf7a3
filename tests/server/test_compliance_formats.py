"""SIEM formats on the cursor and file APIs, against a real server: OCSF 1.8 validated against
the OCSF schema kept in the repo (src/corral/server/ocsf), ECS, and OTLP/JSON parsed by the
OpenTelemetry protobuf definitions."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from corral.server import ocsf_schema
from corral.telemetry.journal import JournalWriter
from corral.telemetry.schema import Event
from tests.server.compliance_helpers import T0, auth, read_token, server_with, start
from tests.server.helpers import Journal, forward_request, post, token

CLASSES = {6003: "api_activity", 1007: "process_activity", 1001: "file_activity",
           4001: "network_activity", 4002: "http_activity", 2004: "detection_finding",
           0: "base_event"}

KINDS: list[tuple[str, dict[str, Any]]] = [
    ("agent.tool.decision", {"gen_ai.tool.name": "shell", "agent.decision": "denied",
                             "agent.decision.source": "rule",
                             "process.command_line": "rm -rf /"}),
    ("agent.mcp.call", {"mcp.server.name": "github", "gen_ai.tool.name": "create_issue",
                        "mcp.method.name": "tools/call"}),
    ("agent.tool.result", {"gen_ai.tool.name": "shell", "gen_ai.tool.type": "shell",
                           "process.command_line": "pytest -q", "process.exit.code": 1}),
    ("agent.tool.result", {"gen_ai.tool.name": "apply_patch", "gen_ai.tool.type": "patch",
                           "agent.patch.files": ["src/a.py", "docs/b.md"]}),
    ("agent.network.decision", {"network.policy.decision": "deny", "server.address": "evil.test",
                                "server.port": 443, "network.transport.protocol":
                                    "https_connect"}),
    ("agent.network.decision", {"network.policy.decision": "allow",
                                "server.address": "pypi.org", "server.port": 80,
                                "network.transport.protocol": "http",
                                "http.request.method": "POST"}),
    ("agent.network.decision", {"network.policy.decision": "deny",
                                "server.address": "10.0.0.1", "server.port": 5432,
                                "network.transport.protocol": "socks5_tcp"}),
    ("triage.verdict", {"triage.verdict": "escalate", "triage.confidence": 0.9,
                        "triage.alert.id": "alert-7", "triage.alert.title": "exfil?"}),
    ("agent.user_prompt", {"prompt.length": 5, "prompt.sha256": "ab" * 32}),
]
EXPECT = [[6003], [6003], [1007], [1001, 1001], [4002], [4002], [4001], [2004], [0]]


def _journal(tmp: Path) -> Journal:
    key = Ed25519PrivateKey.generate()
    w = JournalWriter(tmp / "j.db", key, checkpoint_every=10**9)
    w.append([Event(id=f"ev-{i:04d}", name=n, time_unix_nano=T0 + i, session_id="s1",
                    turn_id="t1", call_id=f"call-{i}", user="dev", host="laptop",
                    agent_name="codex", agent_version="0.50", corral_version="0.1.0", tier=1,
                    attributes=a) for i, (n, a) in enumerate(KINDS)])
    return Journal(w, key, tmp / "j.db")


def test_validator_catches_a_broken_event() -> None:
    assert ocsf_schema.version() == "1.8.0"
    good = {"class_uid": 6003, "category_uid": 6, "activity_id": 99, "type_uid": 600399,
            "time": 1, "severity_id": 1, "actor": {"app_name": "codex"},
            "api": {"operation": "shell"}, "src_endpoint": {"hostname": "h"},
            "metadata": {"version": "1.8.0", "product": {"name": "corral"}}}
    assert ocsf_schema.validate(good, "api_activity") == []
    bad = {**good, "activity_id": 42, "actor": {}, "api": {"operation": 3}, "x": 1}
    del bad["src_endpoint"]
    problems = "\n".join(ocsf_schema.validate(bad, "api_activity"))
    for expected in ("activity_id: 42 is not one of", "actor: needs at least one of",
                     "api.operation: must be string_t", "x: not an attribute",
                     "src_endpoint: required by api_activity", "type_uid is 600399, not"):
        assert expected in problems


def test_ocsf_ecs_and_otlp_json_on_cursor_and_files(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    server_with(data, compliance_window=1, compliance_grace=0.1)
    ing, rd = token(data, "ingest"), read_token(data, "--content")
    j = _journal(tmp_path)
    srv = start(data)
    try:
        assert post(srv.url, forward_request(j), ing).status_code == 200
        with httpx.Client(base_url=srv.url, timeout=30, headers=auth(rd)) as c:
            params = {"name": sorted({n for n, _ in KINDS}), "limit": 100}
            oc = c.get("/v1/events", params={**params, "format": "ocsf"}).json()["data"]
            got = [e["class_uid"] for e in oc]
            assert got == [u for us in EXPECT for u in us]
            for e in oc:
                assert ocsf_schema.validate(e, CLASSES[e["class_uid"]]) == [], e
            deny = oc[0]
            assert deny["disposition_id"] == 2 and deny["actor"]["user"]["name"] == "dev"
            assert deny["unmapped"]["corral"]["process.command_line"] == "rm -rf /"
            assert [e["file"]["path"] for e in oc if e["class_uid"] == 1001] == [
                "src/a.py", "docs/b.md"]
            http = [e for e in oc if e["class_uid"] == 4002]
            assert [e["activity_id"] for e in http] == [1, 6]  # CONNECT, POST
            assert oc[-2]["is_alert"] is True and oc[-2]["finding_info"]["uid"] == "ev-0007"
            assert oc[-2]["finding_info"]["types"] == ["escalate"]
            assert oc[-2]["finding_info"]["related_events"] == [{"uid": "alert-7",
                                                                 "title": "exfil?"}]

            ecs = c.get("/v1/events", params={**params, "format": "ecs"}).json()["data"]
            assert len(ecs) == len(KINDS)
            assert ecs[0]["event"]["outcome"] == "failure"
            assert ecs[0]["@timestamp"] == "2023-11-14T22:13:20.000000000Z"
            assert ecs[4]["destination"] == {"domain": "evil.test", "port": 443}
            assert ecs[0]["user"]["name"] == "dev" and ecs[0]["event"]["id"] == "ev-0000"

            ot = c.get("/v1/events", params={**params, "format": "otlp-json"}).json()["data"]
            for i, e in enumerate(ot):
                req = json_format.ParseDict(e, ExportLogsServiceRequest())
                lr = req.resource_logs[0].scope_logs[0].log_records[0]
                assert lr.event_name == KINDS[i][0] and lr.time_unix_nano == T0 + i
                keys = {kv.key for kv in lr.attributes}
                assert {"event.id", "session.id", *KINDS[i][1]} <= keys

            # the same formats on a compliance file: stable bytes, every line valid
            deadline = time.monotonic() + 20
            files: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not files:
                files = c.get("/v1/compliance/logs", params={
                    "event_type": "agent.network.decision"}).json()["data"]
                time.sleep(0.2)
            assert files
            fid = files[0]["id"]
            r1 = c.get(f"/v1/compliance/logs/{fid}", params={"format": "ocsf"})
            r2 = c.get(f"/v1/compliance/logs/{fid}", params={"format": "ocsf"})
            assert r1.status_code == 200 and r1.content == r2.content
            assert r1.headers["etag"] == f'"{hashlib.sha256(r1.content).hexdigest()}"'
            lines = [json.loads(x) for x in r1.content.splitlines()]
            assert [x["class_uid"] for x in lines] == [4002, 4002, 4001]
            for x in lines:
                assert ocsf_schema.validate(x, CLASSES[x["class_uid"]]) == []
            r = c.get(f"/v1/compliance/logs/{fid}", params={"format": "ecs"})
            assert len(r.content.splitlines()) == 3
    finally:
        srv.stop()
