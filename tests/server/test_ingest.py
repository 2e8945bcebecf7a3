"""Ingest over real HTTP into a real `corral server run`: the forwarding contract, idempotency,
partial success, errors, tokens, checkpoints and proofs."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from corral.server import integrity as it
from tests.server.conftest import Served
from tests.server.helpers import corral, event, forward_request, journal, post


def _verify(data: Path) -> subprocess.CompletedProcess[str]:
    return corral("server", "verify", "--data", str(data), check=False)


def _events(served: Served) -> list[dict[str, object]]:
    size = httpx.get(served.url + "/healthz").json()["size"]
    out = []
    for seq in range(1, size + 1):
        r = httpx.get(f"{served.url}/v1/events/{seq}",
                      headers={"Authorization": f"Bearer {served.read}"})
        out.append(json.loads(r.content))
    return out


def test_forwarded_journal_stored_once_and_verifies(served: Served, tmp_path: Path) -> None:
    j = journal(tmp_path, 25, checkpoint_every=10)
    body = forward_request(j)
    r = post(served.url, body, served.ingest)
    assert r.status_code == 200, r.text
    resp = ExportLogsServiceResponse.FromString(r.content)
    assert not resp.HasField("partial_success")
    # the same batch again, gzip, and then out of order: acknowledged, stored once
    assert post(served.url, body, served.ingest, gz=True).status_code == 200
    assert post(served.url, forward_request(j, 5, 12), served.ingest).status_code == 200
    evs = _events(served)
    ids = [e["id"] for e in evs]
    assert len(ids) == len(set(ids)) == 25 + 2  # 25 records, 2 checkpoints (10, 20)
    assert {e["id"] for e in evs if e["kind"] == "record"} == {r[1] for r in j.rows()}
    assert all(e["flags"] == [] for e in evs)
    rec = next(e for e in evs if e["kind"] == "record")
    assert rec["record"] == j.rows()[0][4].decode()  # byte-exact journal body kept
    res = _verify(served.data)
    assert res.returncode == 0, res.stdout
    # 27 stored, and a server.access record for each of the 27 reads of GET /v1/events/N
    assert "ok: 54 events" in res.stdout and "1 machine journals" in res.stdout


def test_gap_and_rewritten_history_are_stored_and_flagged(served: Served,
                                                          tmp_path: Path) -> None:
    j = journal(tmp_path, 12)
    assert post(served.url, forward_request(j, 1, 5), served.ingest).status_code == 200
    assert post(served.url, forward_request(j, 8, 12), served.ingest).status_code == 200
    evs = _events(served)
    assert len(evs) == 10
    assert any("gap" in f for f in evs[5]["flags"])  # type: ignore[union-attr]
    res = _verify(served.data)
    assert res.returncode == 1
    assert f"journal {j.id} (device {j.id}): gap: journal seqs 6..7 never arrived" in res.stdout
    # a rewritten history: the machine re-sends seq 3 with different content, same id
    other = journal(tmp_path / "x", 0)
    other.writer.journal_id = j.id  # same journal id, same key, different records
    other.key = j.key
    other.writer._key = j.key
    other.writer.append([event(i, "s2") for i in range(3)])
    body = forward_request(other, 3, 3)
    # keep the original event id so only the content differs
    req = ExportLogsServiceRequest.FromString(body)
    for kv in req.resource_logs[0].scope_logs[0].log_records[0].attributes:
        if kv.key == "event.id":
            kv.value.string_value = j.rows()[2][1]
    assert post(served.url, req.SerializeToString(), served.ingest).status_code == 200
    res = _verify(served.data)
    assert "rewritten history: journal seq 3 arrived with 2 different contents" in res.stdout


def test_partial_success_and_bad_requests(served: Served, tmp_path: Path) -> None:
    j = journal(tmp_path, 3)
    req = ExportLogsServiceRequest.FromString(forward_request(j))
    lr = req.resource_logs[0].scope_logs[0].log_records[1]
    del lr.attributes[:]
    r = post(served.url, req.SerializeToString(), served.ingest)
    assert r.status_code == 200
    resp = ExportLogsServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_log_records == 1
    assert "event.id" in resp.partial_success.error_message
    assert len(_events(served)) == 2

    bad = post(served.url, b"\xff\xff\xff\xff", served.ingest)
    assert bad.status_code == 400 and bad.text.startswith("corral: server: bad OTLP protobuf")
    assert post(served.url, b"{}", served.ingest, ctype="text/plain").status_code == 415
    assert post(served.url, b"[1]", served.ingest, ctype="application/json").status_code == 400
    big = httpx.post(served.url + "/v1/logs", content=b"\0" * (17 * 1024 * 1024),
                     headers={"Content-Type": "application/x-protobuf",
                              "Authorization": f"Bearer {served.ingest}"})
    assert big.status_code == 413
    bomb = post(served.url, b"\0" * (40 * 1024 * 1024), served.ingest, gz=True)
    assert bomb.status_code == 413
    assert post(served.url, b"", "nope").status_code == 401
    assert post(served.url, b"", served.read).status_code == 403


def test_json_and_native_agent_logs(served: Served) -> None:
    doc = {"resourceLogs": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "codex_cli_rs"}},
        {"key": "host.name", "value": {"stringValue": "box"}}]},
        "scopeLogs": [{"scope": {"name": "codex_otel"}, "logRecords": [{
            "timeUnixNano": "1700000000000000000", "eventName": "codex.tool_decision",
            "attributes": [
                {"key": "event.name", "value": {"stringValue": "codex.tool_decision"}},
                {"key": "tool_name", "value": {"stringValue": "shell"}},
                {"key": "decision", "value": {"stringValue": "approved"}},
                {"key": "source", "value": {"stringValue": "config"}}]}]}]}]}
    body = json.dumps(doc).encode()
    for _ in range(2):
        r = post(served.url, body, served.ingest, ctype="application/json")
        assert r.status_code == 200 and r.json() == {}
    evs = _events(served)
    assert len(evs) == 1
    ev = evs[0]
    assert ev["name"] == "agent.tool.decision" and ev["device"] == "box"
    assert ev["record"]["raw"]["attributes"]["tool_name"] == "shell"  # type: ignore[index]
    assert ev["record"]["event"]["attributes"]["agent.decision"] == "auto_approved"  # type: ignore[index]


def test_checkpoint_and_proofs_verify_offline(served: Served, tmp_path: Path) -> None:
    j = journal(tmp_path, 40)
    assert post(served.url, forward_request(j, 1, 17), served.ingest).status_code == 200
    time.sleep(1.0)
    first = httpx.get(served.url + "/v1/checkpoints/latest").text
    assert post(served.url, forward_request(j, 18), served.ingest).status_code == 200
    vkey = (served.data / "keys" / "server.vkey").read_text().strip()
    name, pub = it.parse_vkey(vkey)
    deadline = time.monotonic() + 10
    # each read of the checkpoint is itself logged (server.access), so the log grows by one per
    # poll: 17 records, the first read's access record, 23 records, then more reads
    while it.open_checkpoint(note := httpx.get(served.url + "/v1/checkpoints/latest").text,
                             name, pub).size < 41:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    cp1, cp2 = it.open_checkpoint(first, name, pub), it.open_checkpoint(note, name, pub)
    assert cp1.size == 17 and cp2.size >= 41
    size = cp2.size
    assert (served.data / "checkpoints" / "latest.txt").read_text() == note
    auth = {"Authorization": f"Bearer {served.read}"}
    c = httpx.get(f"{served.url}/v1/proofs/consistency?first=17&second={size}",
                  headers=auth).json()
    import base64
    assert it.verify_consistency(17, size, cp1.root, cp2.root,
                                 [base64.b64decode(h) for h in c["hashes"]])
    p = httpx.get(f"{served.url}/v1/proofs/inclusion?seq=9&tree_size={size}", headers=auth)
    ev = httpx.get(f"{served.url}/v1/events/9", headers=auth).content
    files = {"event": ev, "proof": p.content, "cp": note.encode(), "key": vkey.encode()}
    for k, v in files.items():
        (tmp_path / k).write_bytes(v)
    args = ["server", "verify-proof", "--event", str(tmp_path / "event"), "--proof",
            str(tmp_path / "proof"), "--checkpoint", str(tmp_path / "cp"), "--key",
            str(tmp_path / "key")]
    ok = corral(*args, check=False)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: event "), ok.stdout + ok.stderr
    (tmp_path / "event").write_bytes(ev.replace(b"approved", b"denied"))
    bad = corral(*args, check=False)
    assert bad.returncode == 1 and "NOT in the log" in bad.stdout


def test_token_revoked_mid_stream(served: Served, tmp_path: Path) -> None:
    j = journal(tmp_path, 30)
    assert post(served.url, forward_request(j, 1, 10), served.ingest).status_code == 200
    tid = corral("server", "token", "list", "--data", str(served.data)).stdout.split()[0]
    corral("server", "token", "revoke", tid, "--data", str(served.data))
    r = post(served.url, forward_request(j, 11, 20), served.ingest)
    assert r.status_code == 401 and "token revoked" in r.text
    listed = corral("server", "token", "list", "--data", str(served.data)).stdout
    assert "revoked" in listed.splitlines()[0]
    assert httpx.get(served.url + "/healthz").json()["size"] == 10


def test_healthz_metrics_and_status(served: Served, tmp_path: Path) -> None:
    j = journal(tmp_path, 12)
    assert post(served.url, forward_request(j), served.ingest).status_code == 200
    assert post(served.url, b"junk", served.ingest).status_code == 400
    assert httpx.get(served.url + "/healthz").json()["size"] == 12
    assert httpx.get(served.url + "/metrics").status_code == 401
    text = httpx.get(served.url + "/metrics",
                     headers={"Authorization": f"Bearer {served.read}"}).text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert lines["corral_server_events_ingested_total"] == "12"
    assert lines["corral_server_log_size"] == "12"
    assert lines['corral_server_rejects_total{reason="400"}'] == "1"
    assert f'corral_server_forward_lag_seconds{{device="{j.id}"}}' in lines
    assert int(lines["corral_server_store_bytes"]) > 0
    status = json.loads(corral("server", "status", "--data", str(served.data), "--json").stdout)
    # 12 forwarded, and the access record of the one admitted /metrics read
    assert status["events"] == 13 and status["verifier_key"].startswith(status["origin"] + "+")


def test_batches_out_of_order_fill_the_gap_and_verify_clean(served: Served,
                                                            tmp_path: Path) -> None:
    j = journal(tmp_path, 10)
    assert post(served.url, forward_request(j, 6, 10), served.ingest).status_code == 200
    assert post(served.url, forward_request(j, 1, 5), served.ingest).status_code == 200
    assert post(served.url, forward_request(j, 3, 7), served.ingest).status_code == 200
    evs = _events(served)
    assert len(evs) == 10
    assert evs[0]["flags"] == [f"gap: journal {j.id} seqs 1..5 are missing"]
    assert evs[5]["flags"] == [f"late: journal {j.id} seq 1 arrived after seq 10"]
    res = _verify(served.data)
    assert res.returncode == 0, res.stdout  # the journal is whole now: nothing to report


def test_forged_journal_checkpoint_is_flagged(served: Served, tmp_path: Path) -> None:
    j = journal(tmp_path, 10, checkpoint_every=5)
    req = ExportLogsServiceRequest.FromString(forward_request(j))
    forged = 0
    for lr in req.resource_logs[0].scope_logs[0].log_records:
        for kv in lr.attributes:
            if kv.key == "corral.journal.checkpoint.head_hash" and forged == 0:
                kv.value.string_value = "f" * 64  # claims another head, signature now invalid
                forged += 1
    assert post(served.url, req.SerializeToString(), served.ingest).status_code == 200
    cp = next(e for e in _events(served) if e["kind"] == "checkpoint")
    assert any("checkpoint 5: signature invalid" in f for f in cp["flags"])  # type: ignore[union-attr]
    res = _verify(served.data)
    assert res.returncode == 1
    assert (f"corral: server verify: journal {j.id} (device {j.id}): checkpoint 5 (server seq 6):"
            " signature invalid or by another key") in res.stdout
