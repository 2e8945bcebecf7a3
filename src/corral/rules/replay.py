"""``corral policy replay``: re-decide past shell commands from the journal with new rules.

Reads ``agent.tool.decision`` events (their ``process.command_line``, as recorded: secrets may
be redacted) and lists every command whose rules decision would change.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from corral.rules.model import Policy
from corral.rules.runtime import decide

# what the recorded verdict says the rules decided before any human answered
_RECORDED = {"forbidden": "forbidden", "auto_approved": "allow"}


@dataclass(frozen=True)
class Change:
    seq: int | None
    command_line: str
    before: str  # allow | prompt | forbidden
    after: str
    source: str
    reason: str

    def line(self) -> str:
        where = f"#{self.seq} " if self.seq is not None else ""
        return f"{where}{self.before} -> {self.after}: {self.command_line}  [{self.source}]"


@dataclass
class ReplayResult:
    checked: int
    changes: list[Change]
    unreadable: list[tuple[int | None, str]]


def replay(events: Iterable[Any], policy: Policy, approval_policy: str = "on-request") -> ReplayResult:
    """``events`` are journal Events (``.name``, ``.attributes``, ``.seq``)."""
    out = ReplayResult(0, [], [])
    for ev in events:
        if getattr(ev, "name", None) != "agent.tool.decision":
            continue
        attrs = ev.attributes
        cmdline = attrs.get("process.command_line")
        if not isinstance(cmdline, str) or attrs.get("gen_ai.tool.name", "shell") != "shell":
            continue
        out.checked += 1
        before = _RECORDED.get(str(attrs.get("agent.decision")), "prompt")
        try:
            argv = shlex.split(cmdline)
        except ValueError:
            out.unreadable.append((ev.seq, cmdline))
            continue
        result = decide(argv, policy, approval_policy)
        after = result.decision.value
        if after != before:
            top = [m for m in result.matches if m.decision is result.decision]
            source = top[0].source if top else ""
            out.changes.append(Change(ev.seq, cmdline, before, after, source, result.reason))
    return out
