"""The runtime decision for one command line: every command judged, strictest wins.

Rule matching at run time is stricter than ``codex execpolicy check``: deny rules
(prompt/forbidden) also match by the basename of ``/bin/rm``-style paths, allow rules only the
exact program or a declared host executable; an argument computed at run time that *could*
complete a deny rule makes the command at least ``prompt``.
"""

from __future__ import annotations

import functools
import json
import threading
import weakref
from collections.abc import Callable, Mapping

from corral.record import Record
from corral.rules.analysis import Analysis, analyze, display
from corral.rules.argv import Argv
from corral.rules.heuristics import Verdict, classify, dangerous_write
from corral.rules.hidden_env import from_environment
from corral.rules.model import Policy, PrefixRule, basename_of, normalize_abs
from corral.types import Provenance, RuleDecision

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:
    from typing import Any

APPROVAL_POLICIES = ("untrusted", "on-request", "on-failure", "never")
ALLOW, PROMPT, FORBIDDEN = RuleDecision.ALLOW, RuleDecision.PROMPT, RuleDecision.FORBIDDEN


class Match(Record):
    """One contribution to a decision, with where it came from: ``source`` is
    ``"<file>:<line>"`` | ``"heuristic:<name>"`` | ``"requirements"`` | ``"unparsed"``;
    ``kind`` is rule | maybe | heuristic | unparsed | load_error."""

    __slots__ = _fields = ("command", "decision", "source", "justification", "matched_prefix",
                           "kind")

    def __init__(self, command: tuple[str, ...], decision: RuleDecision, source: str,
                 justification: str | None = None, matched_prefix: tuple[str, ...] = (),
                 kind: str = "rule") -> None:
        self.command = command
        self.decision = decision
        self.source = source
        self.justification = justification
        self.matched_prefix = matched_prefix
        self.kind = kind

    def to_json(self) -> dict[str, Any]:
        return {"command": list(self.command), "decision": self.decision.value,
                "source": self.source, "justification": self.justification}


class RuntimeDecision(Record):
    """``argvs``: the commands that run (``commands`` as lists); ``sandbox_bypass``: every
    command matched an allow rule."""

    __slots__ = _fields = ("decision", "argvs", "matches", "reason", "sandbox_bypass",
                           "approval_policy", "extra")

    def __init__(self, decision: RuleDecision, argvs: tuple[tuple[str, ...], ...],
                 matches: list[Match], reason: str, sandbox_bypass: bool = False,
                 approval_policy: str = "on-request", extra: dict[str, Any] | None = None
                 ) -> None:
        self.decision = decision
        self.argvs = argvs
        self.matches = matches
        self.reason = reason
        self.sandbox_bypass = sandbox_bypass
        self.approval_policy = approval_policy
        self.extra: dict[str, Any] = {} if extra is None else extra

    @property
    def commands(self) -> list[list[str]]:
        """The commands that run, as argv lists (built on demand: most callers never ask)."""
        return [list(c) for c in self.argvs]

    @property
    def provenance(self) -> tuple[Provenance, ...]:
        return tuple(Provenance(m.source, m.justification) for m in self.matches)

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision.value, "commands": self.commands,
                "matches": [m.to_json() for m in self.matches], "reason": self.reason}

    def to_json(self) -> str:
        text = json.dumps(self.to_dict(), ensure_ascii=False)
        # argv from the OS may carry undecodable bytes (surrogate escapes): show them, don't crash
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _status(rule: PrefixRule, a: Argv) -> int:
    """0 no match, 1 possible (an unknown word could complete it), 2 certain."""
    certain = True
    ntok = len(a.tokens)
    for i, alts in enumerate(rule.rest, 1):
        if i >= ntok:
            if a.open_from is None:
                return 0
            certain = False
            continue
        if i in a.unknown or (a.open_from is not None and i >= a.open_from):
            certain = False
            continue
        if a.tokens[i] not in alts:
            return 0
    return 2 if certain else 1


def rule_matches(policy: Policy, a: Argv, cwd: str | None = None) -> list[Match]:
    """Rules that match (or might match) ``a`` at run time."""
    tokens = a.tokens
    if not tokens or 0 in a.unknown or a.open_from == 0:
        return []
    prog = tokens[0]
    rules = policy.rules_by_program.get(prog)
    out: list[Match] = []
    static = not a.unknown and a.open_from is None
    if rules:
        if static:  # the hot path: plain words, only the rules their first argument can match
            for rule in policy.candidates(tokens):
                prefix = rule.matches(tokens)
                if prefix is not None:
                    out.append(Match(tokens, rule.decision, rule.source, rule.justification,
                                     prefix, "rule"))
        else:
            for rule in rules:
                _add_status_match(out, rule, a)
    if "/" in prog:
        path = normalize_abs(prog, cwd)
        base = basename_of(path) if path else None
        if base and base != prog:
            declared = policy.host_executables.get(base)
            allow_ok = declared is not None and path in declared
            for rule in policy.rules_by_program.get(base, ()):
                if rule.decision is not ALLOW or allow_ok:
                    _add_status_match(out, rule, a)
    return out


def _add_status_match(out: list[Match], rule: PrefixRule, a: Argv) -> None:
    st = _status(rule, a)
    if st == 2:
        out.append(Match(a.tokens, rule.decision, rule.source, rule.justification,
                         a.tokens[: len(rule.rest) + 1], "rule"))
    elif st == 1 and rule.decision is not ALLOW:
        why = (f"an argument computed at run time may complete `{rule.pattern_text()}`"
               + (f" ({rule.justification})" if rule.justification else ""))
        out.append(Match(a.tokens, PROMPT, rule.source, why, (), "maybe"))


def _heuristic(a: Argv, v: Verdict, approval_policy: str) -> Match:
    if v.kind == "safe":
        d = ALLOW
    elif v.kind == "dangerous":
        d = PROMPT
    else:
        d = PROMPT if approval_policy == "untrusted" else ALLOW
    return Match(a.tokens, d, f"heuristic:{v.name}", v.justification, (), "heuristic")


_CACHE_PER_POLICY = 2048
_CACHE_MAX_ARGV = 8192  # characters; bigger command lines are decided afresh each time
_Env = tuple[tuple[str, str], ...]
_Decider = Callable[[tuple[str, ...], str, str | None, _Env, int, int, int], RuntimeDecision]
# One bounded LRU per live policy; an entry goes when its policy is garbage.
_deciders: weakref.WeakKeyDictionary[Policy, _Decider] = weakref.WeakKeyDictionary()
_deciders_lock = threading.Lock()


def _decider(policy: Policy) -> _Decider:
    found = _deciders.get(policy)
    if found is not None:
        return found
    ref = weakref.ref(policy)  # the cache must not keep its own policy alive

    @functools.lru_cache(maxsize=_CACHE_PER_POLICY)
    def cached(argv: tuple[str, ...], approval_policy: str, cwd: str | None, env: _Env,
               _generation: int, _errors: int, _hosts: int) -> RuntimeDecision:
        p = ref()
        assert p is not None  # a caller holds the policy while deciding
        return _decide(list(argv), p, approval_policy, cwd, env)

    with _deciders_lock:
        return _deciders.setdefault(policy, cached)


def decide(argv: list[str], policy: Policy, approval_policy: str = "on-request", *,
           cwd: str | None = None, env: Mapping[str, str] | None = None) -> RuntimeDecision:
    """Judge ``argv`` (possibly ``bash -lc SCRIPT``) against ``policy`` and the heuristics.

    Decisions are pure functions of (argv, policy, approval policy) and are cached per policy
    (agents repeat commands); treat the result as read-only. ``cwd`` is where the command will
    run (relative program paths such as ``./tool`` resolve against it; default: ours). ``env``
    is the environment the program will get (the exec boundary sees it): its variables that
    name programs (``GIT_SSH_COMMAND``, ``PAGER``, ``LD_PRELOAD``...) are judged as if written
    ``VAR=value argv...``; pass only what differs from the session's starting environment.
    """
    hidden = from_environment(env) if env else ()
    if sum(map(len, argv)) > _CACHE_MAX_ARGV:
        return _decide(argv, policy, approval_policy, cwd, hidden)  # bounded cache memory
    return _decider(policy)(tuple(argv), approval_policy, cwd, hidden, policy.generation,
                            len(policy.load_errors), len(policy.host_executables))


def _decide(argv: list[str], policy: Policy, approval_policy: str,
            cwd: str | None = None, env: _Env = ()) -> RuntimeDecision:
    an = analyze(argv, env)
    matches: list[Match] = []
    all_allow_rules = bool(an.commands)
    for w in an.wrappers:
        for m in rule_matches(policy, w, cwd):
            if m.kind == "rule" and m.decision is not ALLOW:
                matches.append(m)
    for a in an.commands:
        found = rule_matches(policy, a, cwd)
        matches.extend(found)
        definite = False
        for m in found:
            if m.kind == "rule":
                definite = True
            if m.decision is not ALLOW:
                all_allow_rules = False
        if not definite:
            all_allow_rules = False
            matches.append(_heuristic(a, classify(a), approval_policy))
    if an.runs or an.libraries:
        all_allow_rules = _hidden_matches(an, policy, approval_policy, cwd, matches) and (
            all_allow_rules)
    for target, text in an.writes:
        v = dangerous_write(target)
        if v is not None:
            matches.append(Match(("redirect", text), PROMPT, f"heuristic:{v.name}",
                                 v.justification, (), "heuristic"))
    for text, why in an.problems + an.hidden_problems:
        matches.append(Match((text,), PROMPT, "unparsed", why, (), "unparsed"))
        all_allow_rules = False
    for err in policy.load_errors:
        matches.append(Match(tuple(argv), PROMPT, err.location,
                             f"rules file failed to load: {err.message}", (), "load_error"))
        all_allow_rules = False
    decision = ALLOW if matches else PROMPT
    for m in matches:
        if m.decision is FORBIDDEN:
            decision = FORBIDDEN
            break
        if m.decision is PROMPT:
            decision = PROMPT
    reason = _reason(argv, decision, matches, approval_policy)
    if decision is PROMPT and approval_policy == "never":
        decision = FORBIDDEN
        reason = f"{reason}; approval required by policy, but approval_policy is never"
    return RuntimeDecision(decision, tuple([a.tokens for a in an.commands + an.runs]), matches,
                           reason,
                           all_allow_rules and decision is ALLOW and not an.indirect,
                           approval_policy)


def _hidden_matches(an: Analysis, policy: Policy, approval_policy: str, cwd: str | None,
                    matches: list[Match]) -> bool:
    """Matches for what package runners run and for preloaded libraries; False when one of
    them keeps the command from counting as allowed by rules alone."""
    only_allow = not an.libraries
    for a in an.runs:  # deny rules and dangerous heuristics; the runner's line is judged too
        found = rule_matches(policy, a, cwd)
        for m in found:
            if m.decision is not ALLOW:
                matches.append(m)
                only_allow = False
        if not any(m.kind == "rule" for m in found):
            verdict = classify(a)
            if verdict.kind == "dangerous":
                matches.append(_heuristic(a, verdict, approval_policy))
                only_allow = False
    for lib, var in an.libraries:
        found = rule_matches(policy, lib, cwd)
        matches.extend(found)
        if not any(m.kind == "rule" and m.decision is ALLOW for m in found):
            matches.append(Match(lib.tokens, PROMPT, "heuristic:preload_library",
                                 f"{var} makes every program load {lib.tokens[0]}; a rule that "
                                 "allows that path lets it run without asking", (), "heuristic"))
    return only_allow


def _cmd_text(argv: list[str]) -> str:
    if len(argv) == 3 and argv[1] in ("-c", "-lc"):
        return argv[2] if len(argv[2]) <= 120 else argv[2][:117] + "..."
    text = display(Argv.of(tuple(argv)))
    return text if len(text) <= 120 else text[:117] + "..."


def _reason(argv: list[str], decision: RuleDecision, matches: list[Match], ap: str) -> str:
    cmd = _cmd_text(argv)
    if not matches:
        return f"`{cmd}` requires approval: nothing to analyse"
    top = [m for m in matches if m.decision is decision]
    if decision is FORBIDDEN:
        best = max(top, key=lambda m: len(m.matched_prefix))
        why = best.justification or ("policy forbids commands starting with "
                                     f"`{' '.join(best.matched_prefix)}`")
        return f"`{cmd}` rejected: {why} [{best.source}]"
    if decision is PROMPT:
        best = top[0]
        why = best.justification or "requires approval by policy"
        return f"`{cmd}` requires approval: {why} [{best.source}]"
    kinds = {m.source.split(":", 1)[0] for m in top}
    if all(m.kind == "rule" for m in top):
        return f"`{cmd}` allowed by rule [{', '.join(sorted({m.source for m in top}))}]"
    if kinds == {"heuristic"} and all(m.source == "heuristic:known_safe" for m in top):
        return f"`{cmd}` allowed: read-only commands on the known-safe list"
    return f"`{cmd}` allowed to run in the sandbox (approval policy {ap}; no rule asks otherwise)"
