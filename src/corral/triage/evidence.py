"""The evidence pack: everything the journal says about the correlated session and calls.

Each record keeps its event id (so a verdict can cite it) and whether it is corral's own
(``trusted``: ``corral.origin`` = pipeline) or the agent's claim (session API, imported
telemetry). Content (prompts, tool output) appears only as the journal's tier recorded it:
text at tier 2, length and hash at tier 1, nothing at tier 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.telemetry.schema import Event
from corral.triage.correlate import ORIGIN, Correlation, normalise
from corral.triage.source import EventSource

MAX_ITEMS = 60  # per section: the model's context is bounded, the pack says what it left out
HISTORY_EVENTS = 5_000  # JSON-decoding these dominates the time when a session is found


def _origin(ev: Event) -> str:
    return str(ev.attributes.get(ORIGIN, "pipeline"))


def _base(ev: Event) -> dict[str, Any]:
    return {"event_id": ev.id, "name": ev.name, "origin": _origin(ev),
            "trusted": _origin(ev) == "pipeline", "call_id": ev.call_id,
            "time_unix_nano": ev.time_unix_nano}


def _pick(ev: Event, *keys: str) -> dict[str, Any]:
    out = _base(ev)
    for k in keys:
        v = ev.attributes.get(k)
        if v is not None:
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


@dataclass
class EvidencePack:
    session_id: str | None = None
    call_ids: list[str] = field(default_factory=list)
    agent: str | None = None
    workspace: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    sandbox: list[dict[str, Any]] = field(default_factory=list)
    network: list[dict[str, Any]] = field(default_factory=list)
    # results of the session's other calls (earlier output is where an injection arrives)
    context: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    prior: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "session_id", "call_ids", "agent", "workspace", "policy", "requests", "decisions",
            "results", "sandbox", "network", "context", "links", "prior", "notes")}

    def event_ids(self) -> set[str]:
        ids = {lk["event_id"] for lk in self.links}
        for sec in (self.requests, self.decisions, self.results, self.sandbox, self.network,
                    self.context):
            ids |= {r["event_id"] for r in sec}
        return ids


def _bounded(items: list[dict[str, Any]], name: str, notes: list[str]) -> list[dict[str, Any]]:
    if len(items) > MAX_ITEMS:
        notes.append(f"{len(items) - MAX_ITEMS} earlier {name} left out")
        return items[-MAX_ITEMS:]
    return items


def gather(corr: Correlation, source: EventSource, *,
           history_events: int = HISTORY_EVENTS) -> EvidencePack:
    """Build the pack for a correlation (an empty pack when no session was found)."""
    pack = EvidencePack(session_id=corr.session_id, call_ids=list(corr.call_ids))
    if corr.window_cut:
        pack.notes.append("the alert window held more events than are read; some were not")
    if corr.marker_problem:
        pack.notes.append(corr.marker_problem)
    for lk in corr.links:
        pack.links.append({"event_id": lk.event.id, "name": lk.event.name, "key": lk.key,
                           "strength": lk.strength, "why": lk.why, "trusted": lk.trusted})
    if corr.session_id is None:
        return pack
    calls = set(corr.call_ids)
    events = corr.session_events
    start = next((ev for ev in events if ev.name == "agent.session.start"
                  and _origin(ev) == "pipeline"), None)
    if start is not None:
        pack.agent = start.agent_name
        a = start.attributes
        pack.workspace = a.get("process.working_directory")  # type: ignore[assignment]
        pack.policy = {k: a[k] for k in ("agent.policy.approval", "agent.policy.sandbox",
                                         "agent.policy.network", "agent.policy.hash",
                                         "agent.policy.summary") if k in a}
        pack.policy["event_id"] = start.id
    else:
        pack.notes.append("the session has no session.start of corral's own")
    # the turn(s) the matched calls belong to: their prompts are "the user request"
    turns = {ev.turn_id for ev in events if ev.call_id in calls and ev.turn_id}
    reqs: list[dict[str, Any]] = []
    decs: list[dict[str, Any]] = []
    ress: list[dict[str, Any]] = []
    sbx: list[dict[str, Any]] = []
    net: list[dict[str, Any]] = []
    ctx: list[dict[str, Any]] = []
    for ev in events:
        n = ev.name
        in_call = ev.call_id in calls if calls else True
        if n == "agent.user_prompt":
            r = _pick(ev, "prompt", "prompt.length", "prompt.sha256", "prompt.truncated")
            r["tier"] = ev.tier
            r["turn_id"] = ev.turn_id
            r["for_matched_call"] = bool(turns and ev.turn_id in turns)
            reqs.append(r)
        elif n == "agent.tool.decision" and in_call:
            decs.append(_pick(ev, "gen_ai.tool.name", "agent.decision", "agent.decision.source",
                              "agent.decision.rule", "agent.decision.rationale",
                              "process.command_line"))
        elif n == "agent.tool.result":
            (ress if in_call else ctx).append(_pick(ev, "gen_ai.tool.name", "gen_ai.tool.type", "process.command_line",
                              "process.exit.code", "agent.tool.success", "agent.patch.files",
                              "mcp.server.name", "gen_ai.tool.call.result",
                              "gen_ai.tool.call.result.length",
                              "gen_ai.tool.call.result.sha256"))
        elif n == "agent.mcp.call":  # what the MCP gateway let through, and how it ended
            (ress if in_call else ctx).append(_pick(
                ev, "mcp.server.name", "mcp.method.name", "gen_ai.tool.name",
                "agent.mcp.outcome", "agent.mcp.error", "gen_ai.tool.call.arguments",
                "gen_ai.tool.call.arguments.length", "gen_ai.tool.call.arguments.sha256"))
        elif n == "agent.sandbox.outcome" and in_call:
            sbx.append(_pick(ev, "agent.sandbox.outcome", "agent.sandbox.escalated",
                             "agent.sandbox.denial", "agent.sandbox.profile"))
        elif n == "agent.network.decision":
            net.append(_pick(ev, "network.policy.decision", "server.address", "server.port",
                             "network.policy.source", "network.policy.reason", "process.pid"))
    if reqs and not any(r["for_matched_call"] for r in reqs) and calls:
        # no turn ids (prompts reported through the session API have none): the request is
        # the last prompt before the first matched call
        t_call = min((ev.time_unix_nano for ev in events if ev.call_id in calls), default=None)
        before = [r for r in reqs if t_call is not None and r["time_unix_nano"] <= t_call]
        if before:
            before[-1]["for_matched_call"] = True
    pack.requests = _bounded(reqs, "prompts", pack.notes)
    pack.decisions = _bounded(decs, "decisions", pack.notes)
    pack.results = _bounded(ress, "results", pack.notes)
    pack.sandbox = _bounded(sbx, "sandbox outcomes", pack.notes)
    pack.network = _bounded(net, "network decisions", pack.notes)
    pack.context = _bounded(ctx, "results of other calls", pack.notes)
    pack.prior = _prior(corr, source, pack, history_events)
    return pack


def _prior(corr: Correlation, source: EventSource, pack: EvidencePack,
           history_events: int) -> dict[str, Any]:
    """Did this user, in this repository, do the same before? Looks back ``history_events``
    events before the session (bounded, so a huge journal stays fast)."""
    events = corr.session_events
    if not events or history_events <= 0:
        return {"looked_back_events": 0, "similar": 0, "event_ids": []}
    first = min(ev.seq or 0 for ev in events)
    user = events[0].user
    cmds = {normalise(str(d["process.command_line"])) for d in pack.decisions
            if d.get("trusted") and "process.command_line" in d}
    dests = {str(n["server.address"]).lower() for n in pack.network
             if n.get("trusted") and any(lk["event_id"] == n["event_id"] for lk in pack.links)}
    cwd_of: dict[str, str] = {}
    similar: list[str] = []
    scanned = 0
    for ev in source.before(first, history_events):
        scanned += 1
        if ev.user != user or ev.session_id == corr.session_id:
            continue
        a = ev.attributes
        if a.get(ORIGIN, "pipeline") != "pipeline":
            continue
        if ev.name == "agent.session.start":
            cwd_of[ev.session_id] = str(a.get("process.working_directory", ""))
            continue
        if pack.workspace and cwd_of.get(ev.session_id, pack.workspace) != pack.workspace:
            continue
        cl = a.get("process.command_line")
        same_cmd = ev.name == "agent.tool.decision" and isinstance(cl, str) \
            and normalise(cl) in cmds
        same_dest = ev.name == "agent.network.decision" \
            and str(a.get("server.address", "")).lower() in dests
        if same_cmd or same_dest:
            similar.append(ev.id)
    return {"looked_back_events": scanned, "similar": len(similar), "event_ids": similar[-10:]}
