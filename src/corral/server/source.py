"""The server's store as an ``EventSource`` (``corral.telemetry.source``): what the triage and
the analytics read when they run in ``corral server`` (``POST /v1/triage``, ``/v1/stats``, the
mounted dashboard).

Seqs are the server's seqs. Stored events become the journal's record shape:

* a forwarded journal record (kind ``record``) is the machine's own canonical JSON, exactly as
  its journal holds it (corral's pipeline records stay ``corral.origin = pipeline``);
* an event the server itself recorded (source ``corral.server``: a triage verdict) keeps its
  attributes;
* anything else (an agent's native OpenTelemetry, corral's best-effort exporter) is not
  hash-chained by a machine's journal, so it counts as a claim: ``corral.origin`` becomes
  ``import`` unless it already names another claim channel;
* checkpoints and the server's own ``server.*`` records (access audit, ...) are not agent
  activity and are left out; so are records that name no session.

Receive time rises with seq, and an event is received after it happened, so a time window
starts at the first event received at or after the window's start (binary search) and is
scanned to the head (a machine's backlog can arrive hours late).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from corral.server import formats
from corral.server.store.base import Scan, Store
from corral.telemetry.schema import Event
from corral.telemetry.source import MAX_WINDOW_EVENTS, SKEW_NS

SERVER_SOURCE = "corral.server"  # what the server records itself (Incoming.source)
_CHUNK = 5000
_ORIGIN = "corral.origin"


def record_of(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The journal-record form of a stored leaf, or None when it is no agent event."""
    name = str(doc.get("name") or "")
    if doc.get("kind") == "checkpoint" or name.startswith("server."):
        return None
    rec = doc.get("record")
    if doc.get("kind") == "record" and isinstance(rec, str):
        try:
            out = json.loads(rec)
        except ValueError:
            return None
        return out if isinstance(out, dict) and out.get("session_id") else None
    v = formats.view(doc)
    attrs = dict(v["attributes"]) if isinstance(v["attributes"], dict) else {}
    sid = v.get("session_id") or attrs.get("session.id") or attrs.get("gen_ai.conversation.id")
    if not sid:
        return None
    if doc.get("source") != SERVER_SOURCE and attrs.get(_ORIGIN) in (None, "pipeline"):
        attrs[_ORIGIN] = "import"
    return {"v": 1, "seq": doc.get("seq"), "id": str(doc.get("id")), "name": name,
            "time_unix_nano": int(doc.get("time_unix_nano") or 0), "session_id": str(sid),
            "turn_id": v.get("turn_id"), "call_id": v.get("call_id"),
            "user": str(v.get("user") or attrs.get("user.name") or ""),
            "host": str(v.get("host") or ""), "agent_name": str(v.get("agent_name") or ""),
            "agent_version": str(v.get("agent_version") or ""),
            "corral_version": str(v.get("corral_version") or ""), "tier": 0,
            "attributes": attrs}


def event_of(seq: int, leaf: bytes) -> Event | None:
    """The stored leaf as an ``Event`` whose seq is the server's seq (None for an event whose
    content retention or an erasure removed: only its hash is left)."""
    if not leaf:
        return None
    rec = record_of(json.loads(leaf))
    if rec is None:
        return None
    rec["seq"] = seq
    return Event.from_record(rec)


class StoreSource:
    """``EventSource`` over a server store. ``sessions`` maps a session id to the seqs of its
    events (the server's in-memory state fold), so a session is read by primary key."""

    def __init__(self, store: Store, origin: str,
                 sessions: Callable[[str], list[int] | None],
                 pause: Callable[[], None] | None = None) -> None:
        self.store = store
        self.origin = origin
        self._sessions = sessions
        self._pause = pause  # a background fold's: corral.server.foreground

    def _events(self, rows: list[tuple[int, bytes]]) -> list[Event]:
        out = []
        for seq, leaf in rows:
            ev = event_of(seq, leaf)
            if ev is not None:
                out.append(ev)
        return out

    # -- triage --------------------------------------------------------------------------
    def _first_received_at_or_after(self, t_ns: int) -> int:
        lo, hi = 1, self.store.head()[0] + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if (self.store.received_at(mid) or 0) < t_ns:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def window(self, t0_ns: int, t1_ns: int) -> tuple[list[Event], bool]:
        head = self.store.head()[0]
        first = self._first_received_at_or_after(t0_ns - SKEW_NS)
        out: list[Event] = []
        after = first - 1
        while after < head and len(out) < MAX_WINDOW_EVENTS:
            rows = self.store.scan(Scan(after, head, _CHUNK, since_ns=t0_ns - SKEW_NS,
                                        until_ns=t1_ns + SKEW_NS + 1))
            if not rows:
                break
            out += self._events(rows)
            after = rows[-1][0]
            if len(rows) < _CHUNK:  # this query read to the head: another would read it again
                after = head
        cut = len(out) > MAX_WINDOW_EVENTS or (len(out) == MAX_WINDOW_EVENTS and after < head)
        return out[:MAX_WINDOW_EVENTS], cut

    def session(self, session_id: str) -> list[Event]:
        out = []
        for seq in self._sessions(session_id) or []:
            leaf = self.store.leaf(seq)
            ev = event_of(seq, leaf) if leaf is not None else None
            if ev is not None and ev.session_id == session_id:
                out.append(ev)
        return out

    def before(self, seq: int, count: int) -> Iterator[Event]:
        rows = self.store.scan(Scan(max(0, seq - 1 - count), seq - 1, count))
        return iter(self._events(rows))

    # -- analytics -----------------------------------------------------------------------
    def identity(self) -> str:
        return f"corral-server:{self.origin}"

    def last_seq(self) -> int:
        return self.store.head()[0]

    def hash_at(self, seq: int) -> str | None:
        if not 0 < seq <= self.last_seq():
            return None
        return self.store.chain_before(seq + 1)

    def records(self, after_seq: int, until_seq: int) -> Iterator[tuple[int, bytes]]:
        after = after_seq
        while after < until_seq:
            rows = self.store.scan(Scan(after, until_seq, _CHUNK if self._pause is None
                                        else 1000))
            if not rows:
                return
            for i, (seq, leaf) in enumerate(rows):
                if self._pause is not None and i % 64 == 0:
                    self._pause()
                if not leaf:  # content removed under retention or erasure: nothing to count
                    continue
                doc = json.loads(leaf)
                rec = doc.get("record")
                if doc.get("kind") == "record" and isinstance(rec, str) and \
                        not str(doc.get("name", "")).startswith("server."):
                    yield seq, rec.encode()  # the machine's canonical JSON, as it is
                    continue
                out = record_of(doc)
                if out is not None:
                    yield seq, json.dumps(out, sort_keys=True, separators=(",", ":"),
                                          ensure_ascii=False).encode()
            after = rows[-1][0]
