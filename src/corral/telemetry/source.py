"""Where triage and analytics read events: one read-only ``EventSource`` interface.

Two implementations: ``JournalSource`` here (one machine's journal file) and
``corral.server.source.StoreSource`` (the compliance log service's store). The triage engine
and the analytics rollups only ever see this interface, so the same code answers for one
machine and for the fleet.

The interface, in two groups:

* what the triage reads (``corral.triage``): a time window, one session, the events before a
  seq. The journal has an index on (session, seq) only, so a time window is found by binary
  search over seq (ids and times grow with seq; several supervisors writing one journal can
  interleave by a few seconds, hence ``SKEW_NS``) and then read as one seq range;
* what the analytics rollups read (``corral.analytics``): an identity (a different one means
  the rollups are rebuilt), the last seq, the chain hash at a seq (to notice a log that lost
  its tail), and the records after a cursor as the journal's canonical JSON.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from corral.telemetry.journal import Journal, connect
from corral.telemetry.schema import Event

SKEW_NS = 30 * 1_000_000_000  # how far emission order and seq order may disagree
MAX_WINDOW_EVENTS = 200_000  # more than this in one window: the rest is not read


class EventSource(Protocol):
    # -- triage --------------------------------------------------------------------------
    def window(self, t0_ns: int, t1_ns: int) -> tuple[list[Event], bool]:
        """Events emitted in [t0, t1] (and a little around), and whether the list was cut."""
        ...

    def session(self, session_id: str) -> list[Event]: ...

    def before(self, seq: int, count: int) -> Iterator[Event]:
        """Up to ``count`` events just before ``seq``, oldest first."""
        ...

    # -- analytics -----------------------------------------------------------------------
    def identity(self) -> str:
        """Stable id of the event log; rollups of another log are rebuilt."""
        ...

    def last_seq(self) -> int: ...

    def hash_at(self, seq: int) -> str | None:
        """Chain hash of record ``seq``, or None when there is no such record."""
        ...

    def records(self, after_seq: int, until_seq: int) -> Iterator[tuple[int, bytes]]:
        """(seq, canonical JSON of a journal record) of the records in (after, until], in
        order (a source may leave out seqs that hold no agent event)."""
        ...


class JournalSource:
    """``EventSource`` over a journal file (opened read-only)."""

    def __init__(self, path: Path, *, area: str = "analytics") -> None:
        self.path = path
        self.area = area  # whose refusal a missing journal is
        self.journal = Journal(path)
        self._last: int | None = None
        self._times: dict[int, int] = {}

    def _conn(self) -> sqlite3.Connection:
        if not self.path.exists():
            from corral.errors import CorralError

            raise CorralError(self.area, f"no journal at {self.path}",
                              hint="nothing has been recorded under this CORRAL_HOME yet")
        return connect(self.path, readonly=True)

    # -- triage --------------------------------------------------------------------------
    def _time(self, seq: int) -> int:
        t = self._times.get(seq)
        if t is None:
            ev = next(self.journal.events(after_seq=seq - 1, until_seq=seq), None)
            t = ev.time_unix_nano if ev is not None else 0
            self._times[seq] = t
        return t

    def _first_at_or_after(self, t_ns: int, last: int) -> int:
        lo, hi = 1, last + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._time(mid) < t_ns:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def window(self, t0_ns: int, t1_ns: int) -> tuple[list[Event], bool]:
        if self._last is None:  # one snapshot of the end for every binary search
            self._last = self.last_seq()
        last = self._last
        if last == 0:
            return [], False
        first = self._first_at_or_after(t0_ns - SKEW_NS, last)
        end = self._first_at_or_after(t1_ns + SKEW_NS, last) - 1
        if end < first:
            return [], False
        cut = end - first + 1 > MAX_WINDOW_EVENTS
        if cut:
            end = first + MAX_WINDOW_EVENTS - 1
        events = [ev for ev in self.journal.events(after_seq=first - 1, until_seq=end)
                  if t0_ns - SKEW_NS <= ev.time_unix_nano <= t1_ns + SKEW_NS]
        return events, cut

    def session(self, session_id: str) -> list[Event]:
        return list(self.journal.events(session_id=session_id))

    def before(self, seq: int, count: int) -> Iterator[Event]:
        return self.journal.events(after_seq=max(0, seq - 1 - count), until_seq=seq - 1)

    # -- analytics -----------------------------------------------------------------------
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
        self._conn().close()  # a missing journal is this source's one-line refusal
        return self.journal.last_seq()

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
