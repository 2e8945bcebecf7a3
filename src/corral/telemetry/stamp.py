"""The stamping contract: every process the sandbox starts carries ``CORRAL_SESSION_ID``,
``CORRAL_CALL_ID`` and a W3C ``TRACEPARENT``, so endpoint telemetry about that process can be
joined to the decision that allowed it.

Trace and span ids are derived from the session and call ids (SHA-256, truncated), so anyone
holding the journal can recompute them; the OTLP exporter sets the same ids on log records.
"""

from __future__ import annotations

import re

from corral.telemetry.sha import sha256_bytes

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def trace_id(session_id: str) -> bytes:
    """16-byte W3C trace id of a session (never all zeros)."""
    raw = sha256_bytes(b"corral-trace\0" + session_id.encode())[:16]
    return raw if any(raw) else b"\x00" * 15 + b"\x01"


def span_id(call_id: str) -> bytes:
    """8-byte span id of a tool call (never all zeros)."""
    raw = sha256_bytes(b"corral-span\0" + call_id.encode())[:8]
    return raw if any(raw) else b"\x00" * 7 + b"\x01"


def traceparent(session_id: str, call_id: str | None) -> str:
    span = span_id(call_id or session_id)
    return f"00-{trace_id(session_id).hex()}-{span.hex()}-01"


def stamp_env(session_id: str, call_id: str | None) -> dict[str, str]:
    """The variables to add to a sandboxed process's environment."""
    env = {"CORRAL_SESSION_ID": session_id, "TRACEPARENT": traceparent(session_id, call_id)}
    if call_id:
        env["CORRAL_CALL_ID"] = call_id
    return env


def parse_traceparent(value: str) -> tuple[str, str] | None:
    """(trace id hex, span id hex) of a valid version-00 TRACEPARENT, else None."""
    m = _TRACEPARENT.match(value.strip())
    if not m or m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        return None
    return m.group(1), m.group(2)
