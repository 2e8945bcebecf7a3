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
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from corral.record import Frozen, Record
from corral.types import RuleDecision

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:
    from typing import Any

    # Extension point: who answers at the terminal. The default asks on the controlling
    # terminal (Rich prompt with the scope options); ``no_terminal`` is for headless sessions.
    TerminalAsker = Callable[[Any], Any]

# Exit statuses of `corral exec` when the command did not run (documented in docs/exec.md).
EXIT_FORBIDDEN = 240  # forbidden by policy (rules, heuristics, requirements)
EXIT_DENIED = 241  # a person or reviewer said no
EXIT_CANNOT_ASK = 242  # approval needed but nobody could be asked

DONT_BYPASS = "do not try to achieve the same effect another way"


def no_terminal(question: Any) -> None:
    """Headless: nobody at this terminal (the question may still be queued)."""
    return None


class ExecOutcome(Record):
    """What happened to one action: ``decision`` is what the rules said (allow | prompt |
    forbidden), ``verdict`` the agent.tool.decision value recorded, ``message`` the refusal
    line when the command did not run."""

    __slots__ = _fields = ("exit_code", "ran", "decision", "verdict", "message", "violations",
                           "duration_ms", "stdout", "stderr")

    def __init__(self, exit_code: int, ran: bool, decision: str, verdict: str,
                 message: str = "", violations: list[str] | None = None,
                 duration_ms: float = 0.0, stdout: bytes | None = None,
                 stderr: str | None = None) -> None:
        self.exit_code = exit_code
        self.ran = ran
        self.decision = decision
        self.verdict = verdict
        self.message = message
        self.violations: list[str] = [] if violations is None else violations
        self.duration_ms = duration_ms
        self.stdout = stdout
        self.stderr = stderr


class Gate(Frozen):
    """The pipeline's verdict on one action before anything runs: ``decision`` is what the
    rules said (allow | prompt | forbidden), ``verdict`` what was decided (auto_approved |
    approved | denied | forbidden | ...); when not ``allowed``, ``exit_code`` and ``message``
    are the refusal; ``escalated``: approved to run with the filesystem boundary lifted."""

    _fields = ("call_id", "argv", "cwd", "decision", "verdict", "allowed", "exit_code",
               "message", "escalated")
    call_id: str
    argv: tuple[str, ...]
    cwd: Path
    decision: str
    verdict: str
    allowed: bool
    exit_code: int
    message: str
    escalated: bool

    def __init__(self, call_id: str, argv: tuple[str, ...], cwd: Path, decision: str,
                 verdict: str, allowed: bool, exit_code: int = 0, message: str = "",
                 escalated: bool = False) -> None:
        self._set(call_id=call_id, argv=argv, cwd=cwd, decision=decision, verdict=verdict,
                  allowed=allowed, exit_code=exit_code, message=message, escalated=escalated)


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


def _protected_edit(path: Path, roots: tuple[Path, ...]) -> bool:
    """A protected path of a writable root, or an agent/tool config name or git hooks/config at
    any depth (a nested ``.codex`` or ``.envrc`` runs code when a tool starts there)."""
    from corral.sandbox.protected import GIT_PROTECTED, PROTECTED_NAMES, is_protected_name

    if is_protected_name(path, roots):
        return True
    parts = path.parts
    git = {name for name, _ in GIT_PROTECTED}
    return any(p in PROTECTED_NAMES or (p == ".git" and i + 1 < len(parts) and
                                        parts[i + 1] in git) for i, p in enumerate(parts))


class Pipeline:
    """Runs actions for one session: the policy, sandbox plan and journal are loaded once.

    Thread-safe: a session's API serves concurrent actions.
    """

    def __init__(self, cfg: Any, telemetry: Any, *, approval_policy: Any,
                 terminal: TerminalAsker | None = None, reviewer: str = "user",
                 sandbox_profile: str | None = None, queue_timeout: float | None = None,
                 intent: str | None = None, grants: Any = None, network: Any = None) -> None:
        from corral.approvals import ApprovalPolicy
        from corral.rules import load_policy
        from corral.sandbox import Sandbox, plan_from_config

        self.cfg = cfg
        self.telemetry = telemetry
        self.approvals = ApprovalPolicy.from_config(approval_policy)
        # The rules map decisions by policy name; the granular form refines on-request.
        self.approval_policy = approval_policy if isinstance(approval_policy, str) \
            else "on-request"
        self.terminal = terminal
        self.queue_timeout = queue_timeout if queue_timeout is not None else float(
            cfg.get("approvals.queue_timeout_seconds", 0) or 0)
        self.intent = intent  # the user's request as corral recorded it (trusted)
        # A prompt nobody can answer goes to the agent's own approval (recorded as
        # deferred_to_agent) instead of being denied: set by hook sessions outside corral run,
        # never under corral run (the agent's approval may be off there) or corral exec.
        self.defer_to_agent = False
        self.claimed_intent: str | None = None  # what the agent reports the user asked
        self._grants = grants  # opened at the first question (``grants``)
        self._grants_lock = threading.Lock()
        self.reviewer_name = reviewer
        self.reviewer: Any = None
        self.breaker: Any = None
        if reviewer == "auto_review":
            from corral.review import breaker_from_config, reviewer_from_config

            self.reviewer = reviewer_from_config(cfg)
            self.breaker = breaker_from_config(cfg)
        self.policy = load_policy(cfg)
        # ``network``: the session's running managed proxy (a NetworkPlan), used when the
        # profile's network mode is proxy.
        self.plan = plan_from_config(cfg, cfg.cwd, profile=sandbox_profile, proxy=network,
                                     network=None if network is None else "proxy")
        self.sandbox = Sandbox(self.plan)
        self.project = str(cfg.project_root or cfg.cwd)
        self._calls = 0
        self._lock = threading.Lock()
        self._recent: list[str] = []  # recent tool calls and results: context for the reviewer
        self._escalated: Any = None
        self._mcp: Any = None

    @property
    def grants(self) -> Any:
        """The grants database, opened when first needed: a command the rules allow or forbid
        never asks, and every ``corral exec`` would otherwise open it (and import the approvals
        store). Grants only allow more, so a database that cannot be opened refuses then."""
        with self._grants_lock:
            if self._grants is None:
                from corral.approvals import GrantStore

                self._grants = GrantStore(home=self.cfg.corral_home)
            return self._grants

    def close_grants(self) -> None:
        """Close the grants database if it was opened."""
        with self._grants_lock:
            if self._grants is not None:
                self._grants.close()

    def _next_call_id(self) -> str:
        with self._lock:
            self._calls += 1
            return f"call-{self._calls}"

    def run(self, argv: Sequence[str], cwd: Path, *, escalate: bool = False) -> ExecOutcome:
        """Decide, then (when allowed) run in the sandbox, streaming output to ours."""
        gate = self.decide(argv, cwd, escalate=escalate)
        if not gate.allowed:
            return ExecOutcome(gate.exit_code, False, gate.decision, gate.verdict, gate.message)
        return self.execute(gate)

    def decide(self, argv: Sequence[str], cwd: Path, *, escalate: bool = False,
               tool: str = "shell", env: Mapping[str, str] | None = None) -> Gate:
        """Rules -> approval policy -> reviewer -> grants/person; records the decision.

        ``tool`` names the channel in the record (``exec``: seen at the exec boundary), ``env``
        the variables the program gets that differ from the session's start (the rules judge
        those that name programs).

        ``escalate`` asks to run outside the filesystem boundary: its own kind of action that
        always needs a person's explicit approval (no reviewer, no grant of another kind) and
        still runs with secrets hidden and under the session's network policy."""
        from corral.rules import decide

        call_id = self._next_call_id()
        argv = tuple(argv)
        cmdline = shlex.join(argv)
        decision = decide(list(argv), self.policy, self.approval_policy, cwd=str(cwd), env=env)
        source, justification = _first_match(decision)
        kind = RuleDecision(decision.decision)
        reason = decision.reason or justification or ""
        who = _event_source(source)

        def refuse(code: int, verdict: str, by: str, why: str, message: str) -> Gate:
            self._decision(call_id, verdict, by, source, why, cmdline, tool=tool)
            return Gate(call_id, argv, cwd, kind.value, verdict, False, code,
                        f"{message}; {DONT_BYPASS}")

        if kind is RuleDecision.FORBIDDEN:
            where = f" ({source})" if source else ""
            return refuse(EXIT_FORBIDDEN, "forbidden", who, reason,
                          f"corral: rules: `{cmdline}` is forbidden by policy{where}: {reason}")
        if escalate:
            return self._decide_escalation(call_id, argv, cwd, kind, source, reason, cmdline)
        if kind is RuleDecision.ALLOW:
            self._decision(call_id, "auto_approved", who, source, reason, cmdline, tool=tool)
            return Gate(call_id, argv, cwd, kind.value, "auto_approved", True)

        return self._resolve_prompt(call_id, "shell", argv, cwd, kind.value, reason, source,
                                    cmdline, tool=tool)

    def decide_patch(self, files: Sequence[str], cwd: Path) -> Gate:
        """A file edit the agent will make itself (apply_patch, Edit, Write): allowed inside the
        writable roots, forbidden on protected paths (they would run code later, outside the
        sandbox), and a question anywhere else or under ``untrusted``."""
        call_id = self._next_call_id()
        written = tuple(os.path.normpath(cwd / os.path.expanduser(f)) for f in files)
        paths = tuple(str(Path(p).resolve()) for p in written)
        line = "patch " + " ".join(paths)
        roots = tuple(self.plan.writable_roots)
        protected = [p for p, w in zip(paths, written, strict=True)
                     if _protected_edit(Path(p), roots) or _protected_edit(Path(w), roots)]
        if protected:
            why = f"{protected[0]} is a protected path (it would run code outside the sandbox)"
            self._decision(call_id, "forbidden", "rule", "sandbox:protected", why, line,
                           tool="apply_patch")
            return Gate(call_id, paths, cwd, "forbidden", "forbidden", False, EXIT_FORBIDDEN,
                        f"corral: sandbox: edit refused: {why}; {DONT_BYPASS}")
        outside = [p for p in paths if not any(Path(p) == r or Path(p).is_relative_to(r)
                                                for r in roots)]
        if not outside and self.approvals.name != "untrusted":
            self._decision(call_id, "auto_approved", "rule", "sandbox:writable_root",
                           "inside the workspace", line, tool="apply_patch")
            return Gate(call_id, paths, cwd, "allow", "auto_approved", True)
        reason = (f"edits {outside[0]} outside the workspace" if outside
                  else "approval policy untrusted asks before every edit")
        return self._resolve_prompt(call_id, "patch", paths, cwd, "prompt", reason, None, line,
                                    details={"files": list(paths)})

    def decide_mcp(self, server: str, tool: str, arguments: str | None = None, *,
                   record_call: bool = True, annotations: dict[str, Any] | None = None) -> Gate:
        """An MCP tool call: ``[mcp.servers.NAME]`` rules, a changed tool definition asks
        again, the approval policy (``untrusted`` asks); see ``corral.supervisor.mcp``.
        ``record_call``: also record ``agent.mcp.call`` now (hooks; the MCP gateway records
        it when the call ends, with its outcome)."""
        gate: Gate = self.mcp.decide(server, tool, arguments, record_call=record_call,
                                     annotations=annotations)
        return gate

    @property
    def mcp(self) -> Any:
        """MCP decisions, tool pins and call records (``supervisor.mcp.McpDecisions``)."""
        with self._lock:
            if self._mcp is None:
                from corral.supervisor.mcp import McpDecisions

                self._mcp = McpDecisions(self)
            return self._mcp

    def decide_network(self, q: Any) -> Any:
        """A host the network policy does not know (the managed proxy's question): grants, the
        terminal or the `corral approve` queue, under the session's approval policy. The proxy
        records its decision through :meth:`record_network`."""
        from corral.approvals import Kind, Question, request
        from corral.netproxy import AskAnswer

        question = Question(kind=Kind.NETWORK, argv=(q.host, str(q.port), q.protocol),
                            reason=f"unfamiliar host {q.host}:{q.port} ({q.protocol})",
                            cwd=str(self.plan.cwd), session_id=self.telemetry.session_id,
                            project=self.project)
        verdict = request(question, policy=self.approvals, store=self.grants,
                          category="network", terminal=self.terminal,
                          queue_timeout=self.queue_timeout)
        return AskAnswer(allow=verdict.approved, source=verdict.who or "user",
                         reason=verdict.message)

    def record_network(self, decision: Any) -> None:
        """Journal one of the managed proxy's decisions (``agent.network.decision``)."""
        import sys

        try:
            self.telemetry.emit("agent.network.decision", dict(decision.attributes()))
        except Exception as exc:  # the proxy already decided; say the record failed
            print(f"corral: telemetry: {exc}", file=sys.stderr)

    def _resolve_prompt(self, call_id: str, kind: str, argv: tuple[str, ...], cwd: Path,
                        rule_decision: str, reason: str, source: str | None, cmdline: str,
                        details: dict[str, Any] | None = None, standing: bool = True,
                        tool: str | None = None) -> Gate:
        """A prompt: the reviewer first (when configured), then standing grants (unless
        ``standing`` is False) and a person."""
        who = _event_source(source)
        tool = tool or {"shell": "shell", "patch": "apply_patch"}.get(
            kind, argv[-1] if argv else kind)

        def refuse(code: int, verdict: str, by: str, why: str, message: str,
                   wait_ms: float | None = None) -> Gate:
            self._decision(call_id, verdict, by, source, why, cmdline, tool=tool,
                           wait_ms=wait_ms)
            return Gate(call_id, argv, cwd, rule_decision, verdict, False, code,
                        f"{message}; {DONT_BYPASS}")

        review = None
        if self.reviewer is not None:
            review = self._review(kind, argv, cwd, reason, details or {})
            tripped = self.breaker.record(review)
            if tripped and not self._person_reachable():
                return refuse(EXIT_DENIED, "abort", "automated_reviewer", tripped,
                              f"corral: review: stopping this turn: {tripped}; nobody can be "
                              "asked in this session (with approvals.queue_timeout_seconds "
                              "set, `corral approve` can answer)")
            if tripped:  # only a person may go on: the reviewer's verdict no longer counts
                return self._after_breaker(call_id, kind, argv, cwd, rule_decision, reason,
                                           source, cmdline, tool, review, tripped)
            if review.allowed:
                self._decision(call_id, "auto_approved", "automated_reviewer", source,
                               f"{review.rationale} (risk {review.risk_level})", cmdline,
                               tool=tool)
                return Gate(call_id, argv, cwd, rule_decision, "auto_approved", True)
            if not review.failed:
                return refuse(EXIT_DENIED, "denied", "automated_reviewer", review.rationale,
                              f"corral: review: `{cmdline}` denied by the {review.reviewer} "
                              f"reviewer (risk {review.risk_level}): {review.rationale}")
            if self._on_review_failure() == "deny":
                return refuse(EXIT_DENIED, "denied", "automated_reviewer", review.rationale,
                              f"corral: review: the reviewer failed ({review.rationale}); "
                              "failing closed")
        verdict = self._ask_person(kind, argv, cwd, reason, source, review, standing)
        if not verdict.approved:
            code = {"denied": EXIT_DENIED, "refused": EXIT_FORBIDDEN}.get(
                verdict.outcome, EXIT_CANNOT_ASK)
            waited = verdict.outcome == "cannot_ask" and self.queue_timeout > 0
            if verdict.outcome == "cannot_ask" and not waited and self.defer_to_agent:
                # Nobody corral can ask, and the agent has its own approval (a hook session
                # outside corral run): corral does not run it, and the record says the agent's
                # approval decides, not that corral denied what the agent may then run.
                why = "nobody corral can ask; the agent's own approval decides"
                self._decision(call_id, "deferred_to_agent", "agent", source,
                               f"{reason}; {why}" if reason else why, cmdline, tool=tool)
                return Gate(call_id, argv, cwd, rule_decision, "deferred_to_agent", False,
                            EXIT_CANNOT_ASK, f"corral: approvals: `{cmdline}` needs approval "
                            f"({reason}): {why}")
            return refuse(code, "timed_out" if waited else "denied", verdict.who or who,
                          verdict.message or reason,
                          f"corral: approvals: `{cmdline}` needs approval ({reason}): "
                          f"{verdict.message}", verdict.wait_ms)
        return self._approved(call_id, argv, cwd, rule_decision, source, reason, cmdline,
                              tool, verdict)

    def _after_breaker(self, call_id: str, kind: str, argv: tuple[str, ...], cwd: Path,
                       rule_decision: str, reason: str, source: str | None, cmdline: str,
                       tool: str, review: Any, tripped: str) -> Gate:
        """The breaker has stopped the turn: a person decides (a standing grant, the terminal
        or `corral approve`). A person's answer, and only that, starts the count over."""
        from dataclasses import replace

        verdict = self._ask_person(kind, argv, cwd, reason, source,
                                   replace(review, rationale=f"{review.rationale}; {tripped}"))
        if verdict.outcome == "approved":  # answered just now (not a standing grant)
            self.breaker.reset()
        if not verdict.approved:
            self._decision(call_id, "abort", "automated_reviewer", source, tripped, cmdline,
                           tool=tool)
            return Gate(call_id, argv, cwd, rule_decision, "abort", False, EXIT_DENIED,
                        f"corral: review: stopping this turn: {tripped} ({verdict.message}); "
                        f"{DONT_BYPASS}")
        return self._approved(call_id, argv, cwd, rule_decision, source, reason, cmdline,
                              tool, verdict)

    def _approved(self, call_id: str, argv: tuple[str, ...], cwd: Path, rule_decision: str,
                  source: str | None, reason: str, cmdline: str, tool: str,
                  verdict: Any) -> Gate:
        if verdict.grant is not None and verdict.outcome == "approved":
            from corral.telemetry import ApprovalGrant

            self.telemetry.emit_event(ApprovalGrant(**verdict.grant.event()), call_id=call_id)
        scope = verdict.grant.scope.value if verdict.grant is not None else "once"
        # persistent grants of shell commands are rules; of MCP tools they are in the store
        decided = {"once": "approved", "persistent": "approved_persistent"}.get(
            scope, f"approved_for_{scope}")
        by = verdict.who if verdict.who in ("user", "automated_reviewer", "hook") else "user"
        self._decision(call_id, decided, by, source, verdict.message or reason, cmdline,
                       tool=tool, wait_ms=verdict.wait_ms)
        return Gate(call_id, argv, cwd, rule_decision, decided, True)

    def _person_reachable(self) -> bool:
        """Whether a person could answer now (the terminal, or the `corral approve` queue)."""
        interactive = self.terminal is not None and self.terminal is not no_terminal
        return interactive or self.queue_timeout > 0

    def _decide_escalation(self, call_id: str, argv: tuple[str, ...], cwd: Path,
                           kind: RuleDecision, source: str | None, reason: str,
                           cmdline: str) -> Gate:
        from corral.approvals import Kind, Question, request

        why = f"runs outside the sandbox's filesystem boundary{'; ' + reason if reason else ''}"
        question = Question(kind=Kind.ESCALATION, argv=argv, reason=why, cwd=str(cwd),
                            session_id=self.telemetry.session_id, project=self.project)
        verdict = request(question, policy=self.approvals, store=self.grants,
                          category="escalation", terminal=self.terminal,
                          queue_timeout=self.queue_timeout)
        outcome = "escalation_approved" if verdict.approved else "escalation_denied"
        self.telemetry.emit("agent.sandbox.outcome", {
            "gen_ai.tool.name": "shell", "agent.sandbox.outcome": outcome,
            "agent.sandbox.profile": self.plan.profile, "agent.sandbox.escalated":
            verdict.approved}, call_id=call_id)
        if not verdict.approved:
            code = EXIT_FORBIDDEN if verdict.outcome == "refused" else (
                EXIT_DENIED if verdict.outcome == "denied" else EXIT_CANNOT_ASK)
            self._decision(call_id, "denied", verdict.who or "user", source,
                           verdict.message, cmdline, wait_ms=verdict.wait_ms)
            return Gate(call_id, argv, cwd, kind.value, "denied", False, code,
                        f"corral: approvals: escalation of `{cmdline}` refused: "
                        f"{verdict.message}; {DONT_BYPASS}")
        scope = verdict.grant.scope.value if verdict.grant is not None else "once"
        decided = "approved" if scope == "once" else f"approved_for_{scope}"
        self._decision(call_id, decided, "user", source, why, cmdline, wait_ms=verdict.wait_ms)
        return Gate(call_id, argv, cwd, kind.value, decided, True, escalated=True)

    def escalated_sandbox(self) -> Any:
        """The sandbox an approved escalation runs in: the whole filesystem writable, but the
        deny-read paths (secrets, $CORRAL_HOME) hidden, protected paths in the workspace still
        read-only, and the same network mode (none or the managed proxy)."""
        from corral.sandbox import Sandbox
        from corral.sandbox.profiles import Access, FsEntry

        with self._lock:
            if self._escalated is None:
                plan = self.plan.replace(entries=(*self.plan.entries,
                                                  FsEntry(Path("/"), Access.WRITE)))
                self._escalated = Sandbox(plan)
            return self._escalated

    def new_turn(self, prompt: str | None = None) -> None:
        """The user spoke *through corral* (its own record of the user's input, never anything
        the agent reports): the circuit breaker starts over, and the request becomes the intent
        the reviewer weighs actions against. Not reachable from the session API."""
        if self.breaker is not None:
            self.breaker.reset()
        if prompt:
            self.intent = prompt[:4000]
            self.claimed_intent = None

    def agent_reported_prompt(self, prompt: str | None) -> None:
        """The agent says the user asked this (a hook, or any command in the sandbox holding
        the session token: corral cannot tell them apart). A claim: the reviewer sees it as
        untrusted context, it never becomes the user's request, and it never resets the
        circuit breaker."""
        if prompt:
            self.claimed_intent = prompt[:4000]

    def _remember(self, text: str) -> None:
        """Keep a short tail of what ran, as untrusted context for the reviewer (plain text:
        the review package is imported only when a review happens)."""
        with self._lock:
            self._recent.append(text[:2000])
            del self._recent[:-20]

    def _review(self, kind: str, argv: tuple[str, ...], cwd: Path, reason: str,
                details: dict[str, Any]) -> Any:
        """The reviewer weighs the action against ``intent``: the request corral itself
        recorded from the user (``--intent``), never one the agent reported."""
        from corral.review import ContextItem, ReviewRequest

        recent = tuple(ContextItem(role="tool_result", content=text, name="shell")
                       for text in self._recent[-10:])
        if self.claimed_intent:
            recent += (ContextItem(role="prompt_reported_by_the_agent_unverified",
                                   content=self.claimed_intent),)
        req = ReviewRequest(argv=argv, cwd=str(cwd), kind=kind,  # type: ignore[arg-type]
                            rule_reason=reason, intent=self.intent, recent=recent,
                            details={**details, "workspace_roots": [
                                str(r) for r in self.plan.writable_roots]})
        return self.reviewer.review(req)

    def _on_review_failure(self) -> str:
        """A failed review asks the person when one can be asked, else denies (fail closed)."""
        from corral.review.config import on_failure

        if on_failure(self.cfg) == "deny":
            return "deny"
        return "ask" if self._person_reachable() else "deny"

    def _ask_person(self, kind: str, argv: tuple[str, ...], cwd: Path, reason: str,
                    source: str | None, review: Any, standing: bool = True) -> Any:
        from corral.approvals import Kind, Question, request

        question = Question(
            kind=Kind(kind), argv=argv, reason=reason, cwd=str(cwd),
            session_id=self.telemetry.session_id, project=self.project,
            reviewer_view=(f"{review.reviewer}: {review.outcome} (risk {review.risk_level}): "
                           f"{review.rationale}") if review is not None else None,
        )
        category = {"patch": "patch", "mcp": "mcp"}.get(
            kind, "heuristic" if _event_source(source) == "heuristic" else "rules")
        return request(question, policy=self.approvals, store=self.grants, category=category,
                       terminal=self.terminal, queue_timeout=self.queue_timeout,
                       standing=standing)

    def execute(self, gate: Gate, *, capture: bool = False) -> ExecOutcome:
        """Run an allowed action in the sandbox and record its result and sandbox outcome.

        With ``capture`` the output comes back in the outcome (for the local API) instead of
        being streamed to our own stdout and stderr."""
        if not gate.allowed:
            raise ValueError("execute() needs an allowed gate")
        cmdline = shlex.join(gate.argv)
        sink = io.StringIO() if capture else None
        t0 = time.perf_counter()
        sandbox = self.escalated_sandbox() if gate.escalated else self.sandbox
        result = sandbox.run(
            list(gate.argv), gate.cwd, self.telemetry.stamp_env(gate.call_id),
            stdin=subprocess.DEVNULL if capture else None,
            stdout=subprocess.PIPE if capture else None, stderr_sink=sink,
        ) if not capture else self._run_captured(gate, sink)
        duration = (time.perf_counter() - t0) * 1000
        violations = [v.line() for v in result.violations]
        # Captured output (the session API's exec) is what goes back into the model, so it is
        # journaled at the content tier like an agent's own tool result (hash and length at
        # tier 1, the text at tier 2): where an injection arrives, triage can see it.
        output = None
        if capture:
            out = getattr(result, "captured_stdout", None) or b""
            output = out.decode("utf-8", "replace") + (sink.getvalue() if sink else "")
        self.telemetry.emit("agent.tool.result", {
            "gen_ai.tool.name": "shell", "gen_ai.tool.type": "shell",
            "process.command_line": cmdline, "process.exit.code": result.returncode,
            "agent.tool.duration_ms": round(duration, 3),
            "agent.tool.success": result.returncode == 0,
        }, call_id=gate.call_id, content={"output": output} if output else None)
        outcome = "success" if result.returncode == 0 else (
            "sandbox_denied" if violations else "failure")
        attrs: dict[str, Any] = {
            "gen_ai.tool.name": "shell", "agent.sandbox.outcome": outcome,
            "agent.sandbox.profile": self.plan.profile, "agent.sandbox.escalated": gate.escalated,
            "agent.sandbox.initial_duration_ms": round(duration, 3),
        }
        if violations:
            attrs["agent.sandbox.denial"] = "; ".join(violations)
        self.telemetry.emit("agent.sandbox.outcome", attrs, call_id=gate.call_id)
        self._remember(f"$ {cmdline}\n(exit {result.returncode}"
                       f"{'; ' + '; '.join(violations) if violations else ''})")
        return ExecOutcome(result.returncode, True, gate.decision, gate.verdict, "", violations,
                           duration, getattr(result, "captured_stdout", None),
                           sink.getvalue() if sink else None)

    def _run_captured(self, gate: Gate, sink: io.StringIO | None) -> Any:
        """Run with stdout captured (bounded) for API callers."""
        sandbox = self.escalated_sandbox() if gate.escalated else self.sandbox
        proc = sandbox.spawn(list(gate.argv), gate.cwd,
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
                  cmdline: str, *, tool: str = "shell", wait_ms: float | None = None) -> None:
        attrs: dict[str, Any] = {
            "gen_ai.tool.name": tool, "agent.decision": verdict,
            "agent.decision.source": who, "process.command_line": cmdline,
        }
        if wait_ms is not None:  # a person or hook answered: how long they took, exactly
            attrs["agent.approval.wait_ms"] = wait_ms
        if source and who in ("rule", "requirements", "heuristic"):
            attrs["agent.decision.rule"] = source
        if reason:
            attrs["agent.decision.rationale"] = reason
        # Committed before the action proceeds: no approval without its record.
        self.telemetry.emit("agent.tool.decision", attrs, call_id=call_id, wait=True)


MAX_CAPTURE = 1024 * 1024


class _Captured:
    def __init__(self, returncode: int, violations: list[Any], captured_stdout: bytes) -> None:
        self.returncode, self.violations = returncode, violations
        self.captured_stdout = captured_stdout
