"""Find every simple command a shell script will run, with tree-sitter-bash.

The tree is walked with an explicit stack (no recursion), so hostile nesting cannot raise
RecursionError. Anything we cannot resolve statically is reported as a *problem*: the caller
turns problems into at least ``prompt``. Words only seen as data (``echo rm``) are not commands.
"""

from __future__ import annotations

import re
import threading

from corral.record import Record
from corral.rules.argv import Argv
from corral.rules.hidden_env import is_hidden

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:
    from typing import Any

MAX_SCRIPT_BYTES = 128 * 1024
MAX_NODES = 10_000
MAX_NESTING = 200
_SNIP = 240

# One parser and one source buffer per thread: a session's API serves hook calls on concurrent
# threads, and a tree-sitter parser (and the buffer ``_snip`` reads) must not be shared.
_local = threading.local()
_language: Any = None


def _get_parser() -> Any:
    try:
        return _local.parser
    except AttributeError:
        pass
    global _language
    import tree_sitter

    if _language is None:
        import tree_sitter_bash

        _language = tree_sitter.Language(tree_sitter_bash.language())
    _local.parser = parser = tree_sitter.Parser(_language)
    return parser


def _dec(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _snip(node: Any) -> str:
    """A node's source text, cut short: display only, and O(1) even for huge nodes."""
    if node.end_byte - node.start_byte <= _SNIP:
        return _dec(node.text)
    return _dec(_local.source[node.start_byte: node.start_byte + _SNIP]) + "..."


class ScriptCommand(Record):
    """One simple command found in a script; ``stdin_script`` is a heredoc/herestring body."""

    __slots__ = _fields = ("argv", "text", "stdin_script", "writes", "assigns")

    def __init__(self, argv: Argv, text: str, stdin_script: str | None = None,
                 writes: tuple[str, ...] = (), assigns: bool = False) -> None:
        self.argv = argv
        self.text = text
        self.stdin_script = stdin_script
        self.writes = writes
        self.assigns = assigns  # ``VAR=x cmd``: the environment differs from the caller's


class ScriptParse(Record):
    __slots__ = _fields = ("commands", "problems", "writes", "env")

    def __init__(self) -> None:
        self.commands: list[ScriptCommand] = []
        self.problems: list[tuple[str, str]] = []  # (text, reason)
        self.writes: list[tuple[str, str]] = []  # (redirect target, text)
        # assignments to variables that name programs (GIT_SSH_COMMAND=...): (name, value or
        # None when computed at run time, text)
        self.env: list[tuple[str, str | None, str]] = []


_ESC = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
        "e": "\x1b", "E": "\x1b", "\\": "\\", "'": "'", '"': '"', "?": "?"}
_ANSI = re.compile(r"\\(x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{1,4}|U[0-9A-Fa-f]{1,8}|[0-7]{1,3}|c.|.)",
                   re.S)


def _ansi_c(body: str) -> str:
    def rep(m: re.Match[str]) -> str:
        s = m.group(1)
        if s[0] in "xuU":
            try:
                return chr(int(s[1:], 16))
            except (ValueError, OverflowError):
                return ""
        if s[0] in "01234567":
            return chr(int(s, 8) & 0xFF)
        if s[0] == "c" and len(s) == 2:
            return chr(ord(s[1]) & 0x1F)
        return _ESC.get(s, "\\" + s)

    return _ANSI.sub(rep, body)


def _unescape_unquoted(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _unescape_dquoted(text: str) -> str:
    return re.sub(r'\\([$`"\\\n])', lambda m: "" if m.group(1) == "\n" else m.group(1), text)


_BRACE = re.compile(r"\{[^{}]*(,|\.\.)[^{}]*\}")
_GLOB = re.compile(r"[*?\[]")

# word value kinds
STATIC, QUOTED_UNKNOWN, OPEN = 0, 1, 2


def word_value(node: Any) -> tuple[str, int, bool]:
    """(value, kind, has_glob) of an argument node. ``kind`` says whether the value is a known
    literal, one unknown word, or may split into any number of words."""
    t = node.type
    if t == "word":
        raw = _dec(node.text)
        if "\\" not in raw:  # the common case: nothing to unescape
            glob = _GLOB.search(raw) is not None
            if "{" in raw and _BRACE.search(raw):
                return raw, OPEN, glob
            return raw, STATIC, glob
        glob = bool(_GLOB.search(raw.replace("\\*", "").replace("\\?", "").replace("\\[", "")))
        if _BRACE.search(raw):
            return _unescape_unquoted(raw), OPEN, glob
        return _unescape_unquoted(raw), STATIC, glob
    if t == "number":
        return _dec(node.text), STATIC, False
    if t == "raw_string":
        return _dec(node.text)[1:-1], STATIC, False
    if t == "ansi_c_string":
        return _ansi_c(_dec(node.text)[2:-1]), STATIC, False
    if t in ("string", "translated_string"):
        for child in node.named_children:
            if child.type != "string_content":
                return _snip(node), QUOTED_UNKNOWN, False
        # from the source text: tree-sitter leaves some whitespace out of string_content nodes
        raw = _dec(node.text)
        start = 2 if raw.startswith('$"') else 1
        return _unescape_dquoted(raw[start:-1]), STATIC, False
    if t == "concatenation":
        parts = []
        kind = STATIC
        glob = False
        unquoted_text = []
        for child in node.children:
            val, k, g = word_value(child)
            parts.append(val)
            kind = max(kind, k)
            glob = glob or g
            if child.type == "word":
                unquoted_text.append(_dec(child.text))
        if _BRACE.search("".join(unquoted_text)):
            kind = OPEN
        if kind != STATIC:
            return _snip(node), kind, glob
        return "".join(parts), STATIC, glob
    if t in ("simple_expansion", "expansion", "command_substitution", "arithmetic_expansion",
             "brace_expression"):
        return _snip(node), OPEN, False
    # process substitution (a /dev/fd path) and anything unexpected: one unknown word
    return _snip(node), QUOTED_UNKNOWN, False


def _argv_from(nodes: list[Any]) -> tuple[Argv, bool]:
    """Build an Argv from word nodes; the bool says the command name has a glob."""
    tokens: list[str] = []
    unknown: set[int] = set()
    open_from: int | None = None
    name_glob = False
    for i, n in enumerate(nodes):
        val, kind, glob = word_value(n)
        tokens.append(val)
        if i == 0:
            name_glob = glob or _BRACE.search(val) is not None
        if kind == QUOTED_UNKNOWN:
            unknown.add(i)
        elif kind == OPEN:
            unknown.add(i)
            if open_from is None:
                open_from = i
    return Argv(tuple(tokens), frozenset(unknown), open_from), name_glob


def _redirect_script(node: Any) -> str | None:
    """The body of a heredoc or herestring attached to a command, as text to run as a script."""
    if node.type == "heredoc_redirect":
        for child in node.children:
            if child.type == "heredoc_body":
                return _dec(child.text)
        return ""
    if node.type == "herestring_redirect":
        for child in node.named_children:
            val, kind, _ = word_value(child)
            return val if kind == STATIC else None
    return None


_LEAVES = frozenset({"word", "raw_string", "number", "variable_name", "string_content",
                     "ansi_c_string", "file_descriptor", "heredoc_start", "heredoc_end",
                     "test_operator", "special_variable_name", "comment", "regex",
                     "heredoc_content", "extglob_pattern"})
_FAST_TOKEN = re.compile(
    r" +|(&&|\|\||[|;&])|((?:[A-Za-z0-9_./:,+=\-]|'[^'\n]*'|\"[^\"$`\\\n]*\")+)")
_FAST_PLAIN = re.compile(r"[A-Za-z0-9_./:,+=\- |&;]*\Z")
_FAST_PLAIN_TOKENS = re.compile(r"&&|\|\||[|;&]|[^ |;&]+")
_FAST_OPS = frozenset({"&&", "||", "|", ";", "&"})
_FAST_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
# (``export NAME=value`` and kin go to the parser: it reads assignments to variables that name
# programs)
_RESERVED = frozenset({"export", "declare", "typeset", "local", "readonly", "if", "then", "else",
                       "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "function", "select", "time", "coproc", "in", "!", "{",
                       "}", "[[", "]]"})


def fast_split(script: str) -> list[tuple[str, ...]] | None:
    """The commands of a one-line script made only of plain or simply quoted words joined by
    ``&& || | ;``.

    A shortcut for the commonest agent scripts; None means "use the real parser". It accepts
    nothing whose meaning could differ from tree-sitter's reading (no expansions, escapes, globs,
    assignments, reserved words, redirections, comments or background jobs); a property test
    checks it against the parser.
    """
    if "==" in script:
        return None  # tree-sitter reads a bare `==` word as a test operator
    commands: list[tuple[str, ...]] = []
    cur: list[str] = []
    last_op = ""
    if _FAST_PLAIN.match(script):  # no quotes at all: one findall
        for tok in _FAST_PLAIN_TOKENS.findall(script):
            if tok in _FAST_OPS:
                if tok == "&" or not cur:
                    return None
                commands.append(tuple(cur))
                cur = []
                last_op = tok
            elif not cur and ("=" in tok or tok in _RESERVED or tok == "-" or "+:" in tok):
                return None
            else:
                cur.append(tok)
        if cur:
            commands.append(tuple(cur))
        elif last_op and last_op != ";":
            return None
        return commands if commands else None
    pos = 0
    n = len(script)
    while pos < n:
        m = _FAST_TOKEN.match(script, pos)
        if m is None:
            return None
        pos = m.end()
        op, word = m.group(1), m.group(2)
        if op is not None:
            if op == "&" or not cur:
                return None
            commands.append(tuple(cur))
            cur = []
            last_op = op
        elif word is not None:
            if not cur and ("=" in word or word in _RESERVED or "'" in word or '"' in word
                            or word == "-" or "+:" in word):
                return None  # quoted command names: tree-sitter's reading differs, let it decide
            value = _FAST_QUOTED.sub(lambda q: q.group(0)[1:-1], word) if (
                "'" in word or '"' in word) else word
            cur.append(value)
    if cur:
        commands.append(tuple(cur))
    elif last_op and last_op != ";":
        return None
    return commands if commands else None


# Words that prefix a whole pipeline or compound command in bash/zsh but that tree-sitter-bash
# reads as an ordinary command name: `time { rm x; }` would hide `rm`. Blanking them (same byte
# length, so positions hold) leaves what actually runs.
_PREFIXES = frozenset({b"time", b"coproc", b"!", b"noglob", b"nocorrect"})
_PREFIX_WORDS = re.compile(rb"time|coproc|!|noglob|nocorrect")
_COMPOUND_STARTS = frozenset({b"{", b"(", b"((", b"if", b"while", b"until", b"for", b"case",
                              b"select", b"[[", b"function", b"!", b"time", b"coproc"})


def _blank_prefixes(root: Any, data: bytes) -> bytes | None:
    spans: list[tuple[int, int]] = []
    stack = [root]
    seen = 0
    while stack and seen < MAX_NODES:
        node = stack.pop()
        seen += 1
        if node.type == "negated_command" and node.child_count > 1:
            inner = node.children[1]
            inner_name = inner.child_by_field_name("name") if inner.type == "command" else None
            if inner_name is not None and inner_name.text in _COMPOUND_STARTS:
                bang = node.children[0]  # `! { ...; }` misread as a command named `{`
                spans.append((bang.start_byte, bang.end_byte))
                continue
        if node.type == "command":
            name = node.child_by_field_name("name")
            if name is not None and name.text in _PREFIXES:
                args = [c for i, c in enumerate(node.children)
                        if node.field_name_for_child(i) == "argument"]
                start = name.start_byte
                end = name.end_byte
                # `time -p`, `coproc NAME {`: the options/name go too
                k = 0
                while k < len(args) and ((args[k].text.startswith(b"-") and name.text == b"time")
                                         or (name.text == b"coproc" and k == 0 and len(args) > 1
                                             and args[1].text in (b"{", b"("))):
                    end = args[k].end_byte
                    k += 1
                if k < len(args) and args[k].text in _COMPOUND_STARTS:
                    spans.append((start, end))
                    continue
        stack.extend(node.named_children)
    if not spans:
        return None
    buf = bytearray(data)
    for start, end in spans:
        buf[start:end] = b" " * (end - start)
    return bytes(buf)


def parse_script(script: str) -> ScriptParse:
    """Every simple command in ``script``; problems for anything not parsed completely."""
    out = ScriptParse()
    fast = fast_split(script)
    if fast is not None:
        out.commands = [ScriptCommand(Argv(c), " ".join(c)) for c in fast]
        return out
    data = script.encode("utf-8", "surrogateescape")
    short = script if len(script) <= 80 else script[:77] + "..."
    if len(data) > MAX_SCRIPT_BYTES:
        out.problems.append((short, f"script is larger than {MAX_SCRIPT_BYTES // 1024} KiB; "
                                    "not analysed"))
        return out
    if b"\0" in data:
        out.problems.append((short, "script contains a NUL byte"))
    tree = _get_parser().parse(data)
    if _PREFIX_WORDS.search(data):
        for _ in range(8):  # each pass blanks the outermost prefixes; nesting needs more passes
            blanked = _blank_prefixes(tree.root_node, data)
            if blanked is None:
                break
            data = blanked
            tree = _get_parser().parse(data)
    _local.source = data
    root = tree.root_node
    if root.has_error:
        out.problems.append((short, "script does not parse completely (syntax error, "
                                    "unterminated quote or heredoc)"))
    stdin_for: dict[int, str | None] = {}
    extra_for: dict[int, tuple[str, ...]] = {}
    writes_for: dict[int, list[str]] = {}
    stack = [(root, 0)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            out.problems.append((short, f"script has more than {MAX_NODES} syntax nodes; "
                                        "not fully analysed"))
            break
        if depth > MAX_NESTING:
            out.problems.append((short, f"script nests deeper than {MAX_NESTING} levels; "
                                        "not fully analysed"))
            break
        t = node.type
        if t == "redirected_statement":
            body = node.child_by_field_name("body")
            if body is not None and body.type == "command":
                prev_end = body.end_byte
                for child in node.children:
                    if child.type in ("heredoc_redirect", "herestring_redirect"):
                        stdin_for[body.id] = _redirect_script(child)
                        gap = _local.source[prev_end:child.start_byte].split()
                        if gap:  # tree-sitter drops a `-` word just before `<<` (no error)
                            extra_for[body.id] = tuple(_dec(w) for w in gap)
                    elif child.type == "file_redirect":
                        writes_for.setdefault(body.id, []).extend(_write_target(child))
                    prev_end = max(prev_end, child.end_byte)
        elif t == "command":
            _command(node, out, stdin_for, writes_for, extra_for.get(node.id, ()))
        elif t == "file_redirect":
            out.writes.extend((w, _snip(node)) for w in _write_target(node))
        elif t == "variable_assignment":
            _assignment(node, out)
        elif t == "declaration_command" or t == "unset_command":
            words = [c for c in node.children if c.type in (
                "word", "string", "raw_string", "concatenation", "variable_name",
                "variable_assignment")]
            kw = node.children[0] if node.children else None
            tokens = [_dec(kw.text)] if kw is not None else []
            tokens += [_snip(w) for w in words]
            out.commands.append(ScriptCommand(Argv.of(tokens), _snip(node), assigns=True))
        if node.named_child_count:
            # anonymous tokens (operators, quotes) and plain words hold no commands
            stack.extend((c, depth + 1) for c in reversed(node.named_children)
                         if c.type not in _LEAVES)
    return out


def _command(node: Any, out: ScriptParse, stdin_for: dict[int, str | None],
             writes_for: dict[int, list[str]], extra: tuple[str, ...] = ()) -> None:
    name = node.child_by_field_name("name")
    text = _snip(node)
    if name is None:
        return  # only assignments / redirections: nothing runs (substitutions are walked)
    words = [name.named_children[0] if name.named_child_count else name]
    stdin: str | None = stdin_for.get(node.id)
    writes: list[str] = list(writes_for.get(node.id, ()))
    assigns = False
    for i, child in enumerate(node.children):
        field_name = node.field_name_for_child(i)
        if child.type == "variable_assignment":
            assigns = True
        elif field_name == "argument":
            words.append(child)
        elif field_name == "redirect" and child.type == "herestring_redirect":
            stdin = _redirect_script(child)
        elif field_name == "redirect" and child.type == "file_redirect":
            writes += _write_target(child)
    argv, name_glob = _argv_from(words)
    if extra:
        if all(w == "-" for w in extra):
            argv = Argv(argv.tokens + extra, argv.unknown, argv.open_from)
        else:
            out.problems.append((text, f"words the parser skipped: `{' '.join(extra)[:80]}`"))
    if argv.known(0) and not argv.tokens[0]:
        out.problems.append((text, "empty command name"))
    if not argv.known(0):
        out.problems.append((text, f"command name `{argv.tokens[0]}` is computed at run time"))
    elif name_glob:
        out.problems.append((text, f"command name `{argv.tokens[0]}` is a glob or brace pattern"))
    out.commands.append(ScriptCommand(argv, text, stdin, tuple(writes), assigns))


def _assignment(node: Any, out: ScriptParse) -> None:
    """``NAME=value`` (as a command prefix, after ``export``/``declare``, or alone: an exported
    variable keeps its new value for the children) for a variable that names a program."""
    name = node.child_by_field_name("name")
    if name is None or not is_hidden(_dec(name.text)):
        return
    value = node.child_by_field_name("value")
    text: str | None
    if value is None:
        text = ""
    else:
        val, kind, _ = word_value(value)
        text = val if kind == STATIC else None
    out.env.append((_dec(name.text), text, _snip(node)))


def _write_target(node: Any) -> list[str]:
    """The destination of an output redirection (``>``, ``>>``, ``>|``, ``&>``), if any."""
    ops = [c.type for c in node.children if not c.is_named]
    if not any(op in (">", ">>", ">|", "&>", "&>>", "<>") for op in ops):
        return []
    dest = node.child_by_field_name("destination")
    if dest is None:
        return []
    return [word_value(dest)[0]]
