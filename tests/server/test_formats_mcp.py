"""The MCP gateway's records in the SIEM formats: `agent.mcp.call` is OCSF API Activity (6003)
with its outcome as disposition and status, what it acted on as a resource, its duration;
`agent.mcp.tools` a Base Event (Medium when the tool list changed); ECS category api."""

from __future__ import annotations

from typing import Any

from corral.server import ocsf_schema
from corral.server.formats import ecs, ocsf


def _doc(name: str, attrs: dict[str, Any], call_id: str | None = "call-3") -> dict[str, Any]:
    return {"id": "ev-1", "seq": 7, "name": name, "time_unix_nano": 1_700_000_000_000_000_000,
            "device": "dev-1", "record": {"session_id": "s1", "user": "dev", "host": "laptop",
                                          "agent_name": "codex", "call_id": call_id,
                                          "attributes": attrs}}


CALL = {"mcp.server.name": "files", "gen_ai.tool.name": "delete_tree",
        "mcp.method.name": "tools/call", "agent.mcp.outcome": "refused",
        "agent.mcp.duration_ms": 2.7,
        "agent.mcp.error": "corral: rules: MCP tool `files.delete_tree` is forbidden by policy"}


def test_a_refused_mcp_tool_call_is_a_blocked_api_activity() -> None:
    (ev,) = ocsf(_doc("agent.mcp.call", CALL))
    assert ocsf_schema.validate(ev, "api_activity") == []
    assert (ev["class_uid"], ev["activity_id"]) == (6003, 99)
    assert ev["api"] == {"operation": "tools/call", "service": {"name": "files"},
                         "request": {"uid": "call-3"}}
    assert ev["resources"] == [{"name": "delete_tree", "type": "mcp_tool"}]
    assert (ev["disposition_id"], ev["action_id"], ev["status_id"]) == (2, 2, 2)
    assert ev["status"] == "refused" and ev["status_detail"].startswith("corral: rules:")
    assert ev["duration"] == 2
    assert ev["message"] == "MCP tools/call delete_tree on files: refused"
    e = ecs(_doc("agent.mcp.call", CALL))
    assert e["event"]["category"] == ["api"] and e["event"]["type"] == ["denied"]
    assert e["event"]["outcome"] == "failure" and e["event"]["duration"] == 2_700_000
    assert e["event"]["reason"].startswith("corral: rules:")


def test_a_resource_read_is_a_read_and_a_tool_error_a_failure_that_was_allowed() -> None:
    read = {**CALL, "mcp.method.name": "resources/read", "gen_ai.tool.name": "note://a",
            "agent.mcp.outcome": "success"}
    del read["agent.mcp.error"]
    (ev,) = ocsf(_doc("agent.mcp.call", read))
    assert ocsf_schema.validate(ev, "api_activity") == []
    assert ev["activity_id"] == 2 and ev["type_uid"] == 600302
    assert ev["resources"] == [{"name": "note://a", "type": "mcp_resource"}]
    assert (ev["disposition_id"], ev["status_id"]) == (1, 1)
    failed = {**CALL, "agent.mcp.outcome": "tool_error"}
    (ev,) = ocsf(_doc("agent.mcp.call", failed, call_id=None))
    assert ocsf_schema.validate(ev, "api_activity") == []
    assert (ev["disposition_id"], ev["status_id"]) == (1, 2) and "request" not in ev["api"]
    e = ecs(_doc("agent.mcp.call", failed))
    assert e["event"]["type"] == ["allowed"] and e["event"]["outcome"] == "failure"


def test_a_changed_tool_list_is_a_medium_base_event() -> None:
    attrs = {"mcp.server.name": "files", "agent.mcp.tools.change": "changed",
             "agent.mcp.tools.hash": "ab" * 32, "agent.mcp.tools.count": 3,
             "agent.mcp.tools.changed": ["read_file"], "agent.mcp.tools.added": ["exfil"]}
    (ev,) = ocsf(_doc("agent.mcp.tools", attrs))
    assert ocsf_schema.validate(ev, "base_event") == []
    assert ev["class_uid"] == 0 and ev["severity_id"] == 3
    assert ev["message"] == "MCP server files tools changed: added exfil, changed read_file"
    (pinned,) = ocsf(_doc("agent.mcp.tools", {**attrs, "agent.mcp.tools.change": "pinned"}))
    assert pinned["severity_id"] == 1
    e = ecs(_doc("agent.mcp.tools", attrs))
    assert e["event"]["category"] == ["configuration"] and e["event"]["type"] == ["change"]
