"""Evaluate ``.rules`` files with a real Starlark interpreter (starlark-pyo3), never Python eval.

The builtins are Python callables reached through a one-line Starlark prelude that passes
``call_stack()`` along, so every rule knows the ``file:line`` of its ``prefix_rule`` call. The
prelude shifts line numbers by one; errors are re-based before anyone sees them.
"""

from __future__ import annotations

import re
import shlex
import time

from corral.rules.model import (
    NETWORK_PROTOCOLS,
    NetworkRule,
    Policy,
    PrefixRule,
    RulesLoadError,
    basename_of,
    normalize_abs,
)
from corral.types import RuleDecision

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:
    from typing import Any

_PRELUDE = (
    "prefix_rule = lambda *a, **k: __corral_prefix_rule(call_stack(), *a, **k); "
    "host_executable = lambda *a, **k: __corral_host_executable(call_stack(), *a, **k); "
    "network_rule = lambda *a, **k: __corral_network_rule(call_stack(), *a, **k)\n"
)
_FRAME = re.compile(r"^\s*\* (.*):(\d+), in ", re.M)
_ARROW = re.compile(r"-->\s*(.*?):(\d+):(\d+)")
EVAL_DEADLINE_S = 5.0

_DECISIONS = {"allow": RuleDecision.ALLOW, "prompt": RuleDecision.PROMPT,
              "forbidden": RuleDecision.FORBIDDEN}


class _BuiltinError(Exception):
    pass


class _Pending:
    def __init__(self, rules: list[PrefixRule], matches: list[list[str]],
                 not_matches: list[list[str]], line: int | None) -> None:
        self.rules, self.matches, self.not_matches, self.line = rules, matches, not_matches, line


class _FileState:
    def __init__(self, path: str, policy: Policy) -> None:
        self.path = path
        self.policy = policy
        self.pending: list[_Pending] = []
        self.error: RulesLoadError | None = None


def _bind(fname: str, params: tuple[str, ...], required: int, args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> dict[str, Any]:
    """Starlark-style argument binding with Starlark-like error messages."""
    if len(args) > len(params):
        raise _BuiltinError(f"Too many positional arguments for call to {fname}")
    bound = dict(zip(params, args, strict=False))
    for key, value in kwargs.items():
        if key not in params:
            raise _BuiltinError(f"Found `{key}` extra named parameter(s) for call to {fname}")
        if key in bound:
            raise _BuiltinError(f"Repeated parameter `{key}` in call to {fname}")
        bound[key] = value
    for name in params[:required]:
        if name not in bound:
            raise _BuiltinError(f"Missing parameter `{name}` for call to {fname}")
    return bound


def _type_name(value: object) -> str:
    return {str: "string", int: "int", bool: "bool", list: "list", tuple: "tuple",
            dict: "dict", float: "float", type(None): "NoneType"}.get(type(value), type(value).__name__)


def _opt_str(fname: str, name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _BuiltinError(f"Type of parameter `{name}` doesn't match, expected `str | None`, "
                            f"actual `{_type_name(value)}` (in call to {fname})")
    return value


def _justification(value: object, fname: str) -> str | None:
    text = _opt_str(fname, "justification", value)
    if text is not None and not text.strip():
        raise _BuiltinError("invalid rule: justification cannot be empty")
    return text


def parse_pattern_token(value: object) -> tuple[str, ...]:
    """A pattern element: a string, or a non-empty list of alternative strings."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        alts: list[str] = []
        for item in value:
            if not isinstance(item, str):
                raise _BuiltinError("invalid pattern element: pattern alternative must be a "
                                    f"string (got {_type_name(item)})")
            alts.append(item)
        if not alts:
            raise _BuiltinError("invalid pattern element: pattern alternatives cannot be empty")
        return tuple(alts)
    raise _BuiltinError("invalid pattern element: pattern element must be a string or list of "
                        f"strings (got {_type_name(value)})")


def build_prefix_rules(tokens: list[tuple[str, ...]], decision: RuleDecision,
                       justification: str | None, source: str) -> list[PrefixRule]:
    """First-position alternatives expand into one rule per program (rules are indexed so)."""
    rest = tuple(frozenset(t) for t in tokens[1:])
    display = tuple(tokens[1:])
    return [PrefixRule(head, rest, display, decision, justification, source) for head in tokens[0]]


def split_example(text: str) -> list[str] | None:
    """POSIX word splitting as Codex's (Rust ``shlex``) does it; None on bad syntax.

    Differs from Python's ``shlex.split``: ``#`` at the start of a word starts a comment,
    backslash-newline is a line continuation, and inside double quotes a backslash escapes
    ``$ ` " \\`` and newline only.
    """
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\n":
            i += 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        word: list[str] = []
        while i < n and text[i] not in " \t\n":
            c = text[i]
            if c == "\\":
                if i + 1 >= n:
                    return None
                if text[i + 1] != "\n":
                    word.append(text[i + 1])
                i += 2
            elif c == "'":
                end = text.find("'", i + 1)
                if end < 0:
                    return None
                word.append(text[i + 1:end])
                i = end + 1
            elif c == '"':
                i += 1
                while True:
                    if i >= n:
                        return None
                    c = text[i]
                    if c == '"':
                        i += 1
                        break
                    if c == "\\":
                        if i + 1 >= n:
                            return None
                        nxt = text[i + 1]
                        if nxt in '$`"\\':
                            word.append(nxt)
                        elif nxt != "\n":
                            word.append("\\" + nxt)
                        i += 2
                        continue
                    word.append(c)
                    i += 1
            else:
                word.append(c)
                i += 1
        words.append("".join(word))
    return words


def _parse_example(value: object) -> list[str]:
    if isinstance(value, str):
        toks = split_example(value)
        if toks is None:
            raise _BuiltinError("invalid example: example string has invalid shell syntax")
        if not toks:
            raise _BuiltinError("invalid example: example cannot be an empty string")
        return toks
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            if not isinstance(item, str):
                raise _BuiltinError("invalid example: example tokens must be strings "
                                    f"(got {_type_name(item)})")
            out.append(item)
        if not out:
            raise _BuiltinError("invalid example: example cannot be an empty list")
        return out
    raise _BuiltinError("invalid example: example must be a string or list of strings "
                        f"(got {_type_name(value)})")


def _examples(fname: str, name: str, value: object) -> list[list[str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _BuiltinError(f"Type of parameter `{name}` doesn't match, expected `list`, "
                            f"actual `{_type_name(value)}` (in call to {fname})")
    return [_parse_example(v) for v in value]


def normalize_network_host(raw: str) -> str:
    """Lower-case, strip a trailing dot, a ``:port`` and IPv6 brackets; reject the rest."""
    host = raw.strip()
    if not host:
        raise _BuiltinError("invalid rule: network_rule host cannot be empty")
    if "://" in host or any(c in host for c in "/?#"):
        raise _BuiltinError("invalid rule: network_rule host must be a hostname or IP literal "
                            "(without scheme or path)")
    if host.startswith("["):
        inside, sep, rest = host[1:].partition("]")
        if not sep:
            raise _BuiltinError("invalid rule: network_rule host has an invalid bracketed IPv6 literal")
        port_ok = rest.startswith(":") and rest[1:].isdigit() and rest[1:].isascii()
        if rest and not port_ok:
            raise _BuiltinError(f"invalid rule: network_rule host contains an unsupported suffix: {raw}")
        host = inside
    elif host.count(":") == 1:
        cand, _, port = host.rpartition(":")
        if cand and port and port.isascii() and port.isdigit():
            host = cand
    norm = host.rstrip(".").strip().lower()
    if not norm:
        raise _BuiltinError("invalid rule: network_rule host cannot be empty")
    if "*" in norm:
        raise _BuiltinError("invalid rule: network_rule host must be a specific host; wildcards "
                            "are not allowed")
    if any(c.isspace() for c in norm):
        raise _BuiltinError("invalid rule: network_rule host cannot contain whitespace")
    return norm


class _Builtins:
    def __init__(self, state: _FileState) -> None:
        self.state = state

    def _line(self, stack: object) -> int | None:
        frames = _FRAME.findall(stack) if isinstance(stack, str) else []
        if len(frames) >= 2 and frames[-2][0] == self.state.path:
            return max(int(frames[-2][1]) - 1, 1)
        return None

    def _fail(self, stack: object, exc: _BuiltinError) -> None:
        self.state.error = RulesLoadError(self.state.path, self._line(stack), None, str(exc))
        raise exc

    def prefix_rule(self, stack: object, *args: Any, **kwargs: Any) -> None:
        try:
            b = _bind("prefix_rule", ("pattern", "decision", "match", "not_match", "justification"),
                      1, args, kwargs)
            raw_decision = _opt_str("prefix_rule", "decision", b.get("decision"))
            if raw_decision is None:
                decision = RuleDecision.ALLOW
            elif raw_decision in _DECISIONS:
                decision = _DECISIONS[raw_decision]
            else:
                raise _BuiltinError(f"invalid decision: {raw_decision}")
            justification = _justification(b.get("justification"), "prefix_rule")
            pattern = b["pattern"]
            if not isinstance(pattern, list):
                raise _BuiltinError("Type of parameter `pattern` doesn't match, expected `list`, "
                                    f"actual `{_type_name(pattern)}` (in call to prefix_rule)")
            tokens = [parse_pattern_token(v) for v in pattern]
            if not tokens:
                raise _BuiltinError("invalid pattern element: pattern cannot be empty")
            matches = _examples("prefix_rule", "match", b.get("match"))
            not_matches = _examples("prefix_rule", "not_match", b.get("not_match"))
        except _BuiltinError as exc:
            self._fail(stack, exc)
            return
        line = self._line(stack)
        source = f"{self.state.path}:{line}" if line else self.state.path
        rules = build_prefix_rules(tokens, decision, justification, source)
        self.state.pending.append(_Pending(rules, matches, not_matches, line))
        for rule in rules:
            self.state.policy.add_rule(rule)

    def host_executable(self, stack: object, *args: Any, **kwargs: Any) -> None:
        try:
            b = _bind("host_executable", ("name", "paths"), 2, args, kwargs)
            name, paths = b["name"], b["paths"]
            if not isinstance(name, str):
                raise _BuiltinError("Type of parameter `name` doesn't match (in call to host_executable)")
            if not name:
                raise _BuiltinError("invalid rule: host_executable name cannot be empty")
            if "/" in name or name in (".", ".."):
                raise _BuiltinError(f"invalid rule: host_executable name must be a bare executable "
                                    f"name (got {name})")
            if not isinstance(paths, list):
                raise _BuiltinError("Type of parameter `paths` doesn't match, expected `list` "
                                    "(in call to host_executable)")
            parsed: list[str] = []
            for raw in paths:
                if not isinstance(raw, str):
                    raise _BuiltinError("invalid rule: host_executable paths must be strings "
                                        f"(got {_type_name(raw)})")
                if not raw.startswith("/"):
                    raise _BuiltinError(f"invalid rule: host_executable paths must be absolute (got {raw})")
                norm = normalize_abs(raw)
                if norm is None or basename_of(norm) != name:
                    raise _BuiltinError(f"invalid rule: host_executable path `{raw}` must have "
                                        f"basename `{name}`")
                if norm not in parsed:
                    parsed.append(norm)
        except _BuiltinError as exc:
            self._fail(stack, exc)
            return
        self.state.policy.host_executables[name] = tuple(parsed)

    def network_rule(self, stack: object, *args: Any, **kwargs: Any) -> None:
        try:
            b = _bind("network_rule", ("host", "protocol", "decision", "justification"), 3,
                      args, kwargs)
            host, protocol, raw_decision = b["host"], b["protocol"], b["decision"]
            for pname, val in (("host", host), ("protocol", protocol), ("decision", raw_decision)):
                if not isinstance(val, str):
                    raise _BuiltinError(f"Type of parameter `{pname}` doesn't match, expected "
                                        f"`str` (in call to network_rule)")
            if protocol not in NETWORK_PROTOCOLS:
                raise _BuiltinError("invalid rule: network_rule protocol must be one of http, "
                                    f"https, socks5_tcp, socks5_udp (got {protocol})")
            if raw_decision == "deny":
                decision = RuleDecision.FORBIDDEN
            elif raw_decision in _DECISIONS:
                decision = _DECISIONS[raw_decision]
            else:
                raise _BuiltinError(f"invalid decision: {raw_decision}")
            justification = _justification(b.get("justification"), "network_rule")
            norm_host = normalize_network_host(host)
        except _BuiltinError as exc:
            self._fail(stack, exc)
            return
        line = self._line(stack)
        self.state.policy.network_rules.append(NetworkRule(
            norm_host, NETWORK_PROTOCOLS[protocol], decision, justification,
            f"{self.state.path}:{line}" if line else self.state.path))


def _render(example: list[str]) -> str:
    return shlex.join(example)


def _validate_examples(state: _FileState) -> None:
    """Codex checks ``not_match`` then ``match`` per call, with host-executable resolution on."""
    for pend in state.pending:
        mini = Policy(host_executables=dict(state.policy.host_executables))
        for rule in pend.rules:
            mini.add_rule(rule)
        for example in pend.not_matches:
            if mini.matches_for_command(example, resolve_host_executables=True):
                state.error = RulesLoadError(
                    state.path, pend.line, None,
                    f"not_match example `{_render(example)}` matches rule "
                    f"`{pend.rules[0].pattern_text()}`")
                return
        unmatched = [_render(ex) for ex in pend.matches
                     if not mini.matches_for_command(ex, resolve_host_executables=True)]
        if unmatched:
            state.error = RulesLoadError(
                state.path, pend.line, None,
                f"match example(s) {', '.join('`' + u + '`' for u in unmatched)} "
                f"not matched by rule `{pend.rules[0].pattern_text()}`")
            return


def _starlark_error(path: str, text: str, shift: int) -> RulesLoadError:
    msg = next((ln[len("error: "):] for ln in text.splitlines() if ln.startswith("error: ")),
               text.strip().splitlines()[0] if text.strip() else "starlark error")
    m = _ARROW.search(text)
    if m and m.group(1) == path:
        return RulesLoadError(path, max(int(m.group(2)) - shift, 1), int(m.group(3)), msg)
    return RulesLoadError(path, None, None, msg)


def load_rules_text(path: str, text: str, policy: Policy) -> RulesLoadError | None:
    """Evaluate one file into ``policy`` (rules accumulate). Returns the error, if any.

    On error the caller decides what to keep; ``policy`` may hold this file's partial rules.
    """
    import starlark as sl

    dialect = sl.Dialect.extended()
    dialect.enable_f_strings = True
    try:
        sl.parse(path, text, dialect)  # positions without the prelude
    except sl.StarlarkError as exc:
        return _starlark_error(path, str(exc), 0)
    state = _FileState(path, policy)
    builtins = _Builtins(state)
    module = sl.Module()
    module.add_callable("__corral_prefix_rule", builtins.prefix_rule)
    module.add_callable("__corral_host_executable", builtins.host_executable)
    module.add_callable("__corral_network_rule", builtins.network_rule)
    globals_ = sl.Globals.extended_by([sl.LibraryExtension.CallStack])
    deadline = time.monotonic() + EVAL_DEADLINE_S
    options = sl.EvalOptions(check_cancelled=lambda: time.monotonic() > deadline)
    try:
        ast = sl.parse(path, _PRELUDE + text, dialect)
        sl.eval_with(options, module, ast, globals_)
    except sl.StarlarkError as exc:
        if state.error is not None:
            return state.error
        err = _starlark_error(path, str(exc), 1)
        if time.monotonic() > deadline:
            return RulesLoadError(path, None, None,
                                  f"evaluation took longer than {EVAL_DEADLINE_S:.0f}s")
        return err
    _validate_examples(state)
    return state.error


def load_rules_file(path: str, policy: Policy) -> RulesLoadError | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return RulesLoadError(path, None, None, f"cannot read: {exc.strerror or exc}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return RulesLoadError(path, line, None, "file is not valid UTF-8")
    return load_rules_text(path, text, policy)
