"""Code handed to an interpreter on its command line (or in a heredoc): what it runs.

``interpreter_code(argv, name, stdin)`` reads the interpreter's options the way the interpreter
does and returns what the inline code runs (an :class:`Inline`), or None when the program runs
a file or prints its version (then it is judged as a program, as before). Python is parsed with
``ast`` (``inline_python``); Perl, Ruby, node and awk are scanned (``inline_scan``); makefile
text read from standard input or ``--eval`` by ``inline_make``. Those modules are imported
when an interpreter with inline code is seen, not before.
"""

from __future__ import annotations

import re

from corral.rules.argv import Argv
from corral.rules.hidden_env import NAMES as _HIDDEN_NAMES
from corral.rules.inline_result import Inline

PYTHONS = frozenset({"python", "python2", "python3", "pypy", "pypy3"}
                    | {f"python3.{k}" for k in range(0, 20)} | {"python2.7"})
AWKS = frozenset({"awk", "gawk", "mawk", "nawk", "original-awk", "busybox-awk"})
MAKES = frozenset({"make", "gmake"})
LANGS = {"perl": "perl", "ruby": "ruby", "node": "js", "nodejs": "js"}  # (``bun -e``: runners)
INTERPRETERS = PYTHONS | AWKS | MAKES | LANGS.keys()
_hidden_rx: list[re.Pattern[str]] = []  # compiled on first use: importing stays cheap


class _Stdin(Exception):
    """The interpreter reads its program from standard input."""


def interpreter_code(a: Argv, name: str, stdin: str | None) -> Inline | None:
    """What the inline code of interpreter ``name`` (a basename) in ``a`` runs; None when it
    runs no inline code (a script file, ``--version``)."""
    if name in AWKS:
        return _awk(a)
    if name in MAKES:
        from corral.rules.inline_make import make_commands

        return make_commands(a, stdin)
    lang = "python" if name in PYTHONS else "perl" if name == "perl" else (
        "ruby" if name == "ruby" else "js")
    try:
        code = _OPTION_WALK[lang](a)
    except _Stdin:
        if stdin is None:
            out = Inline()
            out.problems.append(f"{name} reads its program from standard input (e.g. a pipe); "
                                "what it runs cannot be checked")
            return out
        code = stdin
    if code is None:
        return None
    if isinstance(code, Inline):
        return code
    return analyse(code, lang)


def analyse(code: str, lang: str) -> Inline:
    """What ``code`` in ``lang`` ("python", "perl", "ruby", "js", "awk", "make") runs."""
    if lang == "python":
        from corral.rules.inline_python import python_commands

        out = python_commands(code)
    elif lang == "make":
        from corral.rules.inline_make import makefile_commands

        out = makefile_commands(code)
    else:
        from corral.rules.inline_scan import scan

        out = scan(code, lang)
    if not (out.scripts or out.argvs):
        return out
    if not _hidden_rx:
        _hidden_rx.append(re.compile("|".join(sorted(_HIDDEN_NAMES))))
    var = _hidden_rx[0].search(code)
    if var is not None:
        out.problems.append(f"inline code sets {var.group(0)}, which names a program another "
                            "program runs; what it runs cannot be checked")
    return out


def _unknown(what: str) -> Inline:
    out = Inline()
    out.problems.append(what)
    return out


# ---- option walks: the first of these that names inline code wins --------------------------

def _python(a: Argv) -> str | Inline | None:
    i = 1
    n = len(a)
    while i < n:
        if not a.known(i):
            return _unknown("python's options are computed at run time")
        tok = a.tokens[i]
        if tok == "-":
            raise _Stdin
        if tok == "--" or not tok.startswith("-"):
            return None  # a script file
        if tok.startswith("--"):
            if tok in ("--version", "--help", "--help-env", "--help-xoptions", "--help-all"):
                return None
            i += 2 if tok == "--check-hash-based-pycs" else 1
            continue
        for j, ch in enumerate(tok[1:], 2):
            if ch == "c":
                rest = tok[j:]
                if rest:
                    return rest
                if i + 1 >= n:
                    return _unknown("python -c has no code")
                return a.tokens[i + 1] if a.known(i + 1) else _unknown(
                    "python -c code is computed at run time")
            if ch == "m" or ch in "Vh?":
                return None  # a module (judged as the program) or help/version
            if ch in "WX":
                i += 0 if tok[j:] else 1
                break
        i += 1
    raise _Stdin


class _Switches:
    """How ``perl``/``ruby`` read their single-letter switches (clustered: ``-lne CODE``)."""

    def __init__(self, code: str, module: str, digits: str, rest: str, next_if_empty: str,
                 info: str, info_long: tuple[str, ...]) -> None:
        self.code = code  # -e: code in the rest of the word or the next word
        self.module = module  # perl -MMod: ``use Mod;`` is code too
        self.digits = digits  # optional digits, then more switches (-l0, -0777)
        self.rest = rest  # the rest of the word is this switch's value
        self.next_if_empty = next_if_empty  # ... or the next word when nothing is attached
        self.info = info  # prints help/version and runs nothing (unless code came first)
        self.info_long = info_long


_PERL = _Switches("eE", "Mm", "l0C", "iIxdDF", "", "vhV", ("--version", "--help"))
_RUBY = _Switches("e", "", "0", "rICEFixW", "rICE", "h", ("--version", "--help", "-h",
                                                           "--copyright"))


def _perl(a: Argv) -> str | Inline | None:
    return _switches(a, "perl", _PERL)


def _ruby(a: Argv) -> str | Inline | None:
    return _switches(a, "ruby", _RUBY)


def _switches(a: Argv, name: str, sw: _Switches) -> str | Inline | None:
    codes: list[str] = []
    i = 1
    n = len(a)
    while i < n:
        if not a.known(i):
            return _unknown(f"{name}'s options are computed at run time")
        tok = a.tokens[i]
        if tok == "--":
            i += 1
            break
        if tok == "-":
            raise _Stdin
        if not tok.startswith("-"):
            break
        if tok in sw.info_long and not codes:
            return None
        if tok.startswith("--"):
            i += 1
            continue
        j = 1
        while j < len(tok):
            ch = tok[j]
            rest = tok[j + 1:]
            if ch in sw.code:
                if rest:
                    codes.append(rest)
                elif i + 1 < n:
                    i += 1
                    if not a.known(i):
                        return _unknown(f"{name} -e code is computed at run time")
                    codes.append(a.tokens[i])
                break
            if ch in sw.module:
                if rest:
                    codes.append(f"use {rest.lstrip('-')};")
                break
            if ch in sw.digits:
                j += 1
                while j < len(tok) and (tok[j].isdigit() or (ch == "0" and tok[j] in "xX")):
                    j += 1
                continue
            if ch in sw.rest:
                if not rest and ch in sw.next_if_empty:
                    i += 1
                break
            if ch in sw.info and not codes:
                return None
            j += 1
        i += 1
    if codes:
        return "\n".join(codes)
    if i >= n:
        raise _Stdin
    return None


_NODE_VALUE = frozenset({"-r", "--require", "--import", "--loader", "--experimental-loader",
                         "-C", "--conditions", "--title", "--env-file", "--inspect-port",
                         "--input-type", "--stack-size"})
_NODE_INFO = frozenset({"-v", "--version", "-h", "--help", "--v8-options", "-c", "--check",
                        "--run", "--test"})


def _node(a: Argv) -> str | Inline | None:
    i = 1
    n = len(a)
    while i < n:
        if not a.known(i):
            return _unknown("node's options are computed at run time")
        tok = a.tokens[i]
        if tok in _NODE_INFO:
            return None
        if tok in ("-e", "--eval", "-p", "--print") or (
                len(tok) > 2 and tok[0] == "-" and tok[1] != "-" and set(tok[1:]) & {"e", "p"}):
            if i + 1 >= n:
                return _unknown("node -e has no code")
            return a.tokens[i + 1] if a.known(i + 1) else _unknown(
                "node -e code is computed at run time")
        if tok.startswith(("--eval=", "--print=")):
            return tok.split("=", 1)[1]
        if tok == "-":
            raise _Stdin
        if tok == "--" or not tok.startswith("-"):
            return None
        i += 2 if tok in _NODE_VALUE else 1
    raise _Stdin


def _awk(a: Argv) -> Inline | None:
    programs: list[str] = []
    from_file = False
    i = 1
    n = len(a)
    while i < n:
        if not a.known(i):
            return _unknown("awk's options or program are computed at run time")
        tok = a.tokens[i]
        nxt = a.tokens[i + 1] if i + 1 < n else ""
        if tok == "--":
            i += 1
            break
        if tok in ("-f", "--file", "-E", "--exec", "-i", "--include") or tok.startswith(
                ("--file=", "--exec=", "--include=")) or (tok[:2] in ("-f", "-E") and len(tok) > 2):
            value = tok.split("=", 1)[1] if "=" in tok else (tok[2:] if len(tok) > 2 and tok[1] != "-"
                                                             else nxt)
            if value in ("-", "/dev/stdin"):
                return _unknown("awk reads its program from standard input; what it runs "
                                "cannot be checked")
            from_file = True
            i += 1 if ("=" in tok or (len(tok) > 2 and tok[1] != "-")) else 2
            continue
        if tok in ("-e", "--source") or tok.startswith("--source="):
            if "=" in tok:
                programs.append(tok.split("=", 1)[1])
                i += 1
            else:
                if i + 1 < n and not a.known(i + 1):
                    return _unknown("awk program text is computed at run time")
                programs.append(nxt)
                i += 2
            continue
        if tok in ("-l", "--load") or tok.startswith("--load=") or (tok[:2] == "-l" and len(tok) > 2):
            return _unknown("awk loads a shared library (-l); what it runs cannot be checked")
        if tok in ("-F", "-v", "--field-separator", "--assign", "-W"):
            i += 2
            continue
        if tok.startswith("-") and len(tok) > 1:
            i += 1
            continue
        break
    if not programs and not from_file:
        if i >= n:
            return None  # usage error: awk runs nothing
        if not a.known(i):
            return _unknown("awk program text is computed at run time")
        programs.append(a.tokens[i])
    if not programs:
        return None
    return analyse("\n".join(programs), "awk")


_OPTION_WALK = {"python": _python, "perl": _perl, "ruby": _ruby, "js": _node}
