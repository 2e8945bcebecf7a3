"""Retention, holds and erasure end to end: a real ``corral server run``, the CLI, httpx.

Also: every read of the API leaves a ``server.access`` record, the single-item reads (proofs,
one event, checkpoints, metrics) included."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.server.compliance_helpers import auth, mixed_journal, read_token, server_with
from tests.server.helpers import ServerProc, corral, forward_request, post, token


def _files(c: httpx.Client, tok: str) -> list[dict[str, object]]:
    r = c.get("/v1/compliance/logs", params={"limit": 1000}, headers=auth(tok))
    assert r.status_code == 200, r.text
    return [f for f in r.json()["data"] if str(f["event_type"]).startswith("agent.")]


def test_every_single_item_read_is_audited(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    server_with(data)
    ing, rd = token(data, "ingest"), read_token(data, "--content")
    j = mixed_journal(tmp_path, 6)
    srv = ServerProc(data)
    try:
        assert post(srv.url, forward_request(j, with_checkpoints=False), ing).status_code == 200
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            deadline = time.monotonic() + 20
            while c.get("/v1/checkpoints/latest").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            reads = [("/v1/proofs/inclusion", {"seq": "2"}), ("/v1/events/3", {}),
                     ("/v1/proofs/consistency", {"first": "1", "second": "4"}),
                     ("/metrics", {})]
            for path, params in reads:
                assert c.get(path, params=params, headers=auth(rd)).status_code == 200, path
            acc = c.get("/v1/events", params={"name": "server.access", "limit": 1000},
                        headers=auth(rd)).json()["data"]
    finally:
        srv.stop()
    got = [(a["record"]["endpoint"], a["record"]["token"], a["record"]["filters"])
           for a in acc]
    assert ("/v1/proofs/inclusion", "siem", {"seq": "2"}) in got
    assert ("/v1/events/{seq}", "siem", {"seq": "3"}) in got
    assert ("/v1/proofs/consistency", "siem", {"first": "1", "second": "4"}) in got
    assert ("/metrics", "siem", {}) in got
    anon = [a["record"] for a in acc if a["record"]["endpoint"] == "/v1/checkpoints/latest"]
    assert anon and anon[0]["token"] == "anonymous"
    assert anon[0]["token_id"] == "anonymous@127.0.0.1"


@pytest.mark.slow
def test_retention_holds_and_erasure_through_the_cli_and_api(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    server_with(data, compliance_window=1, compliance_grace=0.1, retention_interval=3600.0)
    with open(data / "config.toml", "a") as fh:
        fh.write('[retention]\ndefault = "4s"\n"agent.tool.decision" = "forever"\n')
    ing, rd = token(data, "ingest"), read_token(data, "--content")
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    bob = mixed_journal(tmp_path / "b", 6, session="b", user="bob")
    alice = mixed_journal(tmp_path / "a", 6, session="a", user="alice")
    srv = ServerProc(data)
    try:
        assert post(srv.url, forward_request(bob, with_checkpoints=False), ing).status_code == 200
        time.sleep(1.2)  # the next one-second window
        assert post(srv.url, forward_request(alice, with_checkpoints=False),
                    ing).status_code == 200
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            deadline = time.monotonic() + 20
            while len(_files(c, rd)) < 6:
                assert time.monotonic() < deadline, _files(c, rd)
                time.sleep(0.2)
            files = _files(c, rd)
            held = corral("server", "hold", "create", "--data", str(data), "--user", "alice",
                          "--reason", "case 4711").stdout
            hold_id = held.split()[3]
            assert held.startswith(f"corral server: hold {hold_id} placed: user=alice")
            assert hold_id in corral("server", "hold", "list", "--data", str(data)).stdout
            refused = corral("server", "erase", "--data", str(data), "--user", "alice",
                             "--reason", "GDPR 1", check=False)
            assert refused.returncode == 2  # a refusal (CorralError)
            lines = refused.stderr.strip().splitlines()
            assert len(lines) == 1, refused.stderr
            assert f"under legal hold {hold_id} (case 4711" in lines[0]
            time.sleep(4.5)  # every window is now past the four-second retention
            out = corral("server", "retention", "--data", str(data)).stdout
            bob_prompts = next(f for f in files if f["event_type"] == "agent.user_prompt")
            assert f"expired {bob_prompts['id']}: 2 agent.user_prompt events" in out
            assert f"under legal hold {hold_id} (case 4711)" in out
            assert "agent.tool.decision" not in out  # kept forever
            listed = {f["id"] for f in _files(c, rd)}
            assert bob_prompts["id"] not in listed and len(listed) == 4
            r = c.get(f"/v1/compliance/logs/{bob_prompts['id']}", headers=auth(rd))
            assert r.status_code == 410
            assert "expired under retention (4s)" in r.text and "signed by" in r.text
            seq = 2  # bob's journal went first: seq 2 is his first prompt (mixed(1))
            r = c.get(f"/v1/events/{seq}", headers=auth(rd))
            assert r.status_code == 410 and "tombstone" in r.text, r.text
            proof = c.get("/v1/proofs/inclusion", params={"seq": seq}, headers=auth(rd))
            assert proof.status_code == 200
        corral("server", "hold", "release", hold_id, "--data", str(data))
        erased = corral("server", "erase", "--data", str(data), "--user", "alice",
                        "--reason", "GDPR 1").stdout
        assert "erased the content of 6 events of alice" in erased
    finally:
        srv.stop()
    ver = corral("server", "verify", "--data", str(data))
    expired = [ln for ln in ver.stdout.splitlines() if ln.startswith("expired: ")]
    assert any("expired under retention (4s)" in ln and "agent.user_prompt" in ln
               for ln in expired)
    assert any("events of user alice erased" in ln and "GDPR 1" in ln for ln in expired)
    assert ver.stdout.splitlines()[-1].startswith("ok: ")


def test_erasure_through_the_api_admin_only_refused_under_a_hold_and_audited(
        tmp_path: Path) -> None:
    data = tmp_path / "srv"
    server_with(data)
    ing, rd, adm = token(data, "ingest"), read_token(data, "--content"), token(data, "admin")
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    bob = mixed_journal(tmp_path / "b", 6, session="b", user="bob")
    alice = mixed_journal(tmp_path / "a", 6, session="a", user="alice")
    hold_id = corral("server", "hold", "create", "--data", str(data), "--user", "alice",
                     "--reason", "case 4711").stdout.split()[3]
    srv = ServerProc(data)
    try:
        for j in (bob, alice):
            assert post(srv.url, forward_request(j, with_checkpoints=False),
                        ing).status_code == 200
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            def users() -> dict[str, int]:
                r = c.get("/v1/users", headers=auth(rd))
                assert r.status_code == 200, r.text
                return {u["name"]: u["events"] for u in r.json()["data"]}

            def erase(tok: str, body: object) -> httpx.Response:
                return c.post("/v1/erasures", json=body, headers=auth(tok))

            assert users() == {"alice": 6, "bob": 6}
            r = erase(rd, {"user": "bob", "reason": "GDPR 2"})
            assert r.status_code == 403 and "does not allow admin" in r.text
            for bad, why in (({"user": "bob"}, "reason is required"),
                             ({"user": "bob", "reason": "x", "drop": 1}, "unknown field 'drop'"),
                             ({"user": "bob", "reason": "x", "since": "yesterday"}, "since"),
                             ([1], "JSON object")):
                r = erase(adm, bad)
                assert r.status_code == 400 and why in r.text, r.text
                assert r.text.count("\n") == 1 and r.text.startswith("corral: server: erase")
            r = erase(adm, {"user": "alice", "reason": "GDPR 1"})
            assert r.status_code == 409 and r.text.count("\n") == 1, r.text
            assert r.text.startswith("corral: server: erase refused: 6 of the 6 events of user "
                                     f"alice are under legal hold {hold_id} (case 4711")
            r = erase(adm, {"user": "bob", "reason": "GDPR 2", "dry_run": True})
            assert r.json() == {"user": "bob", "count": 6, "tombstone": None, "dry_run": True}
            assert users() == {"alice": 6, "bob": 6}  # nothing touched by either
            r = erase(adm, {"user": "bob", "reason": "GDPR 2"})
            assert r.status_code == 200 and r.json()["count"] == 6, r.text
            tid = r.json()["tombstone"]
            assert users() == {"alice": 6}  # the state follows the erasure at once
            seen = {e["id"]: e for e in _events(c, rd)}
            stone = seen[tid]["record"]
            assert (stone["action"], stone["user"], stone["reason"]) == ("erasure", "bob",
                                                                         "GDPR 2")
            assert stone["by"].startswith("token admin (")
            access = [e["record"]["filters"] for e in seen.values()
                      if e["name"] == "server.access"
                      and e["record"]["endpoint"] == "/v1/erasures"]
            # a request that would erase is recorded before it is applied, then its outcome
            assert [(a["user"], a["status"], a["dry_run"]) for a in access] == [
                ("alice", None, False), ("alice", 409, False), ("bob", 200, True),
                ("bob", None, False), ("bob", 200, False)]
            assert [a["outcome"] for a in access][::3] == ["requested", "requested"]
            assert access[1]["outcome"].startswith("erase refused")
    finally:
        srv.stop()
    assert corral("server", "verify", "--data", str(data)).stdout.splitlines()[-1].startswith(
        "ok: ")


def _events(c: httpx.Client, tok: str) -> list[dict[str, object]]:
    r = c.get("/v1/events", params={"limit": 1000}, headers=auth(tok))
    assert r.status_code == 200 and not r.json()["has_more"], r.text
    return list(r.json()["data"])
