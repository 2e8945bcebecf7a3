"""Current state derived from the log: sessions, users, devices, MCP servers, tools.

Nothing here is stored: a fold over the events, kept in memory and brought up to date from its
own cursor before each answer, so it can never disagree with the log (restart: it folds again).
A session keeps the seqs of its events, so its timeline is read back from the log itself.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from corral.server import formats
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


class State:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.seq = 0
        self.sessions: dict[str, _Session] = {}
        self.users: dict[str, _Seen] = {}
        self.devices: dict[str, _Seen] = {}
        self.mcp: dict[str, _Seen] = {}
        self.tools: dict[str, _Seen] = {}
        self.lock = threading.Lock()

    def refresh(self) -> int:
        with self.lock:
            head = self.store.head()[0]
            while self.seq < head:
                rows = self.store.scan(Scan(self.seq, head, _CHUNK))
                if not rows:
                    self.seq = head
                    break
                for seq, leaf in rows:
                    self._fold(seq, json.loads(leaf))
                self.seq = rows[-1][0]
            return self.seq

    def _fold(self, seq: int, doc: dict[str, Any]) -> None:
        if doc.get("kind") == "checkpoint" or str(doc.get("name", "")).startswith("server."):
            return
        v = formats.view(doc)
        a = v["attributes"]
        name = str(v["name"])
        t = int(v["time_unix_nano"] or 0)
        user, device, sid = v.get("user"), v.get("device"), v.get("session_id")
        if sid:
            s = self.sessions.get(sid)
            if s is None:
                s = self.sessions[sid] = _Session(str(sid), first_ns=t)
            s.user = s.user or user
            s.device = s.device or device
            s.host = s.host or v.get("host")
            s.agent = s.agent or v.get("agent_name")
            s.agent_version = s.agent_version or v.get("agent_version")
            s.first_ns = min(s.first_ns, t) if s.first_ns else t
            s.last_ns = max(s.last_ns, t)
            s.events += 1
            s.seqs.append(seq)
            if name == "agent.user_prompt":
                s.prompts += 1
            elif name == "agent.tool.decision":
                d = str(a.get("agent.decision"))
                s.decisions[d] = s.decisions.get(d, 0) + 1
            elif name == "agent.network.decision":
                d = str(a.get("network.policy.decision") or a.get("agent.decision"))
                s.network[d] = s.network.get(d, 0) + 1
            elif name == "agent.approval.grant":
                s.approvals += 1
            elif name == "agent.tool.result":
                s.results += 1
                if a.get("agent.tool.success") is False or a.get("process.exit.code") not in (
                        None, 0):
                    s.failures += 1
            if a.get("gen_ai.tool.name"):
                s.tools.add(str(a["gen_ai.tool.name"]))
        if user:
            u = self.users.setdefault(str(user), _Seen())
            u.touch(t)
            u.add("sessions", sid)
            u.add("devices", device)
            u.add("agents", v.get("agent_name"))
        if device:
            dv = self.devices.setdefault(str(device), _Seen())
            dv.touch(t)
            dv.add("hosts", v.get("host"))
            dv.add("users", user)
        server = a.get("mcp.server.name")
        # resources/read and prompts/get name a URI or a prompt there, not a tool
        tool = a.get("gen_ai.tool.name") if a.get("mcp.method.name") in (
            None, "tools/call") else None
        if server:
            m = self.mcp.setdefault(str(server), _Seen())
            m.touch(t)
            m.add("tools", tool)
            m.add("sessions", sid)
            if name == "agent.mcp.call":
                m.count("calls")
        if tool:
            tl = self.tools.setdefault(str(tool), _Seen())
            tl.touch(t)
            tl.add("kinds", a.get("gen_ai.tool.type"))
            tl.add("mcp_servers", server)
            if name == "agent.tool.decision":
                tl.count(f"decisions.{a.get('agent.decision')}")
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
