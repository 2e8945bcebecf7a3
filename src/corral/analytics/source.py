"""Where analytics reads events: ``corral.telemetry.source`` (one interface, a journal and a
server-store implementation; see there). ``JournalSource`` also names its SQLite file, which
lets the rollup fold records with SQL inside SQLite instead of parsing every record in Python.
"""

from corral.telemetry.source import EventSource, JournalSource

__all__ = ["EventSource", "JournalSource"]
