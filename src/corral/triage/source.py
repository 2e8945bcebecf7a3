"""Where the triage reads events: a read-only view of one machine's journal.

``EventSource`` is the whole contract (a server store can implement it later). The journal
has an index on (session, seq) only, so a time window is found by binary search over seq
(ids and times grow with seq; several supervisors writing one journal can interleave by a few
seconds, hence ``SKEW_NS``) and then read as one seq range.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from corral.telemetry import Journal
from corral.telemetry.schema import Event

SKEW_NS = 30 * 1_000_000_000  # how far emission order and seq order may disagree
MAX_WINDOW_EVENTS = 200_000  # more than this in one window: the rest is not read


class EventSource(Protocol):
    def window(self, t0_ns: int, t1_ns: int) -> tuple[list[Event], bool]:
        """Events emitted in [t0, t1] (and a little around), and whether the list was cut."""
        ...

    def session(self, session_id: str) -> list[Event]: ...

    def before(self, seq: int, count: int) -> Iterator[Event]:
        """Up to ``count`` events just before ``seq``, oldest first."""
        ...


class JournalSource:
    """``EventSource`` over a journal file (opened read-only)."""

    def __init__(self, path: Path) -> None:
        self.journal = Journal(path)
        self._last = self.journal.last_seq()
        self._times: dict[int, int] = {}

    def _time(self, seq: int) -> int:
        t = self._times.get(seq)
        if t is None:
            ev = next(self.journal.events(after_seq=seq - 1, until_seq=seq), None)
            t = ev.time_unix_nano if ev is not None else 0
            self._times[seq] = t
        return t

    def _first_at_or_after(self, t_ns: int) -> int:
        lo, hi = 1, self._last + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self._time(mid) < t_ns:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def window(self, t0_ns: int, t1_ns: int) -> tuple[list[Event], bool]:
        if self._last == 0:
            return [], False
        first = self._first_at_or_after(t0_ns - SKEW_NS)
        end = self._first_at_or_after(t1_ns + SKEW_NS) - 1
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
