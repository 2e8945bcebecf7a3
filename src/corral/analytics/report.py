"""Reading ``--since``/``--until`` and printing `corral stats` as text."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

from corral.errors import CorralError

_REL = re.compile(r"(\d{1,6})([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, *, now_ns: int | None = None) -> int:
    """``7d``/``24h``/``30m`` ago, a date (``2026-12-01``, UTC midnight), an ISO time (UTC
    unless it names an offset) or nanoseconds since the epoch (what ``corral stats --server``
    sends), as ns since the epoch."""
    now = time.time_ns() if now_ns is None else now_ns
    s = text.strip()
    if s.isascii() and s.isdigit() and 16 <= len(s) <= 19:
        return int(s)
    m = _REL.fullmatch(s)
    if m:
        return now - int(m.group(1)) * _UNIT[m.group(2)] * 1_000_000_000
    try:
        when = dt.datetime.fromisoformat(s)
    except ValueError:
        raise CorralError("analytics", f"cannot read time {text!r}",
                          hint="use 7d, 24h, 30m, 2026-12-01 or 2026-12-01T09:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"


def render(s: dict[str, Any], *, indent: str = "") -> list[str]:
    """Text lines for one set of numbers (as ``numbers`` returns them)."""
    d, n, w = s["decisions"], s["network"], s["approval_wait_ms"]
    rate = n["per_100_tool_calls"]
    lines = [
        f"adoption: {s['sessions']} sessions, {s['active_users']} active users, "
        f"{s['turns']} turns",
        f"  agents: {_kv(s['agents'])}",
        f"  versions: {_kv(s['agent_versions'])}",
        *(f"  {k} policy: {_kv(v)}" for k, v in s["policies"].items()),
        f"tools: {s['tool_calls']} calls ({_kv(s['tools']['by_kind'])})",
        f"  MCP servers: {_kv(s['mcp_servers'])}",
        f"decisions: allow {d['allow']}, prompt {d['prompt']}, forbidden {d['forbidden']}",
        *(f"  {src}: {_kv(v)}" for src, v in d["by_source"].items()),
        f"  outcomes: {_kv(d['outcomes'])}",
        f"  approval wait (ms; {w.get('exact', 0)} measured from asking, the rest upper "
        f"bounds): {w['count']} answered, mean {w['mean']}, "
        f"max {w['max']}" + (f", p50 {w['p50']}, p95 {w['p95']}" if "p50" in w else ""),
        f"  grants by scope: {_kv(s['grants']['by_scope'])}",
        f"network: allow {n['allow']}, deny {n['deny']}, ask {n['ask']} "
        f"(per 100 tool calls: {rate['allow']} / {rate['deny']} / {rate['ask']})",
        "  top denied: " + (", ".join(f"{t['domain']} {t['count']}"
                                      for t in s["top_denied_domains"]) or "none"),
        "  top asked: " + (", ".join(f"{t['domain']} {t['count']}"
                                     for t in s["top_asked_domains"]) or "none"),
        f"sandbox: {_kv(s['sandbox']['outcomes'])}; denials by kind: "
        f"{_kv(s['sandbox']['denials_by_kind'])}",
        f"reviewer: {_kv(s['reviewer'])}",
        f"triage verdicts: {_kv(s['triage'])}",
        f"agent claims (not counted above): {_kv(s['claims'])}",
    ]
    return [indent + line for line in lines]


def render_all(s: dict[str, Any]) -> str:
    lines = render(s)
    if s["suggestions"]:
        lines.append("to tune (always approved when asked):")
        for sug in s["suggestions"]:
            text = sug["rule"] if sug["kind"] == "prefix_rule" else (
                f"[network.domains] {sug['line']}")
            lines.append(f"  {text}    # asked {sug['count']} times, approved every time")
    for name, g in s.get("groups", {}).items():
        lines.append(f"{s['by']} {name}:")
        lines += render(g, indent="  ")
    return "\n".join(lines) + "\n"
