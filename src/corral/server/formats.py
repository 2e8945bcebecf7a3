"""SIEM encodings of stored events: OCSF 1.8, Elastic Common Schema, OTLP/JSON.

Each takes the stored leaf (parsed) and gives what a SIEM ingests unchanged. Nothing is
dropped: an event no OCSF class fits is a Base Event with its attributes under ``unmapped``.
OCSF classes (docs/compliance-api.md): tool decisions and MCP calls are API Activity (6003),
commands Process Activity (1007), file writes File System Activity (1001, one per file),
network decisions Network Activity (4001) or HTTP Activity (4002, plain HTTP and CONNECT),
triage verdicts Detection Finding (2004).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

OCSF_VERSION = "1.8.0"
FORMATS = ("json", "ocsf", "ecs", "otlp-json")
ALLOWED = {"approved", "approved_for_session", "approved_for_project", "approved_persistent",
            "auto_approved", "allow"}
_HTTP_METHODS = {"CONNECT": 1, "DELETE": 2, "GET": 3, "HEAD": 4, "OPTIONS": 5, "POST": 6,
                 "PUT": 7, "TRACE": 8, "PATCH": 9}


def view(doc: dict[str, Any]) -> dict[str, Any]:
    """The event's envelope and attributes, from a forwarded record or an OTel record."""
    rec = doc.get("record")
    out: dict[str, Any] = {"id": doc.get("id"), "seq": doc.get("seq"), "name": doc.get("name"),
                           "time_unix_nano": doc.get("time_unix_nano") or 0,
                           "device": doc.get("device"), "attributes": {}}
    if isinstance(rec, str):
        try:
            rec = json.loads(rec)
        except ValueError:
            rec = {}
    if isinstance(rec, dict) and "attributes" in rec and "raw" not in rec:
        for k in ("session_id", "user", "host", "agent_name", "agent_version", "call_id",
                  "corral_version", "turn_id"):
            if rec.get(k) is not None:
                out[k] = rec[k]
        out["attributes"] = rec.get("attributes") or {}
    elif isinstance(rec, dict):
        mapped = rec.get("event") if isinstance(rec.get("event"), dict) else None
        raw = rec.get("raw", rec)
        attrs = dict(raw.get("attributes") or {}) if isinstance(raw, dict) else {}
        if mapped:
            attrs.update(mapped.get("attributes") or {})
        out["attributes"] = attrs
        res = raw.get("resource", {}) if isinstance(raw, dict) else {}
        out["session_id"] = attrs.get("session.id") or attrs.get("gen_ai.conversation.id")
        out["user"] = attrs.get("user.name") or attrs.get("user.email") or attrs.get("user.id")
        out["host"] = res.get("host.name") if isinstance(res, dict) else None
        out["agent_name"] = res.get("service.name") if isinstance(res, dict) else None
    return out


# -- OCSF ---------------------------------------------------------------------------------

def ocsf(doc: dict[str, Any]) -> list[dict[str, Any]]:
    v = view(doc)
    a = v["attributes"]
    name = str(v["name"])
    if name in ("agent.tool.decision", "agent.mcp.call"):
        return [_api(v, a)]
    if name == "agent.network.decision":
        return [_network(v, a)]
    if name == "triage.verdict":
        return [_finding(v, a)]
    if name == "agent.mcp.tools":
        return [_mcp_tools(v, a)]
    if name in ("agent.tool.result", "agent.sandbox.outcome"):
        files = a.get("agent.patch.files")
        if isinstance(files, list) and files:
            return [_file(v, a, str(f)) for f in files]
        if a.get("process.command_line") or a.get("gen_ai.tool.type") == "shell":
            return [_process(v, a)]
    return [_base(v, a, 0, 0, 99)]


def _common(v: dict[str, Any], a: dict[str, Any], cls: int, activity: int,
            profiles: list[str]) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "class_uid": cls, "category_uid": cls // 1000, "activity_id": activity,
        "type_uid": cls * 100 + activity, "time": int(v["time_unix_nano"]) // 10**6,
        "severity_id": 1,
        "metadata": {"version": OCSF_VERSION, "uid": str(v["id"]), "log_name": "corral",
                     "event_code": str(v["name"]),
                     "product": {"name": "corral", "vendor_name": "corral",
                                 "version": str(v.get("corral_version") or "")},
                     "profiles": profiles},
        "message": str(v["name"]),
        "unmapped": {"corral": {k: a[k] for k in sorted(a)}, "corral.seq": v["seq"],
                     "corral.device": v["device"]},
    }
    if isinstance(v["seq"], int):
        ev["metadata"]["sequence"] = v["seq"]
    if v.get("session_id"):
        ev["metadata"]["correlation_uid"] = str(v["session_id"])
    return ev


def _actor(v: dict[str, Any]) -> dict[str, Any]:
    actor: dict[str, Any] = {"app_name": str(v.get("agent_name") or "agent")}
    if v.get("user"):
        actor["user"] = {"name": str(v["user"])}
    if v.get("session_id"):
        actor["session"] = {"uid": str(v["session_id"])}
    return actor


def _src(v: dict[str, Any]) -> dict[str, Any]:
    return {"hostname": str(v.get("host") or v.get("device") or "unknown")}


def _disposition(ev: dict[str, Any], decision: str) -> None:
    allowed = decision in ALLOWED
    ev["disposition_id"] = 1 if allowed else 2
    ev["action_id"] = 1 if allowed else 2
    ev["status_id"] = 1 if allowed else 2


def _api(v: dict[str, Any], a: dict[str, Any]) -> dict[str, Any]:
    mcp = v["name"] == "agent.mcp.call"
    op = str(a.get("mcp.method.name") if mcp else a.get("gen_ai.tool.name") or "tool")
    ev = _common(v, a, 6003, _MCP_ACTIVITY.get(op, 99) if mcp else 99,
                 ["security_control", "ai_operation"])
    api: dict[str, Any] = {"operation": op}
    if mcp and a.get("mcp.server.name"):
        api["service"] = {"name": str(a["mcp.server.name"])}
    if v.get("call_id"):
        api["request"] = {"uid": str(v["call_id"])}
    ev.update(actor=_actor(v), api=api, src_endpoint=_src(v))
    decision = str(a.get("agent.decision") or "")
    if decision:
        _disposition(ev, decision)
        ev["message"] = (f"{a.get('gen_ai.tool.name', 'tool')} {decision} by "
                         f"{a.get('agent.decision.source', '?')}")
    elif mcp:
        _mcp_outcome(ev, a, op)
    return ev


# resources/read and prompts/get read; a tool call is Other (it may do anything)
_MCP_ACTIVITY = {"resources/read": 2, "prompts/get": 2}
_MCP_RESOURCE = {"tools/call": "mcp_tool", "resources/read": "mcp_resource",
                 "prompts/get": "mcp_prompt"}


def _mcp_outcome(ev: dict[str, Any], a: dict[str, Any], op: str) -> None:
    """An MCP call's record: what it acted on, how it ended and how long it took."""
    name = str(a.get("gen_ai.tool.name") or "")
    ev["resources"] = [{"name": name, "type": _MCP_RESOURCE.get(op, "mcp")}]
    outcome = str(a.get("agent.mcp.outcome") or "")
    if outcome:
        refused = outcome == "refused"
        ev["disposition_id"] = 2 if refused else 1
        ev["action_id"] = 2 if refused else 1
        ev["status_id"] = 1 if outcome == "success" else 2
        ev["status"] = outcome
    if a.get("agent.mcp.error"):
        ev["status_detail"] = str(a["agent.mcp.error"])
    if isinstance(a.get("agent.mcp.duration_ms"), int | float):
        ev["duration"] = int(a["agent.mcp.duration_ms"])
    ev["message"] = (f"MCP {op} {name} on {a.get('mcp.server.name')}"
                     + (f": {outcome}" if outcome else ""))


def _mcp_tools(v: dict[str, Any], a: dict[str, Any]) -> dict[str, Any]:
    """A server's tool list against its pin: a Base Event, Medium when it changed (a rug pull
    is what this records)."""
    ev = _base(v, a, 0, 0, 99)
    change = str(a.get("agent.mcp.tools.change") or "")
    if change == "changed":
        ev["severity_id"] = 3
    what = ", ".join(f"{k} {', '.join(map(str, a[f'agent.mcp.tools.{k}']))}"
                     for k in ("added", "changed", "removed")
                     if isinstance(a.get(f"agent.mcp.tools.{k}"), list | tuple))
    ev["message"] = (f"MCP server {a.get('mcp.server.name')} tools {change}"
                     + (f": {what}" if what else ""))
    return ev


def _network(v: dict[str, Any], a: dict[str, Any]) -> dict[str, Any]:
    proto = str(a.get("network.transport.protocol") or "")
    host = str(a.get("server.address") or "")
    port = a.get("server.port")
    dst: dict[str, Any] = {"hostname": host}
    if isinstance(port, int):
        dst["port"] = port
    decision = str(a.get("network.policy.decision") or "")
    if proto in ("http", "https_connect"):
        method = "CONNECT" if proto == "https_connect" else str(a.get("http.request.method")
                                                                 or "GET").upper()
        act = _HTTP_METHODS.get(method, 99)
        ev = _common(v, a, 4002, act, ["security_control"])
        url: dict[str, Any] = {"hostname": host, "path": "/"}
        if isinstance(port, int):
            url["port"] = port
        ev["http_request"] = {"http_method": method, "url": url}
    else:
        ev = _common(v, a, 4001, 1 if decision == "allow" else 5, ["security_control"])
    ev.update(dst_endpoint=dst, src_endpoint=_src(v))
    _disposition(ev, decision)
    ev["message"] = f"network {decision} {host}" + (f":{port}" if port else "")
    return ev


def _device(v: dict[str, Any]) -> dict[str, Any]:
    return {"hostname": str(v.get("host") or v.get("device") or "unknown"), "type_id": 0}


def _process(v: dict[str, Any], a: dict[str, Any]) -> dict[str, Any]:
    ev = _common(v, a, 1007, 1, ["ai_operation"])
    proc: dict[str, Any] = {"uid": str(v.get("call_id") or v["id"]),
                            "name": str(a.get("gen_ai.tool.name") or "shell")}
    if a.get("process.command_line"):
        proc["cmd_line"] = str(a["process.command_line"])
    if isinstance(a.get("process.pid"), int):
        proc["pid"] = a["process.pid"]
    ev.update(actor=_actor(v), device=_device(v), process=proc)
    if isinstance(a.get("process.exit.code"), int):
        ev["exit_code"] = a["process.exit.code"]
        ev["status_id"] = 1 if a["process.exit.code"] == 0 else 2
    return ev


def _file(v: dict[str, Any], a: dict[str, Any], path: str) -> dict[str, Any]:
    ev = _common(v, a, 1001, 3, [])
    ev.update(actor=_actor(v), device=_device(v),
              file={"path": path, "name": path.rsplit("/", 1)[-1] or path, "type_id": 1})
    return ev


def _finding(v: dict[str, Any], a: dict[str, Any]) -> dict[str, Any]:
    from corral.triage.finding import finding_fields  # the one `corral triage --ocsf` uses

    ev = _common(v, a, 2004, 1, [])
    ev.update(finding_fields(a, str(v["id"])))
    ev["message"] = f"triage verdict {a.get('triage.verdict') or ''}"
    return ev


def _base(v: dict[str, Any], a: dict[str, Any], cls: int, cat: int,
          activity: int) -> dict[str, Any]:
    ev = _common(v, a, cls, activity, [])
    ev["category_uid"] = cat
    return ev


# -- ECS ------------------------------------------------------------------------------------

def ecs(doc: dict[str, Any]) -> dict[str, Any]:
    v = view(doc)
    a = v["attributes"]
    name = str(v["name"])
    t = int(v["time_unix_nano"])
    ts = datetime.datetime.fromtimestamp(t // 10**9, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    out: dict[str, Any] = {
        "@timestamp": f"{ts}.{t % 10**9:09d}Z",
        "ecs": {"version": "8.11.0"},
        "event": {"id": v["id"], "kind": "event", "action": name, "dataset": f"corral.{name}",
                  "module": "corral", "sequence": v["seq"]},
        "observer": {"product": "corral", "vendor": "corral", "type": "agent-supervisor"},
        "labels": {k: str(v[k]) for k in ("session_id", "call_id", "turn_id") if v.get(k)},
        "corral": {"attributes": a, "device": v["device"]},
    }
    if v.get("user"):
        out["user"] = {"name": v["user"]}
    if v.get("host"):
        out["host"] = {"hostname": v["host"], "name": v["host"]}
    if v.get("agent_name"):
        out["agent"] = {"name": v["agent_name"], "version": str(v.get("agent_version") or "")}
    cat, typ = ["process"], ["info"]
    decision = str(a.get("agent.decision") or a.get("network.policy.decision") or "")
    if decision:
        out["event"]["outcome"] = "success" if decision in ALLOWED else "failure"
        typ = ["allowed" if decision in ALLOWED else "denied"]
    if name == "agent.network.decision":
        cat = ["network"]
        out["destination"] = {"domain": a.get("server.address")}
        if isinstance(a.get("server.port"), int):
            out["destination"]["port"] = a["server.port"]
        out["network"] = {"protocol": str(a.get("network.transport.protocol") or "")}
    elif name == "triage.verdict":
        cat, typ = ["intrusion_detection"], ["indicator"]
        out["event"]["kind"] = "alert" if a.get("triage.verdict") == "escalate" else "event"
    elif isinstance(a.get("agent.patch.files"), list):
        cat, typ = ["file"], ["change"]
        out["file"] = {"path": a["agent.patch.files"][0]}
    elif name.startswith("server."):
        cat, typ = ["iam"], ["access"]
    elif name == "agent.mcp.call":
        cat, typ = _ecs_mcp(out, a)
    elif name == "agent.mcp.tools":
        cat = ["configuration"]
        typ = ["change"] if a.get("agent.mcp.tools.change") in ("changed", "approved") \
            else ["creation"]
    if a.get("process.command_line"):
        out["process"] = {"command_line": a["process.command_line"]}
        if isinstance(a.get("process.exit.code"), int):
            out["process"]["exit_code"] = a["process.exit.code"]
    out["event"]["category"] = cat
    out["event"]["type"] = typ
    return out


def _ecs_mcp(out: dict[str, Any], a: dict[str, Any]) -> tuple[list[str], list[str]]:
    """An MCP call: allowed or denied by its outcome, and its duration (ns)."""
    outcome = str(a.get("agent.mcp.outcome") or "")
    typ = ["access"]
    if outcome:
        out["event"]["outcome"] = "success" if outcome == "success" else "failure"
        typ = ["denied"] if outcome == "refused" else ["allowed"]
    if isinstance(a.get("agent.mcp.duration_ms"), int | float):
        out["event"]["duration"] = int(a["agent.mcp.duration_ms"] * 1_000_000)
    if a.get("agent.mcp.error"):
        out["event"]["reason"] = str(a["agent.mcp.error"])
    return ["api"], typ


# -- OTLP/JSON --------------------------------------------------------------------------------

def _any(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any(x) for x in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": [{"key": str(k), "value": _any(x)}
                                           for k, x in value.items()]}}
    return {"stringValue": "" if value is None else str(value)}


def otlp_json(doc: dict[str, Any]) -> dict[str, Any]:
    """One ExportLogsServiceRequest (OTLP/JSON) holding the event: post it to any OTLP/HTTP
    logs endpoint as is."""
    v = view(doc)
    attrs = {"event.name": v["name"], "event.id": v["id"], "corral.server.seq": v["seq"],
             **{k: x for k, x in v["attributes"].items()}}
    for k, key in (("session_id", "session.id"), ("user", "user.name"),
                   ("call_id", "gen_ai.tool.call.id")):
        if v.get(k):
            attrs[key] = v[k]
    res = {"service.name": "corral", "corral.device.id": v["device"]}
    if v.get("host"):
        res["host.name"] = v["host"]
    rec = {"timeUnixNano": str(v["time_unix_nano"]),
           "observedTimeUnixNano": str(doc.get("received_unix_nano") or 0),
           "severityNumber": 9, "severityText": "INFO", "eventName": v["name"],
           "body": {"stringValue": v["name"]},
           "attributes": [{"key": k, "value": _any(x)} for k, x in attrs.items()]}
    return {"resourceLogs": [{
        "resource": {"attributes": [{"key": k, "value": _any(x)} for k, x in res.items()]},
        "scopeLogs": [{"scope": {"name": "corral.server", "version": "1"},
                       "logRecords": [rec]}]}]}


def encode(leaf: bytes, fmt: str, doc: dict[str, Any] | None = None) -> list[bytes]:
    """The encoded event(s) of one stored leaf (OCSF may give one per file written)."""
    if fmt == "json":
        return [leaf]
    d = doc if doc is not None else json.loads(leaf)
    objs: list[dict[str, Any]]
    if fmt == "ocsf":
        objs = ocsf(d)
    elif fmt == "ecs":
        objs = [ecs(d)]
    else:
        objs = [otlp_json(d)]
    return [json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            for o in objs]
