"""Text from agents, made safe to show a person on a terminal.

A queued command, a reason, a path or a pattern can come from the agent. Written raw, a
carriage return, backspaces, an ESC or C1 sequence, a bidi override or a zero-width character can
redraw or hide what the person approving it reads. :func:`shown` writes every such character as
a visible escape, and is injective: two different strings are never shown the same
(:func:`unshown` reads the original back).

Escapes: ``\\n \\r \\t``, else ``\\xNN`` / ``\\uNNNN`` / ``\\UNNNNNNNN``. A backslash stays a
single backslash unless the next character could make it read as an escape; then it is doubled.
Shell quoting (``grep 'a\\.b'``) therefore reads as typed.
"""

from __future__ import annotations

# Printable to Python but drawn as nothing or as a blank: Hangul fillers, the braille blank.
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# A backslash before one of these (or before an escaped character) is doubled.
_AFTER_BACKSLASH = frozenset("\\xuUnrt")


def _unsafe(ch: str) -> bool:
    """Control (C0, DEL, C1), format (bidi, zero-width), separators other than the space,
    surrogates, private and unassigned code points: ``str.isprintable`` is false for exactly
    these categories."""
    return not ch.isprintable() or ch in _INVISIBLE


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    cp = ord(ch)
    if cp <= 0xFF:
        return f"\\x{cp:02x}"
    if cp <= 0xFFFF:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def shown(text: str) -> str:
    """``text`` with every character a terminal would act on, or draw invisibly, escaped."""
    if text.isprintable() and "\\" not in text and not _INVISIBLE.intersection(text):
        return text  # the common case: nothing to do
    out: list[str] = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        if ch == "\\":
            nxt = text[i + 1] if i < last else ""
            out.append("\\\\" if nxt and (nxt in _AFTER_BACKSLASH or _unsafe(nxt)) else "\\")
        elif _unsafe(ch):
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def unshown(text: str) -> str:
    """The inverse of :func:`shown` (for tests and tools reading displayed text back)."""
    out: list[str] = []
    i, n = 0, len(text)
    widths = {"x": 2, "u": 4, "U": 8}
    while i < n:
        ch = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if ch != "\\" or not nxt:
            out.append(ch)
            i += 1
        elif nxt == "\\":
            out.append("\\")
            i += 2
        elif nxt in "nrt":
            out.append({"n": "\n", "r": "\r", "t": "\t"}[nxt])
            i += 2
        elif nxt in widths:
            w = widths[nxt]
            out.append(chr(int(text[i + 2:i + 2 + w], 16)))
            i += 2 + w
        else:
            out.append("\\")
            i += 1
    return "".join(out)
