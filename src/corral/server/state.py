"""Current state derived from the log: sessions, users, devices, MCP servers, tools.

Nothing here is stored: a fold over the events, kept in memory and brought up to date from its
own cursor before each answer, so it can never disagree with the log (restart: it folds again).
A session keeps the seqs of its events, so its timeline is read back from the log itself.
"""

from __future__ import annotations

import bisect
import json
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corral.server import formats
from corral.server.retention import TOMBSTONE
from corral.server.store.base import Scan, Store

_CHUNK = 5000


@dataclass
class _Session:
    id: str
    user: str | None = None
    device: str | None = None
    host: str | None = None
    agent: str | None = None
    agent_version: str | None = None
    first_ns: int = 0
    last_ns: int = 0
    events: int = 0
    prompts: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    network: dict[str, int] = field(default_factory=dict)
    approvals: int = 0
    results: int = 0
    failures: int = 0
    tools: set[str] = field(default_factory=set)
    seqs: list[int] = field(default_factory=list)

    def doc(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user, "device": self.device, "host": self.host,
                "agent": self.agent, "agent_version": self.agent_version,
                "first_time_unix_nano": self.first_ns, "last_time_unix_nano": self.last_ns,
                "events": self.events, "prompts": self.prompts, "decisions": self.decisions,
                "network_decisions": self.network, "approvals": self.approvals,
                "results": self.results, "failures": self.failures,
                "tools": sorted(self.tools)}


@dataclass
class _Seen:
    first_ns: int = 0
    last_ns: int = 0
    events: int = 0
    sets: dict[str, set[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def touch(self, t: int) -> None:
        self.first_ns = t if not self.first_ns else min(self.first_ns, t)
        self.last_ns = max(self.last_ns, t)
        self.events += 1

    def add(self, key: str, value: Any) -> None:
        if value:
            self.sets.setdefault(key, set()).add(str(value))

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def doc(self, **head: Any) -> dict[str, Any]:
        return {**head, "first_time_unix_nano": self.first_ns,
                "last_time_unix_nano": self.last_ns, "events": self.events,
                **{k: sorted(v) for k, v in sorted(self.sets.items())},
                **dict(sorted(self.counts.items()))}


# What one event contributes to the summaries: name, user, device, session, host, agent,
# agent version, decision (a tool decision's outcome or a network decision's verdict), failed
# (a tool result), the session's tool, MCP server, tool (for the MCP and tool summaries), tool
# kind. Interned: most events share theirs with many others.
_Facts = tuple[str, Any, Any, Any, Any, Any, Any, str, bool, "str | None",
               "str | None", "str | None", "str | None"]


def _h(v: Any) -> Any:
    """A hashable stand-in for an attribute value (a list or object becomes its JSON)."""
    if v is None or isinstance(v, (str, int, float)):
        return v
    return json.dumps(v, sort_keys=True, default=str)


def _s(v: Any) -> str | None:
    return str(v) if v else None


def _facts(doc: dict[str, Any]) -> tuple[int, _Facts]:
    v = formats.view(doc)
    a = v["attributes"]
    name = str(v["name"])
    decision = ""
    if name == "agent.tool.decision":
        decision = str(a.get("agent.decision"))
    elif name == "agent.network.decision":
        decision = str(a.get("network.policy.decision") or a.get("agent.decision"))
    failed = name == "agent.tool.result" and (
        a.get("agent.tool.success") is False or a.get("process.exit.code") not in (None, 0))
    # resources/read and prompts/get name a URI or a prompt there, not a tool
    tool = a.get("gen_ai.tool.name") if a.get("mcp.method.name") in (None, "tools/call") else None
    return int(v["time_unix_nano"] or 0), (
        name, _h(v.get("user")), _h(v.get("device")), _h(v.get("session_id")), _h(v.get("host")),
        _h(v.get("agent_name")), _h(v.get("agent_version")), decision, bool(failed),
        _s(a.get("gen_ai.tool.name")), _s(a.get("mcp.server.name")), _s(tool),
        _s(a.get("gen_ai.tool.type")))


class State:
    """The fold. Each event is reduced once to its facts (seq, time and an interned tuple of
    what the summaries use); the summaries are built from those facts. When a tombstone in the
    log clears events (retention, erasure), their facts are dropped and the summaries rebuilt
    from the remaining facts, so expired or erased events stop counting at once, as after a
    restart, without reading the log again."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seq = 0
        self.lock = threading.Lock()
        self._seqs = array("q")
        self._times = array("q")
        self._facts: list[_Facts | None] = []
        self._interned: dict[_Facts, _Facts] = {}
        self._reset()

    def _reset(self) -> None:
        self.sessions: dict[str, _Session] = {}
        self.users: dict[str, _Seen] = {}
        self.devices: dict[str, _Seen] = {}
        self.mcp: dict[str, _Seen] = {}
        self.tools: dict[str, _Seen] = {}

    def refresh(self, pause: Callable[[], None] | None = None) -> int:
        """Fold up to the head; ``pause`` (a background fold) is called every 64
        events (corral.server.foreground)."""
        with self.lock:
            head = self.store.head()[0]
            cleared = 0
            while self.seq < head:
                # a background fold reads smaller chunks: fewer rows converted at a stretch
                rows = self.store.scan(Scan(self.seq, head, _CHUNK if pause is None else 1000))
                if not rows:
                    self.seq = head
                    break
                for i, (seq, leaf) in enumerate(rows):
                    if pause is not None and i % 64 == 0:
                        pause()
                    doc = json.loads(leaf)
                    if doc.get("name") == TOMBSTONE:
                        cleared += self._drop(doc.get("record"))
                    else:
                        self._fold(seq, doc)
                self.seq = rows[-1][0]
            if cleared:
                self._rebuild()
            return self.seq

    def _fold(self, seq: int, doc: dict[str, Any]) -> None:
        if doc.get("kind") == "checkpoint" or str(doc.get("name", "")).startswith("server."):
            return
        t, facts = _facts(doc)
        facts = self._interned.setdefault(facts, facts)
        self._seqs.append(seq)
        self._times.append(t)
        self._facts.append(facts)
        self._apply(seq, t, facts)

    def _drop(self, rec: Any) -> int:
        """Forget the facts of the events a tombstone cleared; how many."""
        if isinstance(rec, str):
            rec = json.loads(rec)
        if not isinstance(rec, dict):
            return 0
        if rec.get("action") == "erasure":
            spans = [(int(a), int(b or a)) for a, _, b in
                     (r.partition("-") for r in str(rec.get("seqs") or "").split(",") if r)]
            name = None
        else:
            spans = [(int(rec.get("first_seq") or 0), int(rec.get("last_seq") or -1))]
            name = rec.get("event_type")
        n = 0
        for lo, hi in spans:
            i = bisect.bisect_left(self._seqs, lo)
            while i < len(self._seqs) and self._seqs[i] <= hi:
                f = self._facts[i]
                if f is not None and (name is None or f[0] == name):
                    self._facts[i] = None
                    n += 1
                i += 1
        return n

    def _rebuild(self) -> None:
        keep = [i for i, f in enumerate(self._facts) if f is not None]
        self._seqs = array("q", (self._seqs[i] for i in keep))
        self._times = array("q", (self._times[i] for i in keep))
        self._facts = [self._facts[i] for i in keep]
        self._interned = {f: f for f in self._facts if f is not None}
        self._reset()
        for seq, t, f in zip(self._seqs, self._times, self._facts, strict=True):
            assert f is not None
            self._apply(seq, t, f)

    def _apply(self, seq: int, t: int, f: _Facts) -> None:
        (name, user, device, sid, host, agent, version, decision, failed, stool, server, tool,
         kind) = f
        if sid:
            s = self.sessions.get(sid)
            if s is None:
                s = self.sessions[sid] = _Session(str(sid), first_ns=t)
            s.user = s.user or user
            s.device = s.device or device
            s.host = s.host or host
            s.agent = s.agent or agent
            s.agent_version = s.agent_version or version
            s.first_ns = min(s.first_ns, t) if s.first_ns else t
            s.last_ns = max(s.last_ns, t)
            s.events += 1
            s.seqs.append(seq)
            if name == "agent.user_prompt":
                s.prompts += 1
            elif name == "agent.tool.decision":
                s.decisions[decision] = s.decisions.get(decision, 0) + 1
            elif name == "agent.network.decision":
                s.network[decision] = s.network.get(decision, 0) + 1
            elif name == "agent.approval.grant":
                s.approvals += 1
            elif name == "agent.tool.result":
                s.results += 1
                s.failures += failed
            if stool:
                s.tools.add(stool)
        if user:
            u = self.users.setdefault(str(user), _Seen())
            u.touch(t)
            u.add("sessions", sid)
            u.add("devices", device)
            u.add("agents", agent)
        if device:
            dv = self.devices.setdefault(str(device), _Seen())
            dv.touch(t)
            dv.add("hosts", host)
            dv.add("users", user)
        if server:
            m = self.mcp.setdefault(server, _Seen())
            m.touch(t)
            m.add("tools", tool)
            m.add("sessions", sid)
            if name == "agent.mcp.call":
                m.count("calls")
        if tool:
            tl = self.tools.setdefault(tool, _Seen())
            tl.touch(t)
            tl.add("kinds", kind)
            tl.add("mcp_servers", server)
            if name == "agent.tool.decision":
                tl.count(f"decisions.{decision}")
            elif name == "agent.tool.result":
                tl.count("results")

    def listing(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            if kind == "sessions":
                return [s.doc() for _, s in sorted(self.sessions.items())]
            table = {"users": self.users, "devices": self.devices, "mcp-servers": self.mcp,
                     "tools": self.tools}[kind]
            key = {"users": "name", "devices": "id", "mcp-servers": "name",
                   "tools": "name"}[kind]
            return [x.doc(**{key: k}) for k, x in sorted(table.items())]

    def session(self, sid: str) -> tuple[dict[str, Any], list[int]] | None:
        with self.lock:
            s = self.sessions.get(sid)
            return None if s is None else (s.doc(), list(s.seqs))
