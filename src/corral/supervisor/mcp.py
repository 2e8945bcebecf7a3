"""MCP actions in the pipeline: a tool call's decision, the server's tool list against its pin,
and the record of each call.

* ``decide``: the configured ruling (``[mcp.servers.NAME]``, ``corral.rules.mcp``) ->
  forbidden, allowed, or a question for the reviewer and a person, exactly as a shell command's
  prompt; a tool whose definition changed since it was approved always asks again (and an
  approval re-pins it).
* ``tools_seen``: a ``tools/list`` answer compared with ``$CORRAL_HOME/mcp/pins``: the first list
  is pinned, a change is recorded (``agent.mcp.tools``) and its tools wait for approval.
* ``record_call``: ``agent.mcp.call`` with the outcome and duration (the MCP gateway's record).

``resources/read`` and ``prompts/get`` are decided the same way where ``[mcp.servers.NAME]
resources`` / ``prompts`` name them (``corral.rules.mcp``), and recorded either way.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from corral.types import RuleDecision

_ANNOTATION_KEYS = {"readOnlyHint": "read_only_hint", "destructiveHint": "destructive_hint",
                    "idempotentHint": "idempotent_hint", "openWorldHint": "open_world_hint"}


def reviewer_annotations(annotations: dict[str, Any] | None) -> dict[str, Any]:
    """An MCP tool's annotations as the reviewer reads them (``readOnlyHint`` ->
    ``read_only_hint``). They are the server's word, weighed as such."""
    out: dict[str, Any] = {}
    for key, value in (annotations or {}).items():
        out[_ANNOTATION_KEYS.get(key, key)] = value
    return out


class McpDecisions:
    """The MCP part of one ``Pipeline`` (thread-safe, like the pipeline)."""

    def __init__(self, pipeline: Any) -> None:
        from corral.approvals.pins import PinStore

        self.p = pipeline
        self.pins = PinStore(pipeline.cfg.corral_home)
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, str]] = {}  # server -> tool -> new hash

    def decide(self, server: str, tool: str, arguments: str | None = None, *,
               record_call: bool = True, annotations: dict[str, Any] | None = None,
               method: str = "tools/call") -> Any:
        """A ``tools/call`` (``tool``: its name), or a ``resources/read`` (the URI) or
        ``prompts/get`` (the prompt's name). A resource or prompt that no pattern names is
        undecided: allowed, with a call id for its record but no decision event."""
        from corral.rules.mcp import mcp_ruling
        from corral.supervisor.pipeline import DONT_BYPASS, EXIT_FORBIDDEN, Gate
        from corral.telemetry import McpCall

        p = self.p
        call_id = p._next_call_id()
        if record_call:
            p.telemetry.emit_event(McpCall(server=server, tool_name=tool, method=method,
                                           arguments=arguments), call_id=call_id)
        is_tool = method == "tools/call"
        line = f"mcp {server}.{tool}" if is_tool else f"mcp {server} {method} {tool}"
        argv = (server, tool)
        cwd = p.plan.cwd
        ruling = mcp_ruling(p.cfg, server, tool, method)
        if ruling is None:
            return Gate(call_id, argv, cwd, "allow", "undecided", True)
        what = (f"MCP tool `{server}.{tool}`" if is_tool else
                f"MCP {'resource' if method == 'resources/read' else 'prompt'} `{tool}` of "
                f"server `{server}`")
        if ruling.decision is RuleDecision.FORBIDDEN:
            p._decision(call_id, "forbidden", "rule", ruling.source, ruling.reason, line,
                        tool=tool)
            return Gate(call_id, argv, cwd, "forbidden", "forbidden", False, EXIT_FORBIDDEN,
                        f"corral: rules: {what} is forbidden by policy "
                        f"({ruling.source}): {ruling.reason}; {DONT_BYPASS}")
        details = {"server": server, "tool": tool, "method": method,
                   "annotations": reviewer_annotations(annotations),
                   "arguments": _parsed(arguments)}
        with self._lock:
            new_hash = self._pending.get(server, {}).get(tool) if is_tool else None
        if new_hash is not None:
            reason = (f"MCP tool {server}.{tool} changed its definition (description or "
                      "schema) since it was approved: approve it again")
            gate = p._resolve_prompt(call_id, "mcp", argv, cwd, "prompt", reason,
                                     ruling.source, line,
                                     details={**details, "definition_changed": True},
                                     standing=False)  # grants were for the old definition
            if gate.allowed:
                self._approved_change(server, tool, new_hash)
            return gate
        if ruling.decision is RuleDecision.ALLOW and p.approvals.name != "untrusted":
            p._decision(call_id, "auto_approved", "rule", ruling.source,
                        f"{ruling.reason}; approval policy {p.approvals.name}", line, tool=tool)
            return Gate(call_id, argv, cwd, "allow", "auto_approved", True)
        reason = ruling.reason if ruling.decision is RuleDecision.PROMPT else \
            "approval policy untrusted asks before MCP tool calls"
        return p._resolve_prompt(call_id, "mcp", argv, cwd, "prompt", reason, ruling.source,
                                 line, details=details)

    def tools_seen(self, server: str, tools: dict[str, str], complete: bool = True) -> Any:
        """A ``tools/list`` answer (tool name -> ``approvals.pins.tool_hash``) against the pin.
        Returns the ``ToolsDiff``; tools that changed wait for approval in this session."""
        from corral.approvals.pins import diff, list_hash
        from corral.telemetry import McpTools

        with self._lock:
            pinned = self.pins.load(server)
            d = diff(pinned, tools, complete)
            if d.first:
                self.pins.update(server, tools)
            pending = self._pending.setdefault(server, {})
            for name in d.needs_approval:
                pending[name] = tools[name]
            for name in [n for n in pending if n in tools and pinned is not None
                         and pinned.get(n) == tools[n]]:
                del pending[name]  # back to the approved definition
        if d.first or d.changed_any:
            self.p.telemetry.emit_event(McpTools(
                server=server, change="pinned" if d.first else "changed",
                tools_hash=list_hash(tools), count=len(tools), added=d.added or None,
                changed=d.changed or None, removed=d.removed or None), wait=True)
        if d.changed_any:
            import sys

            what = ", ".join(f"{k}: {', '.join(v)}" for k, v in (
                ("changed", d.changed), ("added", d.added), ("removed", d.removed)) if v)
            print(f"corral: mcp: server {server!r} changed its tools since they were approved "
                  f"({what}); changed and added tools ask again before their first call",
                  file=sys.stderr, flush=True)
        return d

    def _approved_change(self, server: str, tool: str, new_hash: str) -> None:
        from corral.approvals.pins import list_hash
        from corral.telemetry import McpTools

        with self._lock:
            self._pending.get(server, {}).pop(tool, None)
            pin = self.pins.update(server, {tool: new_hash})
        self.p.telemetry.emit_event(McpTools(
            server=server, change="approved", tools_hash=list_hash(pin), count=len(pin),
            changed=(tool,)), wait=True)

    def record_call(self, call_id: str, server: str, tool: str, arguments: str | None,
                    outcome: str, duration_ms: float, error: str | None = None,
                    method: str = "tools/call") -> None:
        from corral.telemetry import McpCall

        self.p.telemetry.emit_event(McpCall(
            server=server, tool_name=tool, method=method, outcome=outcome,
            duration_ms=round(duration_ms, 3), error=error or None, arguments=arguments),
            call_id=call_id)


def _parsed(arguments: str | None) -> Any:
    if not arguments:
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"raw": arguments[:2000]}
    return value if isinstance(value, dict) else {"value": value}
