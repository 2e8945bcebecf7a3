"""Makefile text given to ``make`` on its command line or standard input: the commands its
recipes, ``$(shell ...)`` calls and ``!=`` assignments run (imported when ``make`` is seen)."""

from __future__ import annotations

import re

from corral.rules.argv import Argv
from corral.rules.inline_result import COMPUTED, MAX_CODE, Inline

# make variables whose value is a program make runs for recipes (``make SHELL=... CC=...``)
_MAKE_PROGRAMS = frozenset({"SHELL", "CC", "CXX", "CPP", "LD", "AR", "AS", "FC", "RM", "MAKE"})


def make_commands(a: Argv, stdin: str | None) -> Inline | None:
    """What ``make`` runs from makefile text it is given (``-f -`` with a heredoc, ``--eval``)
    and from program variables set on its command line; None when it only reads files."""
    out = Inline()
    texts: list[str] = []
    i = 1
    n = len(a)
    while i < n:
        if not a.known(i):
            out.problems.append("make's options are computed at run time")
            i += 1
            continue
        tok = a.tokens[i]
        nxt = a.tokens[i + 1] if i + 1 < n and a.known(i + 1) else None
        value: str | None = None
        if tok in ("-f", "--file", "--makefile"):
            value, i = nxt, i + 2
        elif tok.startswith(("--file=", "--makefile=")):
            value, i = tok.split("=", 1)[1], i + 1
        elif tok.startswith("-f") and len(tok) > 2:
            value, i = tok[2:], i + 1
        elif tok in ("--eval", "-E"):
            texts.append(nxt or "")
            if nxt is None:
                out.problems.append("make --eval text is computed at run time")
            i += 2
            continue
        elif tok.startswith("--eval="):
            texts.append(tok.split("=", 1)[1])
            i += 1
            continue
        elif tok in ("-C", "-I", "-o", "-W", "--directory", "--include-dir", "--old-file",
                     "--new-file", "--what-if", "--assume-old", "--assume-new"):
            i += 2
            continue
        else:
            name, eq, val = tok.partition("=")
            if eq and not tok.startswith("-"):
                name = name.rstrip(":+?!").strip()
                if name in _MAKE_PROGRAMS and val.strip():
                    out.shell(val, False, f"make's {name}=")
            i += 1
            continue
        if value in ("-", "/dev/stdin"):
            if stdin is None:
                out.problems.append("make reads its makefile from standard input; what it runs "
                                    "cannot be checked")
            else:
                texts.append(stdin)
    for text in texts:
        found = makefile_commands(text)
        out.scripts += found.scripts
        out.argvs += found.argvs
        out.problems += found.problems
    return out if out else None


_AUTOMATIC = re.compile(r"\$(?:[@<^?*+|%]|\([@<^?*+|%][DF]\)|\{[@<^?*+|%][DF]\})")
_INCLUDE = re.compile(r"\s*-?s?include\s")
_SETS_SHELL = re.compile(r"\s*(?:override\s+|export\s+)*(?:SHELL|\.SHELLFLAGS)\s*[:+?!]*=")


def makefile_commands(text: str) -> Inline:
    """Recipes and ``$(shell ...)`` calls of makefile text (read from stdin or ``--eval``)."""
    out = Inline()
    if len(text) > MAX_CODE:
        out.problems.append(f"the makefile is longer than {MAX_CODE // 1024} KiB; not analysed")
        return out
    for raw in text.replace("\\\n", " ").split("\n"):
        for inner in _shell_calls(raw, out):
            _recipe(inner, out, "`$(shell ...)` in the makefile")
        if raw.startswith("\t"):
            _recipe(raw[1:].lstrip("@-+ \t"), out, "a makefile recipe")
            continue
        line = raw.split("#", 1)[0]
        if not line.strip():
            continue
        if _INCLUDE.match(line):
            out.problems.append("the makefile includes other makefiles; what they run cannot "
                                "be checked")
        elif _SETS_SHELL.match(line):
            out.problems.append("the makefile sets SHELL; what runs its recipes cannot be "
                                "checked")
        elif "!=" in line and "=" not in line.split("!=", 1)[0]:
            _recipe(line.split("!=", 1)[1].strip(), out, "a `!=` assignment in the makefile")
        elif ";" in line and ":" in line.split(";", 1)[0] and "=" not in line.split(";", 1)[0]:
            _recipe(line.split(";", 1)[1].lstrip("@-+ \t"), out, "a makefile recipe")
        if "$(eval" in line or "${eval" in line:
            out.problems.append("the makefile evaluates text built at run time ($(eval)); what "
                                "it runs cannot be checked")
    return out


_SHELL_CALL = re.compile(r"\$[({]shell\s")


def _shell_calls(line: str, out: Inline) -> list[str]:
    """The commands of ``$(shell ...)`` calls in one line (one pass: nested calls are part of
    the outer command's text)."""
    found: list[str] = []
    pos = 0
    while True:
        m = _SHELL_CALL.search(line, pos)
        if m is None:
            return found
        open_ = line[m.start() + 1]
        close = ")" if open_ == "(" else "}"
        depth = 1
        k = m.end()
        while k < len(line) and depth:
            if line[k] == open_:
                depth += 1
            elif line[k] == close:
                depth -= 1
            k += 1
        if depth:
            out.problems.append("a `$(shell` call in the makefile is not closed")
            return found
        found.append(line[m.end():k - 1])
        pos = k


def _recipe(text: str, out: Inline, where: str) -> None:
    """A recipe line as shell text: ``$$`` is a dollar for the shell; automatic variables
    (``$@``, ``$<``) are unknown words; any other make expansion is computed at run time."""
    text = _AUTOMATIC.sub(COMPUTED.replace("$", "\0"), text.replace("$$", "\1"))
    dynamic = "$" in text
    text = re.sub(r"\$(?:\([^()]*\)|\{[^{}]*\}|.)", "\0{computed}", text)
    out.shell(text.replace("\0", "$").replace("\1", "$"), dynamic, where)
