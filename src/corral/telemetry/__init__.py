"""corral.telemetry: event schema v1, content tiers and redaction, the hash-chained journal with
signed checkpoints, and OTLP export (see docs/events.md).

Public surface::

    tel = Telemetry.open(cfg, session_id, agent="codex", agent_version="0.169.0")
    tel.emit("agent.tool.decision", {...}, call_id="c1", wait=True)   # or tel.emit_event(ToolDecision(...))
    tel.close()
    Journal(path).verify(load_public_key(home)) -> VerifyResult
    Journal(path).events(session_id=None)
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
    "NetworkDecision", "Problem", "SandboxOutcome", "SessionStart", "Telemetry", "TelemetryDrop",
    "ToolDecision", "ToolResult", "UserPrompt", "VerifyResult", "journal_file",
    "load_public_key", "stamp_env", "traceparent",
]
