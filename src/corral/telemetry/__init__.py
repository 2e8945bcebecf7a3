"""corral.telemetry: event schema v1, content tiers and redaction, the journal (SQLite, hash chain,
signed checkpoints), OTLP export (HTTP protobuf/JSON, gRPC) and process stamping.
See docs/events.md.

Public surface::

    tel = Telemetry.open(cfg, session_id, agent="codex", agent_version="0.169.0")
    tel.emit_event(SessionStart.from_summary(summary, approval_policy=..., config_sources=...))
    tel.emit_event(UserPrompt(prompt=text), turn_id=turn)
    tel.emit_event(ToolDecision.from_provenance("shell", "approved", provenance, cmdline),
                   call_id=call, turn_id=turn, wait=True)   # committed before approving
    env.update(tel.stamp_env(call))                           # CORRAL_SESSION_ID, CORRAL_CALL_ID, TRACEPARENT
    tel.emit("agent.tool.result", {...}, call_id=call, content={"output": out})
    tel.close()                                               # final signed checkpoint

    Journal(path).verify() -> VerifyResult(ok, problems=[Problem(seq, event_id, message)])
    Journal(path).events(session_id=None)

Every ``emit`` raises ``CorralError("telemetry", ...)`` once the journal cannot be written: the
caller must then stop approving actions.
"""

from corral.telemetry.api import Telemetry
from corral.telemetry.journal import Journal, Problem, VerifyResult, journal_file
from corral.telemetry.keys import load_public_key
from corral.telemetry.schema import (
    ApprovalGrant,
    ApprovalRevoke,
    ConfigChange,
    Event,
    McpCall,
    McpTools,
    NetworkDecision,
    SandboxOutcome,
    SessionStart,
    TelemetryDrop,
    ToolDecision,
    ToolResult,
    UserPrompt,
)
from corral.telemetry.stamp import stamp_env, traceparent

__all__ = [
    "ApprovalGrant", "ApprovalRevoke", "ConfigChange", "Event", "Journal", "McpCall",
    "McpTools", "NetworkDecision", "Problem", "SandboxOutcome", "SessionStart", "Telemetry",
    "TelemetryDrop",
    "ToolDecision", "ToolResult", "UserPrompt", "VerifyResult", "journal_file",
    "load_public_key", "stamp_env", "traceparent",
]
