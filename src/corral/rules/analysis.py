"""What will really run: shell scripts split, wrappers unwrapped, nested shells followed.

Works over a queue (never recursion). Output: the commands that run, the wrapper invocations
around them (still checked against rules), and problems that make the result uncertain.
"""

from __future__ import annotations

import functools
from collections import deque

from corral.record import Record
from corral.rules.argv import Argv
from corral.rules.hidden_env import classify, is_hidden
from corral.rules.inline import INTERPRETERS, interpreter_code
from corral.rules.runners import RUNNERS
from corral.rules.shell import ScriptParse, fast_split, parse_script
from corral.rules.wrappers import (
    SCRIPT_OPTIONS,
    SHELLS,
    UNWRAPPERS,
    basename,
    git_normalized,
    git_script,
    option_value,
    shell_script,
)

MAX_DEPTH = 32
MAX_ITEMS = 5_000
MAX_UNWRAP = 32
_KEYWORDS = frozenset({"{", "}", "(", ")", "if", "then", "else", "elif", "fi", "do", "done",
                       "while", "until", "for", "case", "esac", "select", "function", "[[",
                       "]]", "in"})
_SPECIAL = frozenset(SHELLS | UNWRAPPERS.keys() | RUNNERS.keys() | SCRIPT_OPTIONS.keys()
                     | INTERPRETERS
                     | {"eval", "source", ".", "alias", "trap", "git", "env"})
MAX_TOTAL_SCRIPT = 160 * 1024  # bytes of script text parsed for one decision, nesting included
_CACHE_SIZE = 4096
_CACHE_MAX_SCRIPT = 8192  # characters; longer scripts are parsed afresh (bounds the memory)


class Analysis(Record):
    __slots__ = _fields = ("commands", "wrappers", "problems", "hidden_problems", "writes",
                           "scripted", "indirect", "script_bytes", "libraries", "runs",
                           "covered")

    def __init__(self, commands: list[Argv] | None = None) -> None:
        self.commands: list[Argv] = [] if commands is None else commands
        self.wrappers: list[Argv] = []
        self.problems: list[tuple[str, str]] = []  # (command text, reason)
        # the same for commands hidden from the shell (inline code, variables that name
        # programs, package runners): kept apart so a caller can weigh them apart (the
        # reviewer has checks of its own for inline code); ``runtime`` treats both lists alike
        self.hidden_problems: list[tuple[str, str]] = []
        self.writes: list[tuple[str, str]] = []  # (target, redirect text)
        self.scripted = False  # a shell script was parsed (not a plain argv)
        # something other than the matched programs shapes the run (env assignments,
        # wrappers): such a command never skips the sandbox, whatever allow rules say
        self.indirect = False
        self.script_bytes = 0
        # shared objects the dynamic loader is told to map (LD_PRELOAD=...): (library, variable)
        self.libraries: list[tuple[Argv, str]] = []
        # what a package runner runs (``npx pkg args`` -> ``pkg args``): its deny rules and
        # dangerous heuristics count; otherwise the runner's own command line is the judgement
        self.runs: list[Argv] = []
        self.covered: set[int] = set()  # ids of queued runner payloads


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _parse_small(script: str) -> ScriptParse:
    return parse_script(script)


def _cached_parse(script: str) -> ScriptParse:
    """Agents repeat scripts: parse each once (LRU, thread-safe); treat the result as
    read-only."""
    if len(script) > _CACHE_MAX_SCRIPT:
        return parse_script(script)
    return _parse_small(script)


def clear_parse_cache() -> None:
    """Forget parsed scripts (benchmarks measure cold parses with this)."""
    _parse_small.cache_clear()


def display(a: Argv, limit: int = 400) -> str:
    import shlex

    parts: list[str] = []
    size = 0
    for i, t in enumerate(a.tokens):
        parts.append(t if i in a.unknown else shlex.quote(t))
        size += len(parts[-1]) + 1
        if size > limit:
            parts.append("...")
            break
    text = " ".join(parts)
    return text if len(text) <= limit else text[:limit] + "..."


def analyze(argv: list[str] | tuple[str, ...],
            env: tuple[tuple[str, str], ...] = ()) -> Analysis:
    """What ``argv`` runs; ``env`` holds variables of the environment it runs with that name
    programs (``hidden_env.from_environment``), judged like ``VAR=value`` prefixes."""
    out = Analysis()
    if not argv:
        out.problems.append(("", "empty command"))
        return out
    queue: deque[tuple[Argv, int, str | None]] = deque([(Argv.of(tuple(argv)), 0, None)])
    for name, value in env:
        _hidden_env(name, value, f"{name}={value}", 0, out, queue)
    items = 0
    while queue:
        a, depth, stdin = queue.popleft()
        items += 1
        if items > MAX_ITEMS or depth > MAX_DEPTH:
            out.problems.append((display(a)[:200], "commands nest too deeply to analyse"))
            break
        if depth == 0:  # nested commands come from these same strings: check once
            joined = "".join(a.tokens)  # one scan of all the words, not one per word
            if "\0" in joined:
                out.problems.append((display(a)[:200], "an argument contains a NUL byte"))
            if not a.tokens[0]:
                out.problems.append(("''", "empty command name"))
            if not joined.isascii() and _undecodable(joined):
                out.problems.append((display(a)[:200], "an argument is not valid UTF-8"))
        _one(a, depth, stdin, out, queue)
    return out


def _undecodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _env_split(a: Argv, value: str, depth: int, out: Analysis,
               queue: deque[tuple[Argv, int, str | None]]) -> None:
    """``env -S 'cmd args'``: the string is split into words (like a shell, without expansion)."""
    import shlex

    try:
        words = shlex.split(value)
    except ValueError:
        out.problems.append((display(a), "env -S string does not split"))
        return
    # operands after the -S option are appended to the split words; env reads the split words
    # as its own (assignments, options, then the command)
    idx = next((i for i, t in enumerate(a.tokens) if t.startswith(("-S", "--split-string"))), 0)
    skip = 2 if a.tokens[idx] in ("-S", "--split-string") else 1
    rest = a.sub(idx + skip)
    assigns = tuple(t for t in a.tokens[1:idx] if "=" in t and not t.startswith("-"))
    if words or len(rest):
        queue.append((Argv(("env", *assigns, *words, *rest.tokens)), depth + 1, None))


def _hidden_env(name: str, value: str | None, text: str, depth: int, out: Analysis,
                queue: deque[tuple[Argv, int, str | None]]) -> None:
    """An assignment to a variable that names a program another program runs."""
    found = classify(name, value)
    if found.problem is not None:
        out.hidden_problems.append((text[:200], found.problem))
    if found.script is not None:
        out.indirect = True
        _script(found.script, depth, out, queue)
    for lib in found.libraries:
        out.indirect = True
        out.libraries.append((Argv((lib,)), name))


def _assignments(a: Argv, end: int, depth: int, out: Analysis,
                 queue: deque[tuple[Argv, int, str | None]]) -> None:
    """``env NAME=value ... CMD`` / ``sudo NAME=value CMD``: words before ``end``."""
    for i in range(1, min(end, len(a))):
        tok = a.tokens[i]
        name, eq, value = tok.partition("=")
        if eq and is_hidden(name):
            _hidden_env(name, value if a.known(i) else None, tok, depth, out, queue)


def _script(text: str, depth: int, out: Analysis,
            queue: deque[tuple[Argv, int, str | None]]) -> None:
    out.scripted = True
    out.script_bytes += len(text)
    if out.script_bytes > MAX_TOTAL_SCRIPT:
        out.problems.append((text[:80], "too much nested script text to analyse"))
        return
    fast = fast_split(text)
    if fast is not None:  # plain words: split in a few microseconds, nothing worth caching
        for words in fast:
            queue.append((Argv(words), depth + 1, None))
        return
    parsed = _cached_parse(text)
    out.problems.extend(parsed.problems)
    out.writes.extend(parsed.writes)
    for name, value, assignment in parsed.env:
        _hidden_env(name, value, assignment, depth + 1, out, queue)
    for cmd in parsed.commands:
        out.indirect = out.indirect or cmd.assigns
        queue.append((cmd.argv, depth + 1, cmd.stdin_script))


def _shell_c(a: Argv) -> tuple[str, str | None] | None:
    """``sh -c SCRIPT`` / ``bash -lc SCRIPT``, the commonest shape, read without the general
    option walk (same answer as ``shell_script``; None: ask it)."""
    tokens = a.tokens
    if (len(tokens) == 3 and tokens[1] in ("-c", "-lc") and tokens[2][:1] not in ("-", "+")
            and a.fully_static):
        return "script", tokens[2]
    return None


def _one(a: Argv, depth: int, stdin: str | None, out: Analysis,
         queue: deque[tuple[Argv, int, str | None]]) -> None:
    unwraps = 0
    # a package runner's payload (``npx pkg`` -> ``pkg``), taken off the list now: ids are
    # only unique while the object lives
    payload: Argv | None = None
    if out.covered and id(a) in out.covered:
        out.covered.discard(id(a))
        payload = a
    while True:
        if not a.tokens:
            return
        unwraps += 1
        if unwraps > MAX_UNWRAP:
            out.commands.append(a.sub(0, 8))
            out.problems.append((display(a.sub(0, 8)) + " ...", "wrappers nest too deeply"))
            return
        if not a.known(0):
            out.commands.append(a)  # the shell-level problem is already recorded
            return
        name = basename(a.tokens[0])
        if name not in _SPECIAL:  # the common case: an ordinary program
            if a is payload:
                out.runs.append(a)
                return
            out.commands.append(a)
            if name in _KEYWORDS or "=" in name:
                out.problems.append((display(a), f"shell syntax `{name}` in command position "
                                                  "(a wrapper around shell syntax?)"))
            return
        if name in INTERPRETERS:
            out.commands.append(a)  # the interpreter itself is judged, then what its code runs
            _inline(a, name, depth, stdin, out, queue)
            return
        if name in SHELLS:
            how, text = _shell_c(a) or shell_script(a)
            if how == "script" and text is not None:
                out.wrappers.append(a)
                _script(text, depth, out, queue)
            elif how == "stdin":
                out.wrappers.append(a)
                if stdin is not None:
                    _script(stdin, depth, out, queue)
                else:
                    out.problems.append((display(a), f"{name} reads commands from standard "
                                                      "input (e.g. a pipe); they cannot be checked"))
            elif how == "unknown":
                out.wrappers.append(a)
                out.problems.append((display(a), f"the script given to {name} is computed at "
                                                  "run time"))
            else:
                out.commands.append(a)  # runs a script file: rules and heuristics judge it
            return
        if name == "eval":
            out.wrappers.append(a)
            out.problems.append((display(a), "eval runs text as a command"))
            if a.fully_static:
                _script(" ".join(a.tokens[1:]), depth, out, queue)
            return
        if name in ("source", "."):
            out.commands.append(a)
            target = a.tokens[1] if len(a) > 1 else ""
            if len(a) < 2 or not a.known(1) or target.startswith(("/dev/", "/proc/")):
                out.problems.append((display(a), f"{name} runs commands from a stream or a "
                                                  "path computed at run time"))
            return
        if name in ("alias", "trap") and len(a) > 1:
            out.commands.append(a)
            for i in range(1, len(a)):
                if a.known(i) and name == "alias" and "=" in a.tokens[i]:
                    _script(a.tokens[i].split("=", 1)[1], depth, out, queue)
                elif a.known(i) and name == "trap" and not a.tokens[i].startswith("-"):
                    _script(a.tokens[i], depth, out, queue)
                    break
            return
        if name in SCRIPT_OPTIONS or name == "env":
            names = SCRIPT_OPTIONS.get(name, ("-S", "--split-string"))
            present, value = option_value(a, names, leading_only=name == "env")
            if present:
                out.indirect = True
                out.commands.append(a)
                if value is None:
                    out.problems.append((display(a), f"the command run by {name} is computed "
                                                      "at run time"))
                elif name == "env":
                    _env_split(a, value, depth, out, queue)
                else:
                    _script(value, depth, out, queue)
                return
        if name == "git":
            norm, problem = git_normalized(a)
            if problem:
                out.problems.append((display(a), problem))
            inner_cmd = git_script(norm or a)
            if inner_cmd is not None:
                kind, text = inner_cmd
                if kind == "script" and text is not None:
                    _script(text, depth, out, queue)
                elif kind == "argv":
                    queue.append(((norm or a).sub(3), depth + 1, None))
                else:
                    out.problems.append((display(a), "git runs a command given at run time "
                                                      "(bisect run / submodule foreach / exec)"))
            # the command as written is judged (allow rules and the safe list see the global
            # options); the normalised form is checked against deny rules as well
            if norm is not None:
                out.indirect = True
                out.wrappers.append(norm)
            out.commands.append(a)
            return
        runner = RUNNERS.get(name)
        if runner is not None:
            _runner(a, runner(a), depth, out, queue)
            return
        unwrap = UNWRAPPERS.get(name)
        if unwrap is None:
            out.commands.append(a)
            return
        inner = unwrap(a)
        if inner and name in ("env", "sudo"):
            _assignments(a, len(a) - len(inner[0]), depth, out, queue)
        if name == "coproc":
            out.wrappers.append(a)
            out.problems.append((display(a), "coproc is not fully analysed"))
            for sub in inner or []:
                queue.append((sub, depth + 1, None))
            return
        if name == "find":
            out.commands.append(a)
            for sub in inner or []:
                queue.append((sub, depth + 1, None))
            return
        if inner is None:
            out.commands.append(a)
            out.problems.append((display(a), f"the command run by {name} is computed at run time"))
            return
        if not inner:
            out.commands.append(a)  # the wrapper alone (``env``, ``command -v x``)
            return
        out.indirect = True
        if name in ("sudo", "doas"):
            out.commands.append(a)  # privilege escalation is itself judged
        else:
            out.wrappers.append(a)
        a = inner[0]


def _inline(a: Argv, name: str, depth: int, stdin: str | None, out: Analysis,
            queue: deque[tuple[Argv, int, str | None]]) -> None:
    """Inline interpreter code (``python3 -c``, ``perl -e``, awk programs, ``make -f -``)."""
    found = interpreter_code(a, name, stdin)
    if found is None:
        return  # runs a file or prints its version: judged as the program
    shown = display(a)[:200]
    for why in found.problems:
        out.hidden_problems.append((shown, why))
    if found.scripts or found.argvs:
        out.indirect = True
    for text in found.scripts:
        _script(text, depth, out, queue)
    for inner in found.argvs:
        queue.append((inner, depth + 1, None))


def _runner(a: Argv, inner: list[Argv] | None, depth: int, out: Analysis,
            queue: deque[tuple[Argv, int, str | None]]) -> None:
    """``npx``/``uvx``/``pipx run``/``uv run``...: the runner's command line is judged as
    written (rules written for ``npx prettier`` keep working), and what it runs as well."""
    out.commands.append(a)
    if inner is None:
        out.hidden_problems.append((display(a), f"the command run by {basename(a.tokens[0])} is "
                                          "computed at run time"))
        return
    for sub in inner:
        out.indirect = True  # fetched code never skips the sandbox
        out.covered.add(id(sub))
        queue.append((sub, depth + 1, None))
