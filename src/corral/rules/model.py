"""The rule engine proper: prefix rules indexed by program, Codex-compatible matching.

Plain data in, matches out. Loading (Starlark) lives in ``starlark_loader``; shell analysis and
heuristics live elsewhere and only call :meth:`Policy.matches_for_command`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from corral.types import RuleDecision


@dataclass(frozen=True)
class PrefixRule:
    """One ``prefix_rule`` after first-position expansion: a fixed program plus alternatives."""

    program: str
    rest: tuple[frozenset[str], ...]
    rest_display: tuple[tuple[str, ...], ...]
    decision: RuleDecision
    justification: str | None = None
    source: str = ""  # "<file>:<line>" or "requirements"

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


@dataclass(frozen=True)
class RuleMatch:
    """A rule that matched one command (``prefixRuleMatch`` in Codex's JSON)."""

    matched_prefix: tuple[str, ...]
    decision: RuleDecision
    rule: PrefixRule
    resolved_program: str | None = None

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


@dataclass(frozen=True)
class NetworkRule:
    """``network_rule(host, protocol, decision)``: merged into the proxy's domain policy."""

    host: str
    protocol: str
    decision: RuleDecision
    justification: str | None = None
    source: str = ""


@dataclass(frozen=True)
class RulesLoadError:
    """A rules source that failed to load. Until fixed, every command is at least ``prompt``."""

    path: str
    line: int | None
    column: int | None
    message: str

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


@dataclass(eq=False)
class Policy:
    """Rules pooled from every source, indexed by program (argv[0]) for a lean hot path.

    Compared and hashed by identity, so decisions can be cached per policy object.
    """

    rules_by_program: dict[str, list[PrefixRule]] = field(default_factory=dict)
    host_executables: dict[str, tuple[str, ...]] = field(default_factory=dict)
    network_rules: list[NetworkRule] = field(default_factory=list)
    load_errors: list[RulesLoadError] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    generation: int = 0  # bumped on every change; part of the decision cache key
    # program -> (generation, rule count, rules by first argument, rules with no arguments):
    # built lazily by ``candidates`` so the hot path tries only rules that can match
    _first_index: dict[str, tuple[int, int, dict[str, list[PrefixRule]], list[PrefixRule]]] = (
        field(default_factory=dict, init=False, repr=False))

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
