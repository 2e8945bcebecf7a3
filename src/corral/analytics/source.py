"""Where analytics reads events: a read-only view of a journal.

``EventSource`` is the whole contract, so the server's store can plug in later: an identity (a
different one means the rollups are rebuilt), the records after a cursor as canonical JSON, the
chain hash at a seq (to notice a journal that lost its tail), and one session's events for the
timeline. ``JournalSource`` also names its SQLite file, which lets the rollup fold records with
SQL inside SQLite instead of parsing every record in Python.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from corral.telemetry import Journal
from corral.telemetry.journal import connect
from corral.telemetry.schema import Event


class EventSource(Protocol):
    def identity(self) -> str:
        """Stable id of the event log (the journal id); rollups of another log are rebuilt."""
        ...

    def last_seq(self) -> int: ...

    def hash_at(self, seq: int) -> str | None:
        """Chain hash of record ``seq``, or None when there is no such record."""
        ...

    def records(self, after_seq: int, until_seq: int) -> Iterator[tuple[int, bytes]]:
        """(seq, canonical JSON) of the records in (after, until], in order."""
        ...

    def session(self, session_id: str) -> list[Event]: ...


class JournalSource:
    """``EventSource`` over a journal file, opened read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.journal = Journal(path)

    def _conn(self) -> sqlite3.Connection:
        if not self.path.exists():
            from corral.errors import CorralError

            raise CorralError("analytics", f"no journal at {self.path}",
                              hint="nothing has been recorded under this CORRAL_HOME yet")
        return connect(self.path, readonly=True)

    def identity(self) -> str:
        conn = self._conn()
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='journal_id'").fetchone()
        except sqlite3.Error:
            row = None
        finally:
            conn.close()
        return str(row[0]) if row else ""

    def last_seq(self) -> int:
        conn = self._conn()
        try:
            row = conn.execute("SELECT MAX(seq) FROM events").fetchone()
        finally:
            conn.close()
        return int(row[0]) if row and row[0] is not None else 0

    def hash_at(self, seq: int) -> str | None:
        conn = self._conn()
        try:
            row = conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
        finally:
            conn.close()
        return str(row[0]) if row else None

    def records(self, after_seq: int, until_seq: int) -> Iterator[tuple[int, bytes]]:
        conn = self._conn()
        try:
            cur = conn.execute("SELECT seq, body FROM events WHERE seq > ? AND seq <= ? "
                               "ORDER BY seq", (after_seq, until_seq))
            for seq, body in cur:
                yield int(seq), bytes(body)
        finally:
            conn.close()

    def session(self, session_id: str) -> list[Event]:
        return list(self.journal.events(session_id=session_id))
