"""Commands that inline Perl, Ruby, JavaScript (node) and awk code runs.

These languages are scanned, not parsed: the lexer (``inline_lex``) finds the literal arguments
of the calls that run commands (``system``, ``exec``, backticks, ``qx``, ``open "|cmd"``,
``IO.popen``, ``Open3``, ``child_process``, awk's ``system()`` and ``|`` pipes). Then every word
in the raw text that could run a command must belong to such a call, and no word that reaches
functions by a computed name (``eval``, ``send``, symbolic references, ``Function``, a computed
``require``...) may appear; otherwise the command is asked about, with the word that made it so.
"""

from __future__ import annotations

import re

from corral.rules.argv import Argv
from corral.rules.inline_lex import CMD, ID, OP, STR, VAR, WORDS, LexError, Tok, lex
from corral.rules.inline_result import COMPUTED, Inline, shown

MAX_SCANNED = 8 * 1024  # characters of Perl/Ruby/JS/awk code scanned; more is asked about

_NAMES = {"perl": "perl code", "ruby": "ruby code", "js": "node code", "awk": "awk program"}
_CAPABILITY = {
    "perl": re.compile(r"`|\b(?:system|exec|readpipe|qx|open)\b"),
    "ruby": re.compile(r"`|%x|\b(?:system|exec|spawn|popen\w*|Open3|PTY|open|syscall)\b"),
    "js": re.compile(r"\b(?:child_process|execSync|exec|spawnSync|spawn|execFileSync|execFile"
                     r"|fork)\b"),
}
_ESCAPE = {
    "perl": re.compile(r"\beval\b|\bCORE::|\bsyscall\b|\bIPC::|\bShell\b|\bProc::|\bInline\b"
                       r"|\bDynaLoader\b|\bXSLoader\b|\bUNIVERSAL::|(?<!&)&(?!&)\s*[${]"
                       r"|->\s*[$(]"
                       r"|->\s*can\b|\*\s*\{|\(\?\??\{|<<\s*~?`|\bdo\s*[\"'$(qQ]"
                       r"|\brequire\s*[\"'$(]|\bB::|\bSymbol::"),
    "ruby": re.compile(r"\b(?:eval|instance_eval|class_eval|module_eval|instance_exec"
                       r"|class_exec|module_exec|send|__send__|public_send|method"
                       r"|define_method|const_get|ObjectSpace|binding|Fiddle|FFI|DL)\b"
                       r"|<<[~-]?`|\brequire\s*[(]?\s*[^\s\"'(]"),
    "js": re.compile(r"\b(?:eval|Function|vm|worker_threads|Worker|constructor|Reflect"
                     r"|globalThis|global|_linkedBinding|binding|dlopen|mainModule|__proto__"
                     r"|_load|createRequire)\b|\bprocess\s*\["
                     r"|\bimport\s*\(|\.\s*require\b|\brequire\s*\(\s*[^\s'\"]"
                     r"|\brequire\s*\(\s*(['\"])[^'\"]*\1\s*[^\s)]"),
    "awk": re.compile(r"@(?:load|include|namespace)\b|@\w+\s*\("),
}
_RUN_CALLS = {"perl": frozenset({"system", "exec"}), "ruby": frozenset({"system", "exec", "spawn"}),
              "js": frozenset({"exec", "execSync", "spawn", "spawnSync", "execFile",
                               "execFileSync", "fork"})}
_SHELL_CALLS = frozenset({"popen", "readpipe", "qx"})
_INTERP = {
    "perl": re.compile(r"[$@](?:\{[^}]*\}|[\w:]+(?:\[[^\]]*\]|\{[^}]*\}|->[\[{][^\]}]*[\]}])*)"),
    "ruby": re.compile(r"#\{[^}]*\}|#[$@]\w+"),
    "js": re.compile(r"\$\{[^}]*\}"),
}
_ENDS = frozenset({";", "\n", "or", "and", "if", "unless", "||", "&&", "}", "while", "until"})


def scan(code: str, lang: str) -> Inline:
    """The commands inline ``code`` in ``lang`` ("perl", "ruby", "js", "awk") runs."""
    out = Inline()
    where = _NAMES[lang]
    if len(code) > MAX_SCANNED:
        out.problems.append(f"{where} is longer than {MAX_SCANNED // 1024} KiB; not analysed")
        return out
    if "\0" in code:
        out.problems.append(f"{where} contains a NUL byte; not analysed")
        return out
    esc = _ESCAPE[lang].search(code)
    if esc is not None:
        word = shown(" ".join(esc.group(0).split()), 40)
        out.problems.append(f"{where} uses `{word}`, which runs code or calls functions by a "
                            "name computed at run time; what it runs cannot be checked")
    cap = _CAPABILITY.get(lang)
    hits = [] if cap is None else list(cap.finditer(code))
    if lang == "js" and "child_process" not in code:
        hits = []  # node cannot start a program without the child_process module
    if lang != "awk" and not hits:
        return out
    try:
        toks = lex(code, lang)
    except LexError as exc:
        out.problems.append(f"{where} could not be read ({exc}); what it runs cannot be checked")
        return out
    resolved: set[int] = set()
    if lang == "awk":
        _awk(toks, out)
        return out
    if lang == "js":
        _js(toks, out, resolved)
    else:
        _perl_ruby(toks, lang, out, resolved)
    for m in hits:
        if m.start() not in resolved:
            out.problems.append(f"{where} uses `{m.group(0)}` in a way corral cannot read; what "
                                "it runs cannot be checked")
            break
    return out


# ---- arguments --------------------------------------------------------------------------------

def _split_args(toks: list[Tok], i: int, lang: str) -> tuple[list[list[Tok]], int]:
    """Arguments of a call whose name is at ``i - 1``: parenthesised, or up to the end of the
    statement (Perl and Ruby allow both). Returns (arguments, index after them)."""
    n = len(toks)
    paren = i < n and toks[i].text == "("
    j = i + 1 if paren else i
    depth = 0
    args: list[list[Tok]] = [[]]
    while j < n:
        t = toks[j]
        if t.kind == OP and t.text in "([{":
            depth += 1
        elif t.kind == OP and t.text in ")]}":
            if depth == 0:
                if paren and t.text == ")":
                    j += 1
                break
            depth -= 1
        elif depth == 0 and not paren and (t.text in _ENDS and t.kind in (OP, ID)):
            break
        if (depth == 0 and t.kind == OP and t.text == ",") or (depth == 0 and t.text == "=>"):
            args.append([])
        elif not (t.kind == OP and t.text == "\n"):
            args[-1].append(t)
        j += 1
    return [a for a in args if a], j


def _items(arg: list[Tok], lang: str) -> list[list[Tok]]:
    """The items of a ``[...]`` array display."""
    if len(arg) <= 2:
        return []
    inner = [Tok(OP, "(", arg[0].start), *arg[1:-1], Tok(OP, ")", arg[-1].start)]
    return _split_args(inner, 0, lang)[0]


def _fill(tok: Tok, lang: str) -> str:
    """A string literal's value with interpolations replaced by an unknown word."""
    if not tok.interp:
        return tok.text
    rx = _INTERP.get(lang)
    return tok.text if rx is None else rx.sub(COMPUTED, tok.text)


def _text(arg: list[Tok], lang: str) -> tuple[str | None, bool]:
    """Shell text from an argument: string literals joined (``.``/``+``/juxtaposition), any
    other part an unknown word; (None, True) if no part is a literal."""
    parts: list[str] = []
    dynamic = False
    literal = False
    for t in arg:
        if t.kind == STR:
            parts.append(_fill(t, lang))
            dynamic = dynamic or t.interp
            literal = True
        elif t.kind == OP and t.text in (".", "+") and lang != "awk":
            continue
        else:
            dynamic = True
            if not parts or parts[-1] != COMPUTED:
                parts.append(COMPUTED)
    if not literal:
        return None, True
    return "".join(parts), dynamic


def _words(arg: list[Tok], lang: str) -> tuple[list[str], set[int], bool] | None:
    """An argument as argv words: a literal, ``qw(...)``, a ``[...]`` array of literals."""
    if len(arg) == 1 and arg[0].kind == WORDS:
        return arg[0].text.split(), set(), False
    if len(arg) == 1 and arg[0].kind == STR and not arg[0].interp:
        return [arg[0].text], set(), False
    if len(arg) == 1 and arg[0].kind == VAR and arg[0].text.startswith("@"):
        return [], set(), True  # a Perl array: any number of words
    if arg and arg[0].text == "[" and arg[-1].text == "]":
        words: list[str] = []
        unknown: set[int] = set()
        for item in _items(arg, lang):
            if len(item) == 1 and item[0].kind == STR and not item[0].interp:
                words.append(item[0].text)
            else:
                unknown.add(len(words))
                words.append(COMPUTED)
        return words, unknown, False
    return None


def _run(args: list[list[Tok]], lang: str, out: Inline, where: str, shell_one: bool = True
         ) -> None:
    """``system``-like: one string is shell text, several words (or an array) are an argv."""
    if not args:
        out.problems.append(f"{where} has no command")
        return
    if shell_one and len(args) == 1 and not ((args[0] and args[0][0].text in ("[", "@"))
                                             or args[0][0].kind in (WORDS, VAR)):
        text, dynamic = _text(args[0], lang)
        if text is None:
            out.problems.append(f"{where} runs a shell command computed at run time; what it "
                                "runs cannot be checked")
        else:
            out.shell(text, dynamic, where)
        return
    tokens: list[str] = []
    unknown: set[int] = set()
    open_from: int | None = None
    for k, arg in enumerate(args):
        w = _words(arg, lang)
        if w is None:
            unknown.add(len(tokens))
            tokens.append(COMPUTED)
            continue
        words, unk, is_open = w
        if k == 0 and arg[0].text == "[" and len(words) == 2:
            words = words[:1]  # ruby ["prog", "argv0"]: the program, its shown name
        unknown |= {len(tokens) + u for u in unk}
        tokens.extend(words)
        if is_open and open_from is None:
            open_from = len(tokens)
            tokens.append("@")
    out.argv(Argv(tuple(tokens), frozenset(unknown), open_from), where)


# ---- perl and ruby ----------------------------------------------------------------------------

def _perl_ruby(toks: list[Tok], lang: str, out: Inline, resolved: set[int]) -> None:
    where0 = _NAMES[lang]
    calls = _RUN_CALLS[lang] | _SHELL_CALLS
    n = len(toks)
    after = 0  # index after the last call's arguments: a call inside them stays unresolved
    for i, t in enumerate(toks):
        if t.start in resolved and t.kind == ID:
            continue  # read as part of an earlier call (``PTY.spawn``)
        if t.kind == ID and i < after:
            continue  # (one pass over the tokens, however calls nest; the raw check asks)
        if t.kind == "eval":
            out.problems.append(f"{where0} evaluates a substitution as code (s///e); what it "
                                "runs cannot be checked")
        elif t.kind == CMD:
            resolved.add(t.start)
            text = _fill(t, lang)
            out.shell(text, t.interp, f"a command literal in {where0}")
        elif t.kind == ID and t.text in ("Open3", "PTY") and i + 2 < n and toks[i + 1].text == ".":
            resolved.add(t.start)
            name = toks[i + 2]
            resolved.add(name.start)
            args, after = _split_args(toks, i + 3, lang)
            _run(_drop_options(args), lang, out, f"`{t.text}.{name.text}` in {where0}")
        elif t.kind == ID and t.text in calls:
            if (i + 1 < n and toks[i + 1].text in ("=>", ":", "=")) or (
                    i > 0 and toks[i - 1].text in (":", "\\", "&")):
                continue  # a hash key, a variable, a symbol or a reference: the raw check asks
            if i > 0 and toks[i - 1].text == "." and t.text == "popen" and not (
                    i > 1 and toks[i - 2].text == "IO"):
                continue
            resolved.add(t.start)
            where = f"`{t.text}` in {where0}"
            if i + 1 < n and toks[i + 1].text == "{" and lang == "perl":
                out.problems.append(f"{where} names its program in a block computed at run "
                                    "time; what it runs cannot be checked")
                continue
            args, after = _split_args(toks, i + 1, lang)
            if lang == "ruby" and args and args[0][0].text == "{":
                args = args[1:]  # the environment hash (its names are checked separately)
            _run(_drop_options(args) if lang == "ruby" else args, lang, out, where,
                 shell_one=True)
        elif t.kind == ID and t.text == "open":
            resolved.add(t.start)
            after = _open(toks, i, lang, out, where0)


def _drop_options(args: list[list[Tok]]) -> list[list[Tok]]:
    """Ruby keyword options (``chdir: "x"``, ``:err => ...``, ``{...}``) are not words."""
    return [a for a in args if not (a[0].text == "{" or (len(a) > 1 and a[1].text in (":", "=>"))
                                    or a[0].text == ":")]


def _open(toks: list[Tok], i: int, lang: str, out: Inline, where0: str) -> int:
    """``open`` with a pipe runs a command; returns the index after its arguments."""
    where = f"`open` in {where0}"
    if i > 0 and toks[i - 1].text in (".", "->", "::"):
        recv = toks[i - 2].text if i > 1 else ""
        if recv in ("File", "Dir", "Tempfile", "Zlib", "GzipReader", "IO"):
            return i + 1  # these open files, never commands
    args, end = _split_args(toks, i + 1, lang)
    if lang == "ruby":
        args = _drop_options(args)
        mode_at = 0  # Kernel#open(path_or_pipe, mode...)
    else:
        mode_at = 1  # open(FH, MODE, ...) / open(FH, EXPR)
    if len(args) <= mode_at:
        out.problems.append(f"{where} opens something named at run time; it may run a command")
        return end
    spec, dynamic = _text(args[mode_at], lang)
    if spec is None:
        out.problems.append(f"{where} has a mode or path computed at run time; it may run a "
                            "command")
        return end
    rest = args[mode_at + 1:]
    if lang == "perl" and rest:  # three or more arguments: the mode alone says
        if "|" in spec:
            _run(rest, lang, out, where)
        elif dynamic:
            out.problems.append(f"{where} has a mode computed at run time; it may run a command")
        return end
    body = spec.strip()
    if body.startswith("|"):
        out.shell(body[1:], dynamic, where)
    elif body.endswith("|"):
        out.shell(body[:-1], dynamic, where)
    elif dynamic and COMPUTED in body and lang == "perl" and body.startswith(COMPUTED):
        out.problems.append(f"{where} opens a path computed at run time; it may run a command")
    return end


# ---- node -------------------------------------------------------------------------------------

def _is_cp(t: Tok) -> bool:
    return t.kind == STR and not t.interp and t.text in ("child_process", "node:child_process")


def _js(toks: list[Tok], out: Inline, resolved: set[int]) -> None:
    n = len(toks)
    bound: set[str] = set()  # names bound to the module
    funcs: set[str] = set()  # its functions, destructured
    decl_at: set[int] = set()
    for i, t in enumerate(toks):
        if not _is_cp(t):
            continue
        # require('child_process') / import ... from 'child_process'
        if i >= 2 and toks[i - 1].text == "(" and toks[i - 2].text == "require":
            close = i + 1
            if close >= n or toks[close].text != ")":
                continue
            resolved.add(t.start + 1)
            after = toks[close + 1] if close + 1 < n else None
            if after is not None and after.text == "." and close + 2 < n:
                continue  # require('child_process').execSync(...): the call is read below
            _bind_before(toks, i - 2, bound, funcs, decl_at)
            resolved.add(t.start)
        elif i >= 1 and toks[i - 1].text == "from":
            k = i - 2
            while k >= 0 and toks[k].text != "import":
                k -= 1
            if k >= 0:
                _bind_import(toks, k + 1, i - 1, bound, funcs, decl_at)
                resolved.add(t.start)
    # the module name in quotes is harmless alone (a computed require or import is an escape)
    resolved.update(t.start + 1 for t in toks if _is_cp(t))
    resolved.update(toks[k].start for k in decl_at)
    args_end = 0  # index after the last call's arguments (one pass, however calls nest)
    for i, t in enumerate(toks):
        if t.kind != ID or i in decl_at or i < args_end:
            continue
        if t.text in bound:
            resolved.add(t.start)
            if i + 2 < n and toks[i + 1].text == "." and toks[i + 2].kind == ID:
                name = toks[i + 2]
                if name.text in _RUN_CALLS["js"] and i + 3 < n and toks[i + 3].text == "(":
                    resolved.add(name.start)
                    args, args_end = _split_args(toks, i + 3, "js")
                    _js_call(name.text, args, out)
                continue
            out.problems.append(f"node code passes the child_process module `{t.text}` around; "
                                "what it runs cannot be checked")
        elif t.text in _RUN_CALLS["js"] and i + 1 < n and toks[i + 1].text == "(":
            prev = toks[i - 1] if i else None
            if prev is not None and prev.text == "." and i >= 2 and toks[i - 2].text == ")" and (
                    i >= 3 and _is_cp(toks[i - 3])):
                resolved.add(t.start)
                resolved.add(toks[i - 3].start)
                args, args_end = _split_args(toks, i + 1, "js")
                _js_call(t.text, args, out)
            elif t.text in funcs and (prev is None or prev.text != "."):
                resolved.add(t.start)
                args, args_end = _split_args(toks, i + 1, "js")
                _js_call(t.text, args, out)


def _bind_before(toks: list[Tok], req: int, bound: set[str], funcs: set[str],
                 decl_at: set[int]) -> None:
    """``const NAME = require(...)`` or ``const { a, b } = require(...)``."""
    if req < 2 or toks[req - 1].text != "=":
        return
    k = req - 2
    if toks[k].kind == ID:
        bound.add(toks[k].text)
        decl_at.add(k)
        return
    if toks[k].text == "}":
        _destructure(toks, k, funcs, decl_at)


def _destructure(toks: list[Tok], close: int, funcs: set[str], decl_at: set[int]) -> None:
    k = close - 1
    names = []
    while k >= 0 and toks[k].text != "{":
        if (toks[k].kind == ID and toks[k + 1].text in (",", "}")
                and toks[k - 1].text not in (":", "as")):
            names.append(k)
            # a renamed function (``{exec: run}``) stays unresolved: the raw check asks
        k -= 1
    for k2 in names:
        funcs.add(toks[k2].text)
        decl_at.add(k2)


def _bind_import(toks: list[Tok], start: int, end: int, bound: set[str], funcs: set[str],
                 decl_at: set[int]) -> None:
    k = start
    while k < end:
        t = toks[k]
        if t.text == "{":
            close = k
            while close < end and toks[close].text != "}":
                close += 1
            _destructure(toks, close, funcs, decl_at)
            k = close + 1
            continue
        if t.kind == ID and t.text not in ("as", "from") and toks[k - 1].text != "{":
            bound.add(t.text)
            decl_at.add(k)
        k += 1


def _js_call(name: str, args: list[list[Tok]], out: Inline) -> None:
    where = f"child_process `{name}` in node code"
    if not args:
        out.problems.append(f"{where} has no command")
        return
    if name in ("exec", "execSync"):
        _run(args[:1], "js", out, where)
        return
    if name == "fork":
        _run([[Tok(STR, "node", 0)], *args[:1]], "js", out, where, shell_one=False)
        return
    shell = any(t.kind == ID and t.text == "shell" for a in args[1:] for t in a)
    listed = [args[0]]
    if len(args) > 1 and args[1] and args[1][0].text == "[":
        listed.append(args[1])
    if shell:
        tokens: list[str] = []
        for a in listed:
            w = _words(a, "js")
            tokens.extend(w[0] if w else [COMPUTED])
        out.shell(" ".join(tokens), COMPUTED in tokens, where)
        return
    flat: list[list[Tok]] = [listed[0]]
    if len(listed) > 1:
        flat.extend(_items(listed[1], "js"))
    _run(flat, "js", out, where, shell_one=False)


# ---- awk --------------------------------------------------------------------------------------

_AWK_BOUNDARY = frozenset({";", "\n", "{", "}", "(", ",", "&&", "||", "!", "if", "while", "do",
                           "for", "print", "printf", "=", "return"})


def _awk(toks: list[Tok], out: Inline) -> None:
    n = len(toks)
    after = 0  # index after the last command read: one pass over the tokens
    for i, t in enumerate(toks):
        runs = (t.kind == ID and t.text == "system" and i + 1 < n and toks[i + 1].text == "(") or (
            t.kind == OP and t.text in ("|", "|&"))
        if not runs:
            continue
        if i < after:
            out.problems.append("the awk program runs a command inside another command's text; "
                                "what it runs cannot be checked")
            return
        if t.kind == ID:
            args, after = _split_args(toks, i + 1, "awk")
            _awk_text(args[0] if args else [], out, "`system()` in the awk program")
        else:
            if i + 1 < n and toks[i + 1].kind == ID and toks[i + 1].text == "getline":
                k = i - 1
                while k >= after and not (toks[k].text in _AWK_BOUNDARY
                                          and toks[k].kind in (OP, ID)):
                    k -= 1
                after = i + 2
                _awk_text(toks[k + 1:i], out, "a `| getline` command in the awk program")
            else:
                k = i + 1
                depth = 0
                while k < n:
                    x = toks[k]
                    if x.text in ("(", "["):
                        depth += 1
                    elif x.text in (")", "]"):
                        if depth == 0:
                            break
                        depth -= 1
                    elif depth == 0 and x.text in (";", "\n", "}", "||", "&&"):
                        break
                    k += 1
                after = k
                _awk_text(toks[i + 1:k], out, "an output pipe `|` in the awk program")


def _awk_text(arg: list[Tok], out: Inline, where: str) -> None:
    text, dynamic = _text(arg, "awk")
    if text is None:
        out.problems.append(f"{where} runs a command computed at run time; what it runs cannot "
                            "be checked")
        return
    out.shell(text, dynamic, where)

