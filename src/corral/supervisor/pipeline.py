"""The decision pipeline for one action, top to bottom in one place.

    rules        what kind of action is this?          allow | prompt | forbidden (+ provenance)
    approvals    does the approval policy need a human? (decided by ``rules.decide``)
    asker        who answers a prompt?                  a hook interface: TTY, queue, reviewer
    sandbox      where does it run?                     the permission profile's plan
    telemetry    what happened, and why?                decision, result and sandbox events

Each stage is plain data in, decision out; side effects (asking, running, journaling) happen in
``Pipeline.run`` only. Every refusal is one line naming the control and the reason, and tells an
agent not to work around it.
"""

from __future__ import annotations

import io
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from corral.types import RuleDecision

# Exit statuses of `corral exec` when the command did not run (documented in docs/exec.md).
EXIT_FORBIDDEN = 240  # forbidden by policy (rules, heuristics, requirements)
EXIT_DENIED = 241  # a person or reviewer said no
EXIT_CANNOT_ASK = 242  # approval needed but nobody could be asked

DONT_BYPASS = "do not try to achieve the same effect another way"


@dataclass(frozen=True)
class Question:
    """What a human (or reviewer) is asked about one action."""

    argv: tuple[str, ...]
    cwd: Path
    reason: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    approved: bool
    scope: str = "once"  # once | session | project | persistent
    who: str = "user"  # user | automated_reviewer | hook
    rationale: str = ""


class Asker(Protocol):
    """Extension point: who answers a prompt. Return None when nobody can be asked."""

    def ask(self, question: Question) -> Answer | None: ...


class NobodyAsker:
    """Headless: nobody can be asked, so a prompt is refused (fail closed)."""

    def ask(self, question: Question) -> Answer | None:
        return None


class TerminalAsker:
    """Ask on the controlling terminal, when one is attached to stdin and stderr."""

    def ask(self, question: Question) -> Answer | None:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            return None
        from rich.console import Console
        from rich.prompt import Confirm

        con = Console(stderr=True)
        con.print(f"[bold yellow]corral: approval needed[/] for [bold]{shlex.join(question.argv)}"
                  f"[/] in {question.cwd}")
        con.print(f"  why: {question.reason}")
        ok = Confirm.ask("  run it once?", console=con, default=False)
        return Answer(approved=ok, scope="once", who="user")


@dataclass
class ExecOutcome:
    exit_code: int
    ran: bool
    decision: str  # allow | prompt | forbidden (from rules)
    verdict: str  # the agent.tool.decision value recorded
    message: str = ""  # the refusal line, when the command did not run
    violations: list[str] = field(default_factory=list)
    duration_ms: float = 0.0
    stdout: bytes | None = None
    stderr: str | None = None


@dataclass(frozen=True)
class Gate:
    """The pipeline's verdict on one action before anything runs."""

    call_id: str
    argv: tuple[str, ...]
    cwd: Path
    decision: str  # what the rules said: allow | prompt | forbidden
    verdict: str  # what was decided: auto_approved | approved | denied | forbidden | ...
    allowed: bool
    exit_code: int = 0  # the refusal status when not allowed
    message: str = ""  # the refusal line when not allowed


def _first_match(decision: Any) -> tuple[str | None, str | None]:
    """(source, justification) of the strictest match, for the event and the message."""
    strictest = None
    for m in getattr(decision, "matches", []):
        d = RuleDecision(m.decision)
        if strictest is None or d.severity > RuleDecision(strictest.decision).severity:
            strictest = m
    if strictest is None:
        return None, None
    return strictest.source, strictest.justification


def _event_source(source: str | None) -> str:
    if source is None:
        return "rule"
    if source.startswith("heuristic") or source == "unparsed":
        return "heuristic"
    if source == "requirements":
        return "requirements"
    return "rule"


class Pipeline:
    """Runs actions for one session: the policy, sandbox plan and journal are loaded once.

    Thread-safe: a session's API serves concurrent actions.
    """

    def __init__(self, cfg: Any, telemetry: Any, *, approval_policy: str,
                 asker: Asker, sandbox_profile: str | None = None) -> None:
        from corral.rules import load_policy
        from corral.sandbox import Sandbox, plan_from_config

        self.cfg = cfg
        self.telemetry = telemetry
        self.approval_policy = approval_policy
        self.asker = asker
        self.policy = load_policy(cfg)
        self.plan = plan_from_config(cfg, cfg.cwd, profile=sandbox_profile)
        self.sandbox = Sandbox(self.plan)
        self._calls = 0
        self._lock = threading.Lock()

    def _next_call_id(self) -> str:
        with self._lock:
            self._calls += 1
            return f"call-{self._calls}"

    def run(self, argv: Sequence[str], cwd: Path) -> ExecOutcome:
        """Decide, then (when allowed) run in the sandbox, streaming output to ours."""
        gate = self.decide(argv, cwd)
        if not gate.allowed:
            return ExecOutcome(gate.exit_code, False, gate.decision, gate.verdict, gate.message)
        return self.execute(gate)

    def decide(self, argv: Sequence[str], cwd: Path) -> Gate:
        """Rules -> approval policy -> asker; records the decision event."""
        from corral.rules import decide

        call_id = self._next_call_id()
        argv = tuple(argv)
        cmdline = shlex.join(argv)
        decision = decide(list(argv), self.policy, self.approval_policy)
        source, justification = _first_match(decision)
        kind = RuleDecision(decision.decision)
        reason = decision.reason or justification or ""

        def refuse(code: int, verdict: str, message: str) -> Gate:
            return Gate(call_id, argv, cwd, kind.value, verdict, False, code, message)

        if kind is RuleDecision.FORBIDDEN:
            self._decision(call_id, "forbidden", _event_source(source), source, reason, cmdline)
            where = f" ({source})" if source else ""
            return refuse(EXIT_FORBIDDEN, "forbidden",
                          f"corral: rules: `{cmdline}` is forbidden by policy{where}: {reason}; "
                          f"{DONT_BYPASS}")
        verdict, who = "auto_approved", _event_source(source)
        if kind is RuleDecision.PROMPT:
            answer = self.asker.ask(Question(argv, cwd, reason,
                                             tuple(m.source for m in decision.matches)))
            if answer is None:
                self._decision(call_id, "denied", who, source, f"could not ask: {reason}", cmdline)
                return refuse(
                    EXIT_CANNOT_ASK, "denied",
                    f"corral: approvals: `{cmdline}` needs approval ({reason}) but nobody can be "
                    f"asked (no terminal; approval policy {self.approval_policy}); {DONT_BYPASS}")
            if not answer.approved:
                self._decision(call_id, "denied", answer.who, source, answer.rationale or reason,
                               cmdline)
                return refuse(
                    EXIT_DENIED, "denied",
                    f"corral: approvals: `{cmdline}` was denied by the {answer.who}"
                    f"{': ' + answer.rationale if answer.rationale else ''}; {DONT_BYPASS}")
            verdict = "approved" if answer.scope == "once" else f"approved_for_{answer.scope}"
            who = answer.who
        self._decision(call_id, verdict, who, source, reason, cmdline)
        return Gate(call_id, argv, cwd, kind.value, verdict, True)

    def execute(self, gate: Gate, *, capture: bool = False) -> ExecOutcome:
        """Run an allowed action in the sandbox and record its result and sandbox outcome.

        With ``capture`` the output comes back in the outcome (for the local API) instead of
        being streamed to our own stdout and stderr."""
        if not gate.allowed:
            raise ValueError("execute() needs an allowed gate")
        cmdline = shlex.join(gate.argv)
        sink = io.StringIO() if capture else None
        t0 = time.perf_counter()
        result = self.sandbox.run(
            list(gate.argv), gate.cwd, self.telemetry.stamp_env(gate.call_id),
            stdin=subprocess.DEVNULL if capture else None,
            stdout=subprocess.PIPE if capture else None, stderr_sink=sink,
        ) if not capture else self._run_captured(gate, sink)
        duration = (time.perf_counter() - t0) * 1000
        violations = [v.line() for v in result.violations]
        self.telemetry.emit("agent.tool.result", {
            "gen_ai.tool.name": "shell", "gen_ai.tool.type": "shell",
            "process.command_line": cmdline, "process.exit.code": result.returncode,
            "agent.tool.duration_ms": round(duration, 3),
            "agent.tool.success": result.returncode == 0,
        }, call_id=gate.call_id)
        outcome = "success" if result.returncode == 0 else (
            "sandbox_denied" if violations else "failure")
        attrs: dict[str, Any] = {
            "gen_ai.tool.name": "shell", "agent.sandbox.outcome": outcome,
            "agent.sandbox.profile": self.plan.profile, "agent.sandbox.escalated": False,
            "agent.sandbox.initial_duration_ms": round(duration, 3),
        }
        if violations:
            attrs["agent.sandbox.denial"] = "; ".join(violations)
        self.telemetry.emit("agent.sandbox.outcome", attrs, call_id=gate.call_id)
        return ExecOutcome(result.returncode, True, gate.decision, gate.verdict, "", violations,
                           duration, getattr(result, "captured_stdout", None),
                           sink.getvalue() if sink else None)

    def _run_captured(self, gate: Gate, sink: io.StringIO | None) -> Any:
        """Run with stdout captured (bounded) for API callers."""
        proc = self.sandbox.spawn(list(gate.argv), gate.cwd,
                                  self.telemetry.stamp_env(gate.call_id),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        out, err = proc.communicate()
        text = err.decode("utf-8", "replace")
        if sink is not None:
            sink.write(text)
        from corral.sandbox.feedback import explain_stderr

        violations = explain_stderr(text, self.plan, gate.cwd) if proc.returncode else []
        return _Captured(proc.returncode, violations, out[:MAX_CAPTURE])


    def _decision(self, call_id: str, verdict: str, who: str, source: str | None, reason: str,
                  cmdline: str) -> None:
        attrs: dict[str, Any] = {
            "gen_ai.tool.name": "shell", "agent.decision": verdict,
            "agent.decision.source": who, "process.command_line": cmdline,
        }
        if source and who in ("rule", "requirements", "heuristic"):
            attrs["agent.decision.rule"] = source
        if reason:
            attrs["agent.decision.rationale"] = reason
        self.telemetry.emit("agent.tool.decision", attrs, call_id=call_id)


MAX_CAPTURE = 1024 * 1024


@dataclass
class _Captured:
    returncode: int
    violations: list[Any]
    captured_stdout: bytes
