"""Persistent grants as lines in the user's ``default.rules``, like Codex's amendments.

One line per grant: ``prefix_rule(pattern=[...], decision="allow")  # corral grant <id> by
<who> at <time>`` (tokens JSON-quoted, which Starlark reads back unchanged). Writes hold an
advisory ``fcntl`` lock on the file, so two supervisors never interleave or lose lines, and the
file is replaced atomically so a reader never sees half a line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from corral.approvals.model import refuse


def prefix_rule_text(pattern: tuple[str, ...]) -> str:
    return f"prefix_rule(pattern={_tokens(pattern)}, decision=\"allow\")"


def network_rule_text(host: str, protocol: str) -> str:
    return (f"network_rule(host={json.dumps(host)}, protocol={json.dumps(protocol)}, "
            "decision=\"allow\")")


def _tokens(pattern: tuple[str, ...]) -> str:
    for tok in pattern:
        if any(ord(c) < 0x20 or c == "\x7f" for c in tok):
            raise refuse("a persistent grant cannot hold control characters (newline, tab...) "
                         "in its pattern", "grant it for the session or project instead")
    return "[" + ", ".join(json.dumps(t, ensure_ascii=False) for t in pattern) + "]"


def _rule_part(line: str) -> str:
    """The rule itself, without the trailing ``# corral grant ...`` comment."""
    idx = line.find("  # corral grant ")
    return (line[:idx] if idx >= 0 else line).strip()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    # Only "\n" ends a line: str.splitlines() would also split on U+2028, U+0085... which a
    # JSON-quoted token may hold, and rewriting would then corrupt that rule.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _write(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def append_rule(path: Path, rule: str, comment: str) -> bool:
    """Append ``rule  # comment`` unless the same rule is already there. True if written."""
    with _locked(path):
        lines = _read(path)
        if any(_rule_part(line) == rule for line in lines):
            return False
        lines.append(f"{rule}  # {comment}")
        _write(path, lines)
        return True


def remove_rule(path: Path, rule: str) -> int:
    """Remove every line holding exactly ``rule``. Returns how many were removed."""
    with _locked(path):
        lines = _read(path)
        kept = [line for line in lines if _rule_part(line) != rule]
        if len(kept) != len(lines):
            _write(path, kept)
        return len(lines) - len(kept)
