"""The stateful API over real HTTP: sessions with their timelines, users, devices, MCP servers
and tools, all derived from the log (and brought up to date as it grows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from corral.telemetry.journal import JournalWriter
from corral.telemetry.schema import Event
from tests.server.compliance_helpers import T0, auth, read_token, server_with, start
from tests.server.helpers import Journal, forward_request, post, token

STEPS: list[tuple[str, dict[str, Any]]] = [
    ("agent.user_prompt", {"prompt": "deploy it", "prompt.length": 9,
                           "prompt.sha256": "cd" * 32}),
    ("agent.tool.decision", {"gen_ai.tool.name": "shell", "agent.decision": "approved",
                             "agent.decision.source": "rule"}),
    ("agent.tool.result", {"gen_ai.tool.name": "shell", "gen_ai.tool.type": "shell",
                           "process.exit.code": 2}),
    ("agent.network.decision", {"network.policy.decision": "deny",
                                "server.address": "evil.test"}),
    ("agent.approval.grant", {"agent.approval.scope": "session"}),
    ("agent.mcp.call", {"mcp.server.name": "github", "gen_ai.tool.name": "create_issue",
                        "mcp.method.name": "tools/call"}),
    ("agent.tool.decision", {"gen_ai.tool.name": "create_issue", "agent.decision": "denied",
                             "agent.decision.source": "user", "mcp.server.name": "github"}),
]


def _journal(tmp: Path, session: str, user: str, offset: int) -> Journal:
    tmp.mkdir()
    key = Ed25519PrivateKey.generate()
    w = JournalWriter(tmp / "j.db", key, checkpoint_every=10**9)
    w.append([Event(id=f"ev-{session}-{i}", name=n, time_unix_nano=T0 + offset + i,
                    session_id=session, turn_id="t1", call_id=f"call-{i}", user=user,
                    host=f"host-{user}", agent_name="claude-code", agent_version="2.0",
                    corral_version="0.1.0", tier=2, attributes=a)
              for i, (n, a) in enumerate(STEPS)])
    return Journal(w, key, tmp / "j.db")


def test_sessions_users_devices_mcp_servers_and_tools(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    server_with(data)
    ing, full, meta = token(data, "ingest"), read_token(data, "--content"), read_token(data)
    narrow = read_token(data, "--event-type", "agent.tool.decision", name="narrow")
    a = _journal(tmp_path / "a", "sa", "alice", 0)
    b = _journal(tmp_path / "b", "sb", "bob", 100)
    srv = start(data)
    try:
        assert post(srv.url, forward_request(a), ing).status_code == 200
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            s = c.get("/v1/sessions", headers=auth(full)).json()["data"]
            assert [x["id"] for x in s] == ["sa"]
            assert post(srv.url, forward_request(b), ing).status_code == 200  # state follows
            s = c.get("/v1/sessions", headers=auth(full)).json()["data"]
            assert [x["id"] for x in s] == ["sa", "sb"]
            sa = s[0]
            assert sa["user"] == "alice" and sa["device"] == a.id and sa["host"] == "host-alice"
            assert sa["agent"] == "claude-code" and sa["events"] == len(STEPS)
            assert sa["decisions"] == {"approved": 1, "denied": 1}
            assert sa["network_decisions"] == {"deny": 1}
            assert (sa["prompts"], sa["approvals"], sa["results"], sa["failures"]) == (1, 1, 1, 1)
            assert sa["tools"] == ["create_issue", "shell"]
            page = c.get("/v1/sessions", params={"limit": 1}, headers=auth(full)).json()
            assert [x["id"] for x in page["data"]] == ["sa"] and page["has_more"]
            page = c.get("/v1/sessions", params={"limit": 1, "after": page["next_after"]},
                         headers=auth(full)).json()
            assert [x["id"] for x in page["data"]] == ["sb"] and not page["has_more"]

            tl = c.get("/v1/sessions/sa", headers=auth(full)).json()
            assert tl["session"] == sa
            assert [e["id"] for e in tl["events"]] == [f"ev-sa-{i}" for i in range(len(STEPS))]
            assert "deploy it" in tl["events"][0]["record"]
            red = c.get("/v1/sessions/sa", headers=auth(meta)).json()
            assert "deploy it" not in str(red) and red["events"][0]["redacted"] is True
            assert c.get("/v1/sessions/nope", headers=auth(full)).status_code == 404
            assert c.get("/v1/sessions/a%20b", headers=auth(full)).status_code == 400

            users = c.get("/v1/users", headers=auth(full)).json()["data"]
            assert [(u["name"], u["sessions"], u["devices"]) for u in users] == [
                ("alice", ["sa"], [a.id]), ("bob", ["sb"], [b.id])]
            devices = c.get("/v1/devices", headers=auth(full)).json()["data"]
            assert {d["id"]: d["users"] for d in devices} == {a.id: ["alice"], b.id: ["bob"]}
            mcp = c.get("/v1/mcp-servers", headers=auth(full)).json()["data"]
            assert [(m["name"], m["tools"], m["calls"], m["sessions"]) for m in mcp] == [
                ("github", ["create_issue"], 2, ["sa", "sb"])]
            tools = {t["name"]: t for t in c.get("/v1/tools", headers=auth(full)).json()["data"]}
            assert set(tools) == {"shell", "create_issue"}
            assert tools["shell"]["decisions.approved"] == 2 and tools["shell"]["results"] == 2
            assert tools["create_issue"]["mcp_servers"] == ["github"]
            assert tools["create_issue"]["decisions.denied"] == 2

            r = c.get("/v1/sessions", headers=auth(narrow))
            assert r.status_code == 403 and "limited to some event types" in r.text
            assert c.get("/v1/users", params={"limit": "0"},
                         headers=auth(full)).status_code == 400
            acc = c.get("/v1/events", params={"name": "server.access", "limit": 1000},
                        headers=auth(full)).json()["data"]
            assert {"/v1/sessions", "/v1/sessions/{id}", "/v1/users", "/v1/devices",
                    "/v1/mcp-servers", "/v1/tools"} <= {e["record"]["endpoint"] for e in acc}
    finally:
        srv.stop()
