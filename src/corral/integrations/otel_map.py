"""The agents' own OpenTelemetry log events, mapped into our event schema.

Codex names its events ``codex.<event>`` in the ``event.name`` attribute; Claude Code puts the
bare name (``user_prompt``) in the record's EventName and ``claude_code.<event>`` in the body;
Gemini CLI names them ``gemini_cli.<event>`` in ``event.name`` (its body is a sentence).
We read EventName, then ``event.name``, then the body, and map:

    user_prompt                   -> agent.user_prompt     (prompt as content: tiered)
    tool_decision                 -> agent.tool.decision
    tool_result                   -> agent.tool.result     (output and arguments as content)
    gemini_cli.tool_call          -> agent.tool.result     (its approval decision included)
    gemini_cli.api_response|error -> agent.model.request   (api_request: a generic record)
    sandbox_outcome               -> agent.sandbox.outcome
    network_proxy.*               -> agent.network.decision
    api_request                   -> agent.model.request
    per-chunk stream events       -> dropped (high volume, no audit value)
    anything else                 -> agent.import.record

Every mapped event keeps the original as ``agent.import.raw``: canonical JSON of the record with
its content fields (prompt, output, arguments, tool input) replaced by their length, so the raw
copy never carries content above the configured tier; secrets in it are redacted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from corral.insandbox.hooks import ToolCall, classify, kind_of

CONTENT_FIELDS = ("prompt", "output", "arguments", "tool_input", "tool_output", "body",
                  "response", "request",
                  # Gemini CLI (prompts and tool arguments at logPrompts, hook I/O, GenAI ops)
                  "function_args", "error", "error.message", "request_text", "response_text",
                  "hook_input",
                  "hook_output", "gen_ai.input.messages", "gen_ai.output.messages",
                  "gen_ai.system_instructions")
RESOURCE_CONTENT = ("process.command_args", "process.command_line")
DROPPED = frozenset({"sse_event", "websocket_event", "websocket_request"})
GENERIC = "agent.import.record"
# What the agents send instead of a prompt they were told not to log.
_REDACTED = (None, "", "[REDACTED]", "<REDACTED>")
_PREFIXES = (("codex.", "codex"), ("claude_code.", "claude-code"), ("gemini_cli.", "gemini"))

_CODEX_DECISIONS = {
    "approved": "approved", "approvedforsession": "approved_for_session",
    "approved_for_session": "approved_for_session", "approvedexecpolicyamendment":
    "approved_persistent", "denied": "denied", "abort": "abort", "timedout": "timed_out",
    "timed_out": "timed_out",
}
_CODEX_SOURCES = {"config": "rule", "user": "user", "automatedreviewer": "automated_reviewer",
                  "automated_reviewer": "automated_reviewer", "hook": "hook"}
# Claude Code: (decision, source) -> (our decision, our source)
_CLAUDE_SOURCES = {
    "config": ("rule", None), "hook": ("hook", None), "user_permanent": ("user",
                                                                        "approved_persistent"),
    "user_temporary": ("user", None), "user_abort": ("user", "abort"),
    "user_reject": ("user", "denied"),
}
_NET_SOURCES = {"baseline_policy": "rule", "decider": "user", "requirements": "requirements"}
_NET_PROTOCOLS = ("http", "https_connect", "socks5_tcp", "socks5_udp")
_SANDBOX_OUTCOMES = ("success", "failure", "sandbox_denied", "escalation_requested",
                     "escalation_approved", "escalation_denied", "error")
_RESULT_KINDS = ("shell", "patch", "mcp", "web")


@dataclass(frozen=True)
class NativeRecord:
    """One agent log record, flattened: attribute values are str, int, float, bool or list."""

    name: str  # as the agent spelled it
    attributes: dict[str, Any]
    resource: dict[str, Any]
    body: Any = None
    time_unix_nano: int = 0


@dataclass(frozen=True)
class Mapped:
    name: str
    attributes: dict[str, Any]
    content: dict[str, str] | None = None
    call_id: str | None = None
    turn_id: str | None = None


def identify(rec: NativeRecord) -> tuple[str, str]:
    """(agent, bare event name): ``codex.tool_result`` -> ("codex", "tool_result")."""
    for prefix, agent in _PREFIXES:
        if rec.name.startswith(prefix):
            return agent, rec.name[len(prefix):]
    body = rec.body if isinstance(rec.body, str) else ""
    for prefix, agent in _PREFIXES:
        if body.startswith(prefix) and body[len(prefix):] == rec.name:
            return agent, rec.name
    service = str(rec.resource.get("service.name", "")).lower()
    if "claude" in service:
        return "claude-code", rec.name
    if "codex" in service:
        return "codex", rec.name
    if "gemini" in service:
        return "gemini", rec.name
    return "unknown", rec.name


def _s(attrs: dict[str, Any], *keys: str) -> str | None:
    for k in keys:
        v = attrs.get(k)
        if isinstance(v, str) and v:
            return v
        if isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)
    return None


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    try:
        return int(str(v)) if v is not None else None
    except ValueError:
        return None


def _float(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def _bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return None


def _json_obj(v: Any) -> dict[str, Any]:
    if isinstance(v, dict):
        return v
    if isinstance(v, str) and v.startswith("{"):
        try:
            data = json.loads(v)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {}


def strip_resource(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` without the agent's command line (Gemini CLI's resource carries its argv,
    and so a ``-p`` prompt, in every record): replaced by its length."""
    return {k: (f"<content: {len(json.dumps(v, default=str).encode())} bytes>"
                if k in RESOURCE_CONTENT and v else v) for k, v in resource.items()}


def raw_json(rec: NativeRecord) -> str:
    """Canonical JSON of the record, content fields replaced by their length, secrets
    redacted."""
    from corral.telemetry.redact import redact

    def strip(attrs: dict[str, Any]) -> dict[str, Any]:
        return {k: (f"<content: {len(str(v).encode())} bytes>" if k in CONTENT_FIELDS and v
                    not in _REDACTED else v) for k, v in attrs.items()}

    body = rec.body
    if isinstance(body, str) and len(body) > 200:
        body = f"<content: {len(body.encode())} bytes>"
    doc = {"name": rec.name, "time_unix_nano": rec.time_unix_nano,
           "attributes": strip(rec.attributes), "resource": strip_resource(rec.resource),
           "body": body}
    return redact(json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                             default=str))


def map_record(rec: NativeRecord) -> Mapped | None:
    """Our event for ``rec``, or None when it is dropped as noise."""
    agent, name = identify(rec)
    if name in DROPPED or not name:  # stream chunks; unnamed internal logs ("flushing …")
        return None
    a = rec.attributes
    common: dict[str, Any] = {
        "agent.import.source": agent, "agent.import.event": rec.name,
        "agent.import.raw": raw_json(rec),
    }
    if rec.time_unix_nano:
        common["agent.import.time_unix_nano"] = rec.time_unix_nano
    conv = _s(a, "conversation.id", "session.id")
    if conv:
        common["gen_ai.conversation.id"] = conv
    model = _s(a, "model")
    if model:
        common["gen_ai.request.model"] = model
    turn = _s(a, "prompt.id", "turn.id", "prompt_id")
    call_id = _s(a, "call_id", "tool_use_id", "tool.call.id")
    mapper = _MAPPERS.get(name.split(".")[0] if name.startswith("network_proxy.") else name)
    mapped = mapper(agent, name, a) if mapper else None
    if mapped is None:
        return Mapped(GENERIC, common, None, call_id, turn)
    ev_name, attrs, content = mapped
    return Mapped(ev_name, {**common, **attrs}, content or None, call_id, turn)


_Out = tuple[str, dict[str, Any], dict[str, str]] | None


def _user_prompt(agent: str, name: str, a: dict[str, Any]) -> _Out:
    attrs: dict[str, Any] = {}
    length = _int(a.get("prompt_length"))
    if length is not None:
        attrs["agent.import.prompt_length"] = length
    prompt = a.get("prompt")
    content = {"prompt": prompt} if isinstance(prompt, str) and prompt not in _REDACTED else {}
    return "agent.user_prompt", attrs, content


def _tool_decision(agent: str, name: str, a: dict[str, Any]) -> _Out:
    tool = _s(a, "tool_name") or "unknown"
    raw_decision = str(a.get("decision", "")).lower().replace(" ", "")
    raw_source = str(a.get("source", "")).lower()
    if agent == "claude-code":
        source, forced = _CLAUDE_SOURCES.get(raw_source, (None, None))
        decision = forced or {"accept": "approved", "reject": "denied"}.get(raw_decision)
    else:
        source = _CODEX_SOURCES.get(raw_source.replace("_", "")) or \
            _CODEX_SOURCES.get(raw_source)
        decision = _CODEX_DECISIONS.get(raw_decision)
    if decision is None or source is None:
        return None
    if source == "rule" and decision == "approved":
        decision = "auto_approved"
    return "agent.tool.decision", {"gen_ai.tool.name": tool, "agent.decision": decision,
                                   "agent.decision.source": source}, {}


def _tool_result(agent: str, name: str, a: dict[str, Any]) -> _Out:
    tool = _s(a, "tool_name") or "unknown"
    params = _json_obj(a.get("tool_parameters"))
    args_text = a.get("arguments") if isinstance(a.get("arguments"), str) else None
    tool_input = a.get("tool_input") if isinstance(a.get("tool_input"), str) else None
    parsed = _json_obj(args_text) or _json_obj(tool_input)
    try:
        call = classify(tool, parsed)
    except ValueError:  # a shell tool whose arguments were not exported
        call = ToolCall(tool, kind_of(tool))
    kind = call.kind
    mcp_server = _s(a, "mcp_server") or _s(params, "mcp_server_name") or call.mcp_server
    if mcp_server:
        kind = "mcp"
    if kind not in _RESULT_KINDS:
        return None
    attrs: dict[str, Any] = {"gen_ai.tool.name": tool, "gen_ai.tool.type": kind}
    cmd = _s(params, "full_command", "bash_command") or call.command_line
    if cmd:
        attrs["process.command_line"] = cmd
    if mcp_server:
        attrs["mcp.server.name"] = mcp_server
    if call.files:
        attrs["agent.patch.files"] = list(call.files)
    duration = _float(a.get("duration_ms"))
    if duration is not None:
        attrs["agent.tool.duration_ms"] = duration
    success = _bool(a.get("success"))
    if success is not None:
        attrs["agent.tool.success"] = success
    content: dict[str, str] = {}
    if isinstance(a.get("output"), str):
        content["output"] = a["output"]
    args = args_text or tool_input
    if args:
        content["arguments"] = args
    return "agent.tool.result", attrs, content


def _sandbox_outcome(agent: str, name: str, a: dict[str, Any]) -> _Out:
    outcome = str(a.get("outcome", "")).lower()
    if outcome not in _SANDBOX_OUTCOMES:
        return None
    attrs: dict[str, Any] = {"gen_ai.tool.name": _s(a, "tool_name") or "unknown",
                             "agent.sandbox.outcome": outcome}
    for ours, theirs in (("agent.sandbox.initial_duration_ms", "initial_duration_ms"),
                         ("agent.sandbox.escalated_duration_ms", "escalated_duration_ms")):
        value = _float(a.get(theirs))
        if value is not None:
            attrs[ours] = value
    return "agent.sandbox.outcome", attrs, {}


def _network(agent: str, name: str, a: dict[str, Any]) -> _Out:
    host = _s(a, "server.address")
    decision = str(a.get("network.policy.decision", "")).lower()
    if name.endswith("block_decision") and not decision:
        decision = "deny"
    if not host or decision not in ("allow", "deny", "ask"):
        return None
    attrs: dict[str, Any] = {"network.policy.decision": decision, "server.address": host}
    port = _int(a.get("server.port"))
    if port is not None:
        attrs["server.port"] = port
    attrs["network.policy.source"] = _NET_SOURCES.get(str(a.get("network.policy.source")),
                                                      "proxy")
    reason = _s(a, "network.policy.reason")
    if reason:
        attrs["network.policy.reason"] = reason
    proto = a.get("network.transport.protocol")
    if proto in _NET_PROTOCOLS:
        attrs["network.transport.protocol"] = proto
    method = _s(a, "http.request.method")
    if method:
        attrs["http.request.method"] = method
    return "agent.network.decision", attrs, {}


def _api_request(agent: str, name: str, a: dict[str, Any]) -> _Out:
    """One model request with its usage: Codex's and Claude Code's ``api_request``, Gemini
    CLI's ``api_response`` and ``api_error`` (its ``api_request`` is sent before the answer, so
    it stays a generic record: one model request is one event)."""
    if agent == "gemini" and name == "api_request":
        return None
    attrs: dict[str, Any] = {}
    for ours, theirs, conv in (
        ("agent.model.duration_ms", ("duration_ms", "duration"), _float),
        ("gen_ai.usage.input_tokens", ("input_tokens", "input_token_count"), _int),
        ("gen_ai.usage.output_tokens", ("output_tokens", "output_token_count"), _int),
        ("gen_ai.usage.cache_read.input_tokens",
         ("cache_read_tokens", "cached_content_token_count"), _int),
        ("gen_ai.usage.cache_creation.input_tokens", ("cache_creation_tokens",), _int),
        ("agent.model.cost_usd", ("cost_usd",), _float),
        ("http.response.status_code", ("http.response.status_code", "status_code"), _int),
    ):
        value = next((v for k in theirs if (v := conv(a.get(k))) is not None), None)
        if value is not None:
            attrs[ours] = value
    error = _s(a, "error_type") if name == "api_error" else None
    if name == "api_error":
        attrs["error.type"] = error or "api_error"
    return "agent.model.request", attrs, {}


# Gemini CLI's approval decision, inside its tool_call event
_GEMINI_DECISIONS = {"accept": "approved", "auto_accept": "auto_approved", "modify": "approved",
                     "reject": "denied"}


def _gemini_tool_call(agent: str, name: str, a: dict[str, Any]) -> _Out:
    """``gemini_cli.tool_call``: the result of one tool call (``function_name``,
    ``function_args`` at logPrompts, ``tool_type`` native|mcp, ``mcp_server_name``), with the
    approval decision Gemini took for it (``agent.decision``)."""
    mcp = a.get("tool_type") == "mcp"
    same = {"tool_name": a.get("function_name"), "arguments": a.get("function_args"),
            "duration_ms": a.get("duration_ms"), "success": a.get("success"),
            "mcp_server": (_s(a, "mcp_server_name") or "unknown") if mcp else None}
    mapped = _tool_result(agent, name, {k: v for k, v in same.items() if v is not None})
    if mapped is None:
        return None
    ev, attrs, content = mapped
    decision = _GEMINI_DECISIONS.get(str(a.get("decision", "")).lower())
    if decision:
        attrs["agent.decision"] = decision
    error = _s(a, "error_type")
    if error:
        attrs["error.type"] = error
    return ev, attrs, content


_MAPPERS = {
    "user_prompt": _user_prompt, "tool_decision": _tool_decision, "tool_result": _tool_result,
    "sandbox_outcome": _sandbox_outcome, "network_proxy": _network,
    "api_request": _api_request, "api_response": _api_request, "api_error": _api_request,
    "tool_call": _gemini_tool_call,
}


# -- pointing the agents at a receiver ------------------------------------------------------


def env_for_agent(agent: str, endpoint: str, *, token: str | None = None,
                  tier: int = 1) -> dict[str, str]:
    """Environment variables that make ``agent`` export its OTel logs to ``endpoint`` (the
    receiver's base URL). Content the agent would only send for tier 2 (prompts, tool output)
    is switched on only at tier 2. Codex takes its exporter from config, not the environment:
    see ``args_for_agent``."""
    if agent == "codex":
        return {}
    if agent == "gemini":
        return _gemini_env(endpoint, token, tier)
    if agent != "claude-code":
        raise ValueError(f"unknown agent {agent!r}")
    env = {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{endpoint.rstrip('/')}/v1/logs",
        "OTEL_LOGS_EXPORT_INTERVAL": "1000",
        "OTEL_LOG_TOOL_DETAILS": "1" if tier >= 1 else "0",
        "OTEL_LOG_USER_PROMPTS": "1" if tier >= 2 else "0",
        "OTEL_LOG_TOOL_CONTENT": "1" if tier >= 2 else "0",
    }
    if token:
        env["OTEL_EXPORTER_OTLP_LOGS_HEADERS"] = f"authorization=Bearer {token}"
    return env


def args_for_agent(agent: str, endpoint: str, *, token: str | None = None,
                   tier: int = 1) -> list[str]:
    """Command-line arguments with the same effect (Codex: ``-c`` config overrides)."""
    if agent in ("claude-code", "gemini"):
        return []
    if agent != "codex":
        raise ValueError(f"unknown agent {agent!r}")
    headers = f', headers = {{ authorization = "Bearer {token}" }}' if token else ""
    exporter = (f'{{ otlp-http = {{ endpoint = "{endpoint.rstrip("/")}/v1/logs", '
                f'protocol = "binary"{headers} }} }}')
    return ["-c", f"otel.exporter={exporter}",
            "-c", f"otel.log_user_prompt={'true' if tier >= 2 else 'false'}",
            "-c", 'otel.environment="corral"']


def _gemini_env(endpoint: str, token: str | None, tier: int) -> dict[str, str]:
    """Gemini CLI: its ``GEMINI_TELEMETRY_*`` variables override ``telemetry`` in its settings
    files. OTLP over HTTP (JSON) to the receiver's base URL (Gemini appends ``/v1/logs``); an
    ``outfile`` in the user's settings would win over the endpoint, so it is set empty;
    ``logPrompts`` (prompts, tool arguments, request and response text) only at tier 2 — Gemini
    logs prompts unless told not to."""
    env = {
        "GEMINI_TELEMETRY_ENABLED": "true",
        "GEMINI_TELEMETRY_TARGET": "local",
        "GEMINI_TELEMETRY_OTLP_PROTOCOL": "http",
        "GEMINI_TELEMETRY_OTLP_ENDPOINT": endpoint.rstrip("/"),
        "GEMINI_TELEMETRY_OUTFILE": "",
        "GEMINI_TELEMETRY_USE_COLLECTOR": "false",
        "GEMINI_TELEMETRY_LOG_PROMPTS": "true" if tier >= 2 else "false",
        "OTEL_BLRP_SCHEDULE_DELAY": "1000",
    }
    if token:  # the JavaScript exporters read it for every signal
        env["OTEL_EXPORTER_OTLP_HEADERS"] = f"authorization=Bearer {token}"
    return env
