"""Readable views of journal events: a Rich tree per session (prompt → actions → decision and
result) and one-line summaries for ``--follow``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.text import Text
from rich.tree import Tree

from corral.display import shown as safe
from corral.telemetry.schema import ORIGIN_ATTR, Event


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _content(ev: Event, base: str) -> str:
    a = ev.attributes
    if base in a:
        text = str(a[base])
        return repr(text if len(text) <= 120 else text[:117] + "...")
    if f"{base}.length" in a:
        return f"[{a[f'{base}.length']} bytes, sha256 {str(a.get(f'{base}.sha256', ''))[:12]}]"
    return "[content not recorded]"


# Events the agent put in the journal are its claims, whatever their names say: each line
# says so first, so a forged "approved" or "exit 0" never reads like corral's own record.
CLAIMS = {"session_api": "claimed by the agent (session API): ",
          "import": "claimed by the agent (imported telemetry): "}


def _imported(t: Text, ev: Event, a: dict[str, Any], verbose: bool) -> Text:
    """An imported record in one summarised line (what it was, its call, its outcome); the raw
    record only with ``verbose``."""
    t.append(str(a.get("agent.import.event") or ev.name), style="bold")
    if ev.call_id:
        t.append(f" call {safe(ev.call_id)}")
    dec = a.get("agent.decision")
    if dec is not None:
        t.append(f" {dec}")
        if a.get("agent.decision.source"):
            t.append(f" by {a['agent.decision.source']}")
    if a.get("agent.sandbox.outcome"):
        t.append(f" {a['agent.sandbox.outcome']}")
    if a.get("network.policy.decision"):
        port = f":{a['server.port']}" if a.get("server.port") else ""
        t.append(f" {a['network.policy.decision']} {a.get('server.address')}{port}")
    ok = a.get("agent.tool.success")
    if isinstance(ok, bool):
        t.append(" ok" if ok else " failed", style="green" if ok else "red")
    elif a.get("process.exit.code") is not None:
        t.append(f" exit {a['process.exit.code']}")
    dur = a.get("agent.tool.duration_ms")
    if isinstance(dur, int | float) and not isinstance(dur, bool):
        t.append(f" {dur:.0f} ms")
    tool = a.get("gen_ai.tool.name")
    if tool and ev.name != "agent.user_prompt":
        t.append(f" {tool}", style="dim")
    if verbose and a.get("agent.import.raw"):
        t.append(f" {a['agent.import.raw']}", style="dim")
    return t


def describe(ev: Event, *, verbose: bool = False) -> Text:
    """One line for one event (``verbose``: imported records with their raw form)."""
    a = {k: safe(v) if isinstance(v, str) else v for k, v in ev.attributes.items()}  # #21.4
    n = ev.name
    t = Text(_time(ev.time_unix_nano)[11:] + " ", style="dim")
    claim = CLAIMS.get(str(a.get(ORIGIN_ATTR)))
    if claim:
        t.append(claim, style="bold yellow")
    if a.get(ORIGIN_ATTR) == "import" or "agent.import.event" in a:
        return _imported(t, ev, a, verbose)
    if n == "agent.session.start":
        t.append("session start", style="bold")
        for key, label in (("agent.policy.approval", "approval"), ("agent.policy.sandbox",
                           "sandbox"), ("agent.policy.network", "network"),
                           ("gen_ai.request.model", "model")):
            if a.get(key):
                t.append(f" {label}={a[key]}")
        if a.get("agent.policy.hash"):
            t.append(f" policy {str(a['agent.policy.hash'])[:12]}", style="dim")
    elif n == "agent.user_prompt":
        t.append("prompt ", style="bold cyan").append(_content(ev, "prompt"))
    elif n == "agent.tool.decision":
        dec = str(a.get("agent.decision"))
        style = "green" if dec.startswith(("approved", "auto")) else "bold red"
        t.append(f"{a.get('gen_ai.tool.name')} ", style="bold")
        if dec == "deferred_to_agent":  # corral did not decide: the agent's approval did
            t.append("deferred to the agent's own approval", style="yellow")
        else:
            t.append(dec, style=style).append(f" by {a.get('agent.decision.source')}")
        if a.get("agent.decision.rule"):
            t.append(f" ({a['agent.decision.rule']})", style="dim")
        if a.get("agent.decision.rationale"):
            t.append(f" — {a['agent.decision.rationale']}", style="italic")
        if a.get("process.command_line"):
            t.append(f": {a['process.command_line']}")
    elif n == "agent.tool.result":
        code = a.get("process.exit.code")
        ok = a.get("agent.tool.success", code == 0 if code is not None else None)
        t.append("result ", style="bold").append(
            f"exit {code}" if code is not None else str(ok), style="green" if ok else "red")
        dur = a.get("agent.tool.duration_ms")
        if isinstance(dur, int | float):
            t.append(f" in {dur:.0f} ms")
        t.append(f", output {_content(ev, 'gen_ai.tool.call.result')}")
    elif n == "agent.sandbox.outcome":
        t.append("sandbox ", style="bold").append(str(a.get("agent.sandbox.outcome")))
        if a.get("agent.sandbox.escalated"):
            t.append(" (escalated)", style="yellow")
    elif n == "agent.network.decision":
        dec = str(a.get("network.policy.decision"))
        t.append("network ", style="bold").append(dec, style="green" if dec == "allow" else "red")
        port = f":{a['server.port']}" if a.get("server.port") else ""
        t.append(f" {a.get('server.address')}{port}")
        if a.get("network.policy.reason"):
            t.append(f" ({a['network.policy.reason']})", style="dim")
    elif n == "agent.mcp.call":
        method = a.get("mcp.method.name")
        t.append("mcp ", style="bold").append(
            ("" if method in (None, "tools/call") else f"{method} ")
            + f"{a.get('mcp.server.name')}/{a.get('gen_ai.tool.name')} "
            f"args {_content(ev, 'gen_ai.tool.call.arguments')}")
        outcome = a.get("agent.mcp.outcome")
        if outcome:
            t.append(f" {outcome}", style="green" if outcome == "success" else "red")
    else:
        t.append(n, style="bold")
        shown = {k: v for k, v in a.items() if not k.endswith(".sha256") and k != ORIGIN_ATTR}
        if shown:
            t.append(" " + ", ".join(f"{k}={v}" for k, v in list(shown.items())[:6]), style="dim")
    return t


def session_tree(events: Iterable[Event], *, verbose: bool = False) -> Tree | None:
    """A tree for one session's events: turns (prompts) hold actions, actions hold their events.
    Everything an agent could choose (its name and version, call ids) is shown escaped."""
    evs = list(events)
    if not evs:
        return None
    first = evs[0]
    agent = safe(f"{first.agent_name} {first.agent_version}".strip())
    root = Tree(Text.assemble(("session ", "bold"), (safe(first.session_id), "bold magenta"),
                              f"  {agent}  {safe(first.user)}@{safe(first.host)}  "
                              f"{_time(first.time_unix_nano)}"))
    turn: Tree = root
    calls: dict[tuple[str | None, str], Tree] = {}
    for ev in evs:
        if ev.name == "agent.user_prompt" and ev.attributes.get(ORIGIN_ATTR) != "import":
            turn = root.add(describe(ev, verbose=verbose))
            continue
        if ev.call_id:
            key = (ev.turn_id, ev.call_id)
            node = calls.get(key)
            if node is None:
                node = turn.add(Text(f"call {safe(ev.call_id)}", style="bold blue"))
                calls[key] = node
            node.add(describe(ev, verbose=verbose))
        else:
            turn.add(describe(ev, verbose=verbose))
    return root


def to_json_line(ev: Event) -> str:
    rec: dict[str, Any] = ev.to_record()
    # ASCII only: an agent's text (escape sequences, bidi controls) never reaches a terminal raw
    return json.dumps(rec, sort_keys=True, ensure_ascii=True)
