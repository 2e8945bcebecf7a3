"""Where the triage reads events: ``corral.telemetry.source`` (one interface, a journal and a
server-store implementation; see there)."""

from corral.telemetry.source import MAX_WINDOW_EVENTS, SKEW_NS, EventSource, JournalSource

__all__ = ["MAX_WINDOW_EVENTS", "SKEW_NS", "EventSource", "JournalSource"]
