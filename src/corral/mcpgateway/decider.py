"""Where the gateway's questions go.

* ``LocalDecider``: a ``supervisor.Session`` this process opened (the gateway outside corral's
  sandbox): decisions and records are corral's own (origin ``pipeline``).
* ``ApiDecider``: the session API of the ``corral run`` the agent is in (the gateway inside the
  sandbox, where ``$CORRAL_HOME`` is hidden): the supervisor decides and records the decision;
  the call's outcome is reported like any hook's report (origin ``session_api``: the word of a
  process inside the sandbox).
"""

from __future__ import annotations

from typing import Any

from corral.mcpgateway.gateway import Verdict


class LocalDecider:
    def __init__(self, session: Any, server: str) -> None:
        self.session = session
        self.server = server

    def decide(self, tool: str, arguments: str, annotations: dict[str, Any] | None,
               method: str = "tools/call") -> Verdict:
        gate = self.session.pipeline.mcp.decide(self.server, tool, arguments, record_call=False,
                                                annotations=annotations, method=method)
        return Verdict(gate.allowed, gate.message, gate.call_id)

    def tools_seen(self, tools: dict[str, str], complete: bool) -> None:
        self.session.pipeline.mcp.tools_seen(self.server, tools, complete)

    def record(self, verdict: Verdict, tool: str, arguments: str, outcome: str,
               duration_ms: float, error: str | None, method: str = "tools/call") -> None:
        self.session.pipeline.mcp.record_call(verdict.call_id or "", self.server, tool,
                                              arguments, outcome, duration_ms, error, method)


class ApiDecider:
    def __init__(self, server: str, socket_path: str, token: str, *,
                 timeout: float = 3600.0) -> None:
        self.server = server
        self.socket_path = socket_path
        self.token = token
        self.timeout = timeout

    def _call(self, op: str, **fields: Any) -> dict[str, Any]:
        from corral.errors import CorralError
        from corral.supervisor.api import call

        reply = call(op, socket_path=self.socket_path, token=self.token, timeout=self.timeout,
                     **fields)
        if not reply.get("ok"):
            raise CorralError("mcp", str(reply.get("error") or "the supervisor refused"))
        return reply

    def server_settings(self) -> dict[str, Any]:
        """May this server start, and its limits (the supervisor's config): ``refusal``
        (None: it may), ``timeout_seconds``, ``max_message_bytes``."""
        return self._call("mcp_server", server=self.server)

    def decide(self, tool: str, arguments: str, annotations: dict[str, Any] | None,
               method: str = "tools/call") -> Verdict:
        r = self._call("decide", kind="mcp", server=self.server, tool=tool, method=method,
                       arguments=arguments, record=False, annotations=annotations or {})
        return Verdict(bool(r.get("allowed")), str(r.get("message") or ""),
                       str(r.get("call_id") or "") or None)

    def tools_seen(self, tools: dict[str, str], complete: bool) -> None:
        self._call("mcp_tools", server=self.server, tools=tools, complete=complete)

    def record(self, verdict: Verdict, tool: str, arguments: str, outcome: str,
               duration_ms: float, error: str | None, method: str = "tools/call") -> None:
        attrs: dict[str, Any] = {"mcp.server.name": self.server, "gen_ai.tool.name": tool,
                                 "mcp.method.name": method, "agent.mcp.outcome": outcome,
                                 "agent.mcp.duration_ms": round(duration_ms, 3)}
        if error:
            attrs["agent.mcp.error"] = error
        self._call("event", name="agent.mcp.call", attributes=attrs,
                   content={"arguments": arguments}, call_id=verdict.call_id)

