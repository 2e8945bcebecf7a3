"""The rule engine proper: prefix rules indexed by program, Codex-compatible matching.

Plain data in, matches out. Loading (Starlark) lives in ``starlark_loader``; shell analysis and
heuristics live elsewhere and only call :meth:`Policy.matches_for_command`.
"""

from __future__ import annotations

import json
import os

from corral.record import Frozen
from corral.types import RuleDecision

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:
    from typing import Any


class PrefixRule(Frozen):
    """One ``prefix_rule`` after first-position expansion: a fixed program plus alternatives."""

    _fields = ("program", "rest", "rest_display", "decision", "justification", "source")
    program: str
    rest: tuple[frozenset[str], ...]
    rest_display: tuple[tuple[str, ...], ...]
    decision: RuleDecision
    justification: str | None
    source: str  # "<file>:<line>" or "requirements"

    def __init__(self, program: str, rest: tuple[frozenset[str], ...],
                 rest_display: tuple[tuple[str, ...], ...], decision: RuleDecision,
                 justification: str | None = None, source: str = "") -> None:
        self._set(program=program, rest=rest, rest_display=rest_display, decision=decision,
                  justification=justification, source=source)

    def matches(self, cmd: list[str] | tuple[str, ...]) -> tuple[str, ...] | None:
        """The matched prefix of ``cmd`` (whose argv[0] is already the program), or None."""
        rest = self.rest
        if not rest:
            return (cmd[0],)
        if len(cmd) <= len(rest):
            return None
        i = 1
        for alts in rest:
            if cmd[i] not in alts:
                return None
            i += 1
        return tuple(cmd[:i])

    def pattern_text(self) -> str:
        parts = [self.program]
        parts += [alts[0] if len(alts) == 1 else "[" + "|".join(alts) + "]" for alts in self.rest_display]
        return " ".join(parts)


class RuleMatch(Frozen):
    """A rule that matched one command (``prefixRuleMatch`` in Codex's JSON)."""

    _fields = ("matched_prefix", "decision", "rule", "resolved_program")
    matched_prefix: tuple[str, ...]
    decision: RuleDecision
    rule: PrefixRule
    resolved_program: str | None

    def __init__(self, matched_prefix: tuple[str, ...], decision: RuleDecision,
                 rule: PrefixRule, resolved_program: str | None = None) -> None:
        self._set(matched_prefix=matched_prefix, decision=decision, rule=rule,
                  resolved_program=resolved_program)

    @property
    def justification(self) -> str | None:
        return self.rule.justification

    def to_codex(self) -> dict[str, Any]:
        inner: dict[str, Any] = {"matchedPrefix": list(self.matched_prefix),
                                 "decision": self.decision.value}
        if self.resolved_program is not None:
            inner["resolvedProgram"] = self.resolved_program
        if self.rule.justification is not None:
            inner["justification"] = self.rule.justification
        return {"prefixRuleMatch": inner}


NETWORK_PROTOCOLS = {
    "http": "http",
    "https": "https",
    "https_connect": "https",
    "http-connect": "https",
    "socks5_tcp": "socks5_tcp",
    "socks5_udp": "socks5_udp",
}


class NetworkRule(Frozen):
    """``network_rule(host, protocol, decision)``: merged into the proxy's domain policy."""

    _fields = ("host", "protocol", "decision", "justification", "source")
    host: str
    protocol: str
    decision: RuleDecision
    justification: str | None
    source: str

    def __init__(self, host: str, protocol: str, decision: RuleDecision,
                 justification: str | None = None, source: str = "") -> None:
        self._set(host=host, protocol=protocol, decision=decision, justification=justification,
                  source=source)


class RulesLoadError(Frozen):
    """A rules source that failed to load. Until fixed, every command is at least ``prompt``."""

    _fields = ("path", "line", "column", "message")
    path: str
    line: int | None
    column: int | None
    message: str

    def __init__(self, path: str, line: int | None, column: int | None, message: str) -> None:
        self._set(path=path, line=line, column=column, message=message)

    @property
    def location(self) -> str:
        if self.line is None:
            return self.path
        if self.column is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.column}"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


def normalize_abs(raw: str, cwd: str | None = None) -> str | None:
    """Lexically absolutise a program path like Codex's ``AbsolutePathBuf``: ``~/`` is the home
    directory, relative paths join the cwd, ``.``/``..``/``//`` fold. None for the empty string."""
    if not raw:
        return None
    if raw == "~" or raw.startswith("~/"):
        raw = os.path.expanduser("~") + raw[1:]
    if not raw.startswith("/"):
        raw = (cwd if cwd is not None else os.getcwd()) + "/" + raw
    parts: list[str] = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def basename_of(abs_path: str) -> str | None:
    name = abs_path.rsplit("/", 1)[-1]
    return name or None


class Policy:
    """Rules pooled from every source, indexed by program (argv[0]) for a lean hot path.

    Compared and hashed by identity, so decisions can be cached per policy object.
    """

    def __init__(self, rules_by_program: dict[str, list[PrefixRule]] | None = None,
                 host_executables: dict[str, tuple[str, ...]] | None = None,
                 network_rules: list[NetworkRule] | None = None,
                 load_errors: list[RulesLoadError] | None = None,
                 sources: list[str] | None = None, generation: int = 0) -> None:
        self.rules_by_program = {} if rules_by_program is None else rules_by_program
        self.host_executables = {} if host_executables is None else host_executables
        self.network_rules = [] if network_rules is None else network_rules
        self.load_errors = [] if load_errors is None else load_errors
        self.sources = [] if sources is None else sources
        self.generation = generation  # bumped on every change; part of the decision cache key
        # program -> (generation, rule count, rules by first argument, rules with no
        # arguments): built lazily by ``candidates`` so the hot path tries only rules that
        # can match
        self._first_index: dict[str, tuple[int, int, dict[str, list[PrefixRule]],
                                           list[PrefixRule]]] = {}

    def __repr__(self) -> str:
        return (f"Policy(rules_by_program={self.rules_by_program!r}, "
                f"host_executables={self.host_executables!r}, "
                f"network_rules={self.network_rules!r}, load_errors={self.load_errors!r}, "
                f"sources={self.sources!r}, generation={self.generation!r})")

    def add_rule(self, rule: PrefixRule) -> None:
        self.rules_by_program.setdefault(rule.program, []).append(rule)
        self.generation += 1

    def candidates(self, cmd: tuple[str, ...]) -> list[PrefixRule]:
        """The rules for ``cmd[0]`` that can match ``cmd`` by its first argument, in policy
        order (a superset of the matching rules; ``PrefixRule.matches`` still decides)."""
        rules = self.rules_by_program.get(cmd[0])
        if not rules:
            return []
        entry = self._first_index.get(cmd[0])
        if entry is None or entry[0] != self.generation or entry[1] != len(rules):
            by_first: dict[str, list[PrefixRule]] = {}
            bare = [r for r in rules if not r.rest]
            for alt in {a for r in rules if r.rest for a in r.rest[0]}:
                by_first[alt] = [r for r in rules if not r.rest or alt in r.rest[0]]
            entry = (self.generation, len(rules), by_first, bare)
            self._first_index[cmd[0]] = entry
        if len(cmd) < 2:
            return entry[3]
        return entry[2].get(cmd[1], entry[3])

    @property
    def rule_count(self) -> int:
        return sum(len(v) for v in self.rules_by_program.values())

    def matches_for_command(
        self, cmd: list[str] | tuple[str, ...], resolve_host_executables: bool = False
    ) -> list[RuleMatch]:
        """Codex semantics: exact program first; basename fallback only if nothing matched."""
        if not cmd:
            return []
        found: list[RuleMatch] = []
        rules = self.rules_by_program.get(cmd[0])
        if rules:
            for rule in rules:
                prefix = rule.matches(cmd)
                if prefix is not None:
                    found.append(RuleMatch(prefix, rule.decision, rule))
        if found or not resolve_host_executables:
            return found
        return self._host_executable_matches(cmd)

    def _host_executable_matches(self, cmd: list[str] | tuple[str, ...]) -> list[RuleMatch]:
        program = normalize_abs(cmd[0])
        if program is None:
            return []
        base = basename_of(program)
        if base is None:
            return []
        rules = self.rules_by_program.get(base)
        if not rules:
            return []
        allowed = self.host_executables.get(base)
        if allowed is not None and program not in allowed:
            return []
        rewritten = [base, *cmd[1:]]
        out = []
        for rule in rules:
            prefix = rule.matches(rewritten)
            if prefix is not None:
                out.append(RuleMatch(prefix, rule.decision, rule, resolved_program=program))
        return out

    def check(self, argv: list[str], resolve_host_executables: bool = False) -> dict[str, Any]:
        """Exactly what ``codex execpolicy check`` reports for ``argv`` (no heuristics)."""
        matches = self.matches_for_command(argv, resolve_host_executables)
        out: dict[str, Any] = {"matchedRules": [m.to_codex() for m in matches]}
        if matches:
            out["decision"] = RuleDecision.strictest([m.decision for m in matches]).value
        return out


def codex_json(value: Any, pretty: bool = False) -> str:
    """serde_json-compatible text: compact, or two-space pretty printing."""
    if pretty:
        return json.dumps(value, ensure_ascii=False, indent=2)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
