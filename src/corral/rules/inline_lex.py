"""A small lexer for inline Perl, Ruby, JavaScript and awk code: string literals, command
literals (backticks, ``qx``, ``%x``), identifiers and punctuation, with source offsets.

It only has to find the literal arguments of the calls that run commands. It does not have to
be right about everything else: the scanners (``inline_scan``) look for the words that run
commands in the *raw* text as well, and any such word the lexer did not account for makes the
command ``prompt``. So a lexer mistake can only make corral ask more, never less.
"""

from __future__ import annotations

import re

STR, CMD, WORDS, ID, VAR, OP, NUM = "str", "cmd", "words", "id", "var", "op", "num"
_PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}
_ID_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_ID_CHARS = _ID_START | frozenset("0123456789")
MAX_TOKENS = 50_000
_SPACES = re.compile(r"[ \t\r]+")
_NUMBER = re.compile(r"[0-9][0-9A-Za-z._]*")
_IDENT = {"perl": re.compile(r"[0-9A-Za-z_:]*"), "js": re.compile(r"[0-9A-Za-z_$]*"),
          "awk": re.compile(r"[0-9A-Za-z_]*")}
_OPS2 = frozenset({"->", "=>", "||", "&&", "|&", "::", "<<"})


class Tok:
    __slots__ = ("interp", "kind", "start", "text")

    def __init__(self, kind: str, text: str, start: int, interp: bool = False) -> None:
        self.kind = kind
        self.text = text  # a literal's value (escapes resolved where simple), else source text
        self.start = start
        self.interp = interp  # a string whose value is only known at run time

    def __repr__(self) -> str:
        return f"Tok({self.kind}, {self.text!r}, {self.start}{', interp' if self.interp else ''})"


class LexError(Exception):
    """The code ends inside a literal, or is too big to lex."""


def _delimited(code: str, i: int, open_: str) -> tuple[str, int]:
    """Text between ``open_`` at ``i`` and its closing delimiter (paired ones nest)."""
    close = _PAIRS.get(open_, open_)
    depth = 1
    j = i + 1
    n = len(code)
    out = []
    while j < n:
        c = code[j]
        if c == "\\" and j + 1 < n:
            nxt = code[j + 1]
            out.append(nxt if nxt in (open_, close, "\\") else c + nxt)
            j += 2
            continue
        if c == close and close != open_:
            depth -= 1
            if depth == 0:
                return "".join(out), j + 1
        elif c == open_ and close != open_:
            depth += 1
        elif c == close:
            return "".join(out), j + 1
        out.append(c)
        j += 1
    raise LexError("unterminated literal")


def _interpolates(text: str, lang: str) -> bool:
    if lang == "ruby":
        return "#{" in text or "#$" in text or "#@" in text
    if lang == "js":
        return "${" in text
    if lang == "perl":
        for k, c in enumerate(text[:-1]):
            if c in "$@" and (text[k + 1] in _ID_CHARS or text[k + 1] in "{:$"):
                return True
    return False


def lex(code: str, lang: str) -> list[Tok]:
    """Tokens of ``code`` in ``lang`` ("perl", "ruby", "js", "awk"); LexError if it cannot."""
    toks: list[Tok] = []
    i = 0
    n = len(code)
    hash_comments = lang in ("perl", "ruby", "awk")
    ident = _IDENT.get(lang, _IDENT["awk"])
    while i < n:
        if len(toks) > MAX_TOKENS:
            raise LexError("too many tokens")
        c = code[i]
        if c in " \t\r":
            i = _SPACES.match(code, i).end()  # type: ignore[union-attr]  # matches at least c
            continue
        if c == "\n":
            toks.append(Tok(OP, "\n", i))
            i += 1
            continue
        if c == "#" and hash_comments and not (lang == "perl" and toks and toks[-1].text == "$"):
            j = code.find("\n", i)
            i = n if j < 0 else j
            continue
        if lang == "js" and code.startswith("//", i):
            j = code.find("\n", i)
            i = n if j < 0 else j
            continue
        if lang == "js" and code.startswith("/*", i):
            j = code.find("*/", i + 2)
            if j < 0:
                raise LexError("unterminated comment")
            i = j + 2
            continue
        if c == "'" and lang != "awk":
            body, i2 = _delimited(code, i, "'")
            toks.append(Tok(STR, body, i))
            i = i2
            continue
        if c == '"':
            body, i2 = _delimited(code, i, '"')
            toks.append(Tok(STR, _unescape(body), i, _interpolates(body, lang)))
            i = i2
            continue
        if c == "`" and lang != "awk":
            body, i2 = _delimited(code, i, "`")
            kind = STR if lang == "js" else CMD
            toks.append(Tok(kind, body, i, _interpolates(body, "perl" if lang == "perl" else
                                                         "ruby" if lang == "ruby" else "js")))
            i = i2
            continue
        if c == "/" and lang == "awk" and _regex_allowed(toks):
            start = i
            _, i = _delimited(code, i, "/")
            toks.append(Tok("re", "", start))  # a regex: a value, not a command
            continue
        if c == "%" and lang == "ruby" and i + 1 < n:
            lit = _ruby_percent(code, i, toks)
            if lit is not None:
                tok, i = lit
                toks.append(tok)
                continue
        if c in "$@%" and lang == "perl" and i + 1 < n and (code[i + 1] in _ID_START
                                                           or code[i + 1] == ":"):
            j = i + 1
            while j < n and (code[j] in _ID_CHARS or code[j] == ":"):
                j += 1
            toks.append(Tok(VAR, code[i:j], i))
            i = j
            continue
        if c in _ID_START or (c == "$" and lang in ("js", "awk", "ruby")):
            j = ident.match(code, i + 1).end()  # type: ignore[union-attr]  # may be empty
            word = code[i:j]
            if lang == "perl":
                lit = _perl_quote(code, word, i, j)
                if lit is not None:
                    tok, i = lit
                    toks.append(tok)
                    continue
            toks.append(Tok(VAR if c == "$" else ID, word, i))
            i = j
            continue
        if "0" <= c <= "9":  # (not str.isdigit: "¹" is a digit to it, and no number here)
            j = _NUMBER.match(code, i).end()  # type: ignore[union-attr]  # matches at least c
            toks.append(Tok(NUM, code[i:j], i))
            i = j
            continue
        pair = code[i:i + 2]
        if pair in _OPS2:
            toks.append(Tok(OP, pair, i))
            i += 2
        else:
            toks.append(Tok(OP, c, i))
            i += 1
    return toks


def _unescape(body: str) -> str:
    if "\\" not in body:
        return body
    out = []
    k = 0
    simple = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "$": "$", "@": "@", "`": "`"}
    while k < len(body):
        ch = body[k]
        if ch == "\\" and k + 1 < len(body):
            out.append(simple.get(body[k + 1], "\\" + body[k + 1]))
            k += 2
            continue
        out.append(ch)
        k += 1
    return "".join(out)


def _regex_allowed(toks: list[Tok]) -> bool:
    """In awk, ``/`` starts a regex unless it follows an operand (then it divides)."""
    if not toks:
        return True
    last = toks[-1]
    if last.kind in (STR, NUM, VAR) or (last.kind == ID and last.text not in (
            "print", "printf", "return", "in", "getline")):
        return False
    return last.text not in (")", "]")


_PERL_Q = {"q": STR, "qq": STR, "qw": WORDS, "qx": CMD, "m": "re", "qr": "re", "s": "re2",
           "tr": "re2", "y": "re2"}


def _perl_quote(code: str, word: str, start: int, j: int) -> tuple[Tok, int] | None:
    kind = _PERL_Q.get(word)
    if kind is None:
        return None
    k = j
    n = len(code)
    while k < n and code[k] in " \t":
        k += 1
    if k >= n or code[k] in _ID_CHARS or code[k] in " \t\n,;)=" or (
            code[k] == "=" and code.startswith("=>", k)):
        return None  # a plain word (``s => 1``, a sub called ``y``)
    delim = code[k]
    body, end = _delimited(code, k, delim)
    interp = word in ("qq", "qx") and delim != "'" and _interpolates(body, "perl")
    if kind == "re2":
        if delim in _PAIRS:
            while end < n and code[end] in " \t\n":
                end += 1
            if end >= n:
                raise LexError("unterminated substitution")
            _, end = _delimited(code, end, code[end])
        else:
            _, end = _delimited(code, end - 1, delim)
    mods_end = end
    while mods_end < n and code[mods_end].isalpha():
        mods_end += 1
    mods = code[end:mods_end]
    if kind in ("re", "re2"):
        # ``s/../../e`` evaluates the replacement as code
        tok = Tok("eval" if (kind == "re2" and word == "s" and "e" in mods) else STR, body,
                  start, True)
        return tok, mods_end
    if kind == WORDS:
        return Tok(WORDS, body, start), end
    if word == "q":
        return Tok(STR, body, start), end
    return Tok(kind, body, start, interp), end


def _ruby_percent(code: str, i: int, toks: list[Tok]) -> tuple[Tok, int] | None:
    spaced = i > 0 and code[i - 1] in " \t" and i + 1 < len(code) and code[i + 1] not in " \t="
    if toks and (toks[-1].kind in (STR, NUM, VAR) or toks[-1].text in (")", "]")
                 or (toks[-1].kind == ID and not spaced)):
        return None  # modulo (``puts %x(ls)`` is a literal: a space before, none after)
    n = len(code)
    k = i + 1
    kind_ch = ""
    if code[k] in "qQwWiIxrs":
        kind_ch = code[k]
        k += 1
    if k >= n or code[k].isalnum() or code[k] in " \t\n=":
        return None
    body, end = _delimited(code, k, code[k])
    if kind_ch == "x":
        return Tok(CMD, body, i, _interpolates(body, "ruby")), end
    if kind_ch in ("w", "W", "i", "I"):
        return Tok(WORDS, body, i, kind_ch == "W" and _interpolates(body, "ruby")), end
    if kind_ch == "r":
        while end < n and code[end].isalpha():
            end += 1
        return Tok(STR, body, i, True), end
    return Tok(STR, body, i, kind_ch != "q" and _interpolates(body, "ruby")), end
