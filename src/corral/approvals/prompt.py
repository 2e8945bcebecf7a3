"""Ask a person at the terminal: a Rich panel on stderr, one line of input back.

Shows the action, why it needs approval, the reviewer's view when there is one, what a
standing grant would cover, and only the scopes that may be granted for it. Unclear input is
asked again (three times), end of input is a denial: the prompt fails closed.
"""

from __future__ import annotations

import os
import select
import shlex
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from corral.approvals.broad import why_too_broad
from corral.approvals.model import Choice, Kind, Question, parse_expiry
from corral.display import shown
from corral.errors import CorralError

_KEYS = {
    Choice.ONCE: ("o", "once", "y", "yes", "1"),
    Choice.SESSION: ("s", "session", "2"),
    Choice.PROJECT: ("p", "project", "3"),
    Choice.PERSISTENT: ("a", "always", "persistent", "4"),
    Choice.DENY: ("d", "deny", "n", "no", "5"),
}
_LABEL = {
    Choice.ONCE: "[o]nce", Choice.SESSION: "[s]ession", Choice.PROJECT: "[p]roject",
    Choice.PERSISTENT: "[a]lways (persistent rule)", Choice.DENY: "[d]eny",
}
ATTEMPTS = 3


def offered_choices(question: Question) -> tuple[Choice, ...]:
    """The answers that may be given: standing grants only where they would be accepted."""
    out = [Choice.ONCE]
    pat = question.grant_pattern
    narrow = question.kind not in (Kind.SHELL, Kind.ESCALATION) or why_too_broad(pat) is None
    if narrow and question.session_id:
        out.append(Choice.SESSION)
    if narrow and question.kind is not Kind.ESCALATION:
        if question.project:
            out.append(Choice.PROJECT)
        persistent_ok = question.kind in (Kind.SHELL, Kind.MCP, Kind.PATCH) or (
            question.kind is Kind.NETWORK and len(pat) == 3 and pat[1] == "*" and pat[2] != "*")
        if persistent_ok and not any(ord(c) < 0x20 for t in pat for c in t):
            out.append(Choice.PERSISTENT)
    out.append(Choice.DENY)
    return tuple(out)


def describe_action(question: Question) -> str:
    """The action as a person sees it: the agent chose its text, so every character a terminal
    would act on (CR, ESC, bidi overrides...) is shown escaped."""
    if question.kind is Kind.NETWORK:
        host, port, proto = ([*list(question.argv), "*", "*"])[:3]
        return shown(f"network {proto}://{host}:{port}")
    return shown(f"{question.kind.value}: {shlex.join(question.argv)}")


def parse_answer(text: str, offered: tuple[Choice, ...]) -> Choice | None:
    word = text.strip().lower()
    for choice in offered:
        if word in _KEYS[choice]:
            return choice
    return None


@dataclass(frozen=True)
class TerminalReply:
    """A terminal answer; ``s 2h`` / ``p 1d`` also give the grant an expiry."""

    choice: Choice
    expires_at: float | None = None


def parse_reply(text: str, offered: tuple[Choice, ...]) -> TerminalReply | str:
    """The reply, or why it is not one (shown before asking again)."""
    words = text.split()
    if not words or len(words) > 2:
        return "please answer one of"
    choice = parse_answer(words[0], offered)
    if choice is None:
        return "please answer one of"
    if len(words) == 1:
        return TerminalReply(choice)
    if choice not in (Choice.SESSION, Choice.PROJECT):
        return "an expiry goes with session or project answers only; answer one of"
    try:
        return TerminalReply(choice, parse_expiry(words[1]))
    except CorralError as exc:
        return f"{exc.message}; answer one of"


def ask_terminal(question: Question, *, stdin: TextIO | None = None,
                 stderr: TextIO | None = None, timeout: float | None = None) -> Choice | None:
    """Ask at the terminal. None when no terminal is attached (to both stdin and stderr) or
    nobody answered within ``timeout`` seconds; DENY on end of input or unclear answers."""
    reply = ask_terminal_reply(question, stdin=stdin, stderr=stderr, timeout=timeout)
    return None if reply is None else reply.choice


def ask_terminal_reply(question: Question, *, stdin: TextIO | None = None,
                       stderr: TextIO | None = None,
                       timeout: float | None = None) -> TerminalReply | None:
    """:func:`ask_terminal`, keeping the expiry typed after a session or project answer."""
    from rich.console import Console
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    inp = stdin or sys.stdin
    out = stderr or sys.stderr
    try:
        if not (inp.isatty() and out.isatty()):
            return None
    except (ValueError, OSError):
        return None
    con = Console(file=out, highlight=False, soft_wrap=True)
    offered = offered_choices(question)
    grid = Table.grid(padding=(0, 1))
    grid.add_row("[bold]action[/]", escape(describe_action(question)))
    if question.cwd:
        grid.add_row("[bold]in[/]", escape(shown(question.cwd)))
    grid.add_row("[bold]why[/]", escape(shown(question.reason)))
    if question.reviewer_view:
        grid.add_row("[bold]reviewer[/]", escape(shown(question.reviewer_view)))
    if len(offered) > 2:
        grid.add_row("[bold]a grant covers[/]",
                     escape(shown(shlex.join(question.grant_pattern))) + " …")
    if Choice.SESSION in offered or Choice.PROJECT in offered:
        grid.add_row("[bold]expiry[/]", "add one after s or p, e.g. `s 2h`, `p 1d`")
    con.print(Panel(grid, title="corral: approval needed", border_style="yellow",
                    title_align="left"))
    choices = " / ".join(_LABEL[c] for c in offered)
    offer = escape(choices)
    deadline = None if timeout is None else time.monotonic() + timeout
    for _ in range(ATTEMPTS):
        con.print(f"allow {offer}? ", end="")
        out.flush()
        line = _read_line(inp, deadline)
        if line is None:
            con.print("\n[red]no answer in time[/]")
            return None
        if line == "":
            con.print("\n[red]end of input: denied[/]")
            return TerminalReply(Choice.DENY)
        reply = parse_reply(line, offered)
        if isinstance(reply, TerminalReply):
            return reply
        con.print(f"[red]{escape(reply)}: {offer}[/]")
    con.print("[red]no clear answer: denied[/]")
    return TerminalReply(Choice.DENY)


def _read_line(inp: TextIO, deadline: float | None) -> str | None:
    """A line from ``inp`` ('' at end of input), or None when the deadline passes."""
    if deadline is not None:
        try:
            fd = inp.fileno()
        except (OSError, ValueError):
            fd = -1
        if fd >= 0:
            remaining = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            raw = os.read(fd, 4096).decode("utf-8", "replace")
            return raw if raw else ""
    return inp.readline()
