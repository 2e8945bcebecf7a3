"""Reading TOML files safely, with positions for every key.

Every failure becomes one ``ConfigError`` line that names the file and, when known, the line and
column: malformed TOML, non-UTF-8 bytes, unreadable files, symlink loops, oversize files.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from corral.errors import ConfigError
from corral.record import Record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from typing import Any

MAX_CONFIG_BYTES = 1024 * 1024

Position = tuple[int, int]  # 1-based line, 1-based column


class TomlFile(Record):
    """A parsed TOML file: its data and the position of each key path it defines."""

    _fields = ("path", "data", "positions", "stat")

    def __init__(self, path: Path, data: dict[str, Any],
                 positions: dict[tuple[str, ...], Position] | None = None,
                 stat: os.stat_result | None = None) -> None:
        self.path = path
        self.data = data
        self.positions: dict[tuple[str, ...], Position] = {} if positions is None else positions
        self.stat = stat

    def where(self, key: tuple[str, ...]) -> str:
        """``file:line:col`` for a key, falling back to its nearest defined parent."""
        probe = key
        while probe:
            if probe in self.positions:
                line, col = self.positions[probe]
                return f"{self.path}:{line}:{col}"
            probe = probe[:-1]
        return str(self.path)

    def line_of(self, key: tuple[str, ...]) -> int | None:
        probe = key
        while probe:
            if probe in self.positions:
                return self.positions[probe][0]
            probe = probe[:-1]
        return None


def read_toml_file(path: Path) -> TomlFile:
    """Read and parse one TOML file, refusing anything that is not a sane regular file."""
    try:
        st = os.stat(path)  # follows symlinks; ELOOP on a loop
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{path}: symlink loop") from None
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: not a regular file")
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: file is {st.st_size} bytes; config files are limited to 1 MiB")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: file grew past 1 MiB while reading")
    parsed = parse_toml_text(raw, str(path))
    parsed.path = path
    parsed.stat = st
    return parsed


# Patterns are compiled on first use (re caches them): import cost is paid by every command.
_TOMLLIB_POS = r"^(?P<msg>.*?) \(at line (?P<line>\d+), column (?P<col>\d+)\)$"


def parse_toml_text(raw: bytes | str, name: str) -> TomlFile:
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
            raise ConfigError(f"{name}:{line}:{col}: invalid UTF-8") from None
    else:
        text = raw
    import tomllib  # ~6 ms of imports, only when a TOML file exists

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.match(_TOMLLIB_POS, str(exc))
        if m:
            raise ConfigError(
                f"{name}:{m['line']}:{m['col']}: malformed TOML: {m['msg']}"
            ) from None
        raise ConfigError(f"{name}: malformed TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{name}: malformed TOML: nesting too deep") from None
    return TomlFile(path=Path(name), data=data, positions=key_positions(text))


# --- key positions -----------------------------------------------------------------------------
# tomllib gives no positions, so we scan the (already valid) text for table headers and
# `key = value` lines. Keys inside inline tables and arrays take their parent's position.

_BARE = r"[A-Za-z0-9_-]+"
_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _parse_key(s: str, i: int) -> tuple[tuple[str, ...], int] | None:
    """Parse a dotted TOML key starting at ``s[i]``; returns (parts, index after key)."""
    parts: list[str] = []
    n = len(s)
    while True:
        while i < n and s[i] in " \t":
            i += 1
        if i >= n:
            return None
        if s[i] == '"':
            j = i + 1
            buf = []
            while j < n and s[j] != '"':
                if s[j] == "\\" and j + 1 < n:
                    esc = s[j + 1]
                    width = {"u": 4, "U": 8}.get(esc)
                    if width:
                        try:
                            buf.append(chr(int(s[j + 2 : j + 2 + width], 16)))
                        except ValueError:
                            return None
                        j += 2 + width
                        continue
                    buf.append(_ESCAPES.get(esc, esc))
                    j += 2
                    continue
                buf.append(s[j])
                j += 1
            if j >= n:
                return None
            parts.append("".join(buf))
            i = j + 1
        elif s[i] == "'":
            j = s.find("'", i + 1)
            if j < 0:
                return None
            parts.append(s[i + 1 : j])
            i = j + 1
        else:
            m = re.compile(_BARE).match(s, i)
            if not m:
                return None
            parts.append(m.group(0))
            i = m.end()
        while i < n and s[i] in " \t":
            i += 1
        if i < n and s[i] == ".":
            i += 1
            continue
        return tuple(parts), i


def key_positions(text: str) -> dict[tuple[str, ...], Position]:
    positions: dict[tuple[str, ...], Position] = {}
    table: tuple[str, ...] = ()
    array_counts: dict[tuple[str, ...], int] = {}
    depth = 0  # bracket/brace nesting of a multi-line value
    in_multiline: str | None = None
    for lineno, line in enumerate(text.split("\n"), start=1):  # not splitlines: TOML lines end at \n only
        if in_multiline:
            if in_multiline in line:
                in_multiline = None
            continue
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if depth == 0 and stripped.startswith("["):
            is_array = stripped.startswith("[[")
            parsed = _parse_key(stripped, 2 if is_array else 1)
            if parsed:
                table = parsed[0]
                if is_array:
                    idx = array_counts.get(table, 0)
                    array_counts[table] = idx + 1
                    positions.setdefault(table, (lineno, indent + 1))
                    table = (*table, str(idx))
                positions.setdefault(table, (lineno, indent + 1))
            continue
        if depth == 0 and stripped and not stripped.startswith("#"):
            parsed = _parse_key(stripped, 0)
            if parsed and parsed[1] < len(stripped) and stripped[parsed[1]] == "=":
                full = table + parsed[0]
                for k in range(len(table) + 1, len(full) + 1):
                    positions.setdefault(full[:k], (lineno, indent + 1))
                value = stripped[parsed[1] + 1 :]
                for quote in ('"""', "'''"):
                    if value.count(quote) == 1:
                        in_multiline = quote
                depth += _bracket_delta(value)
                continue
        if depth > 0:
            depth = max(0, depth + _bracket_delta(stripped))
    return positions


def _bracket_delta(value: str) -> int:
    """Net open brackets in a value, ignoring those inside strings and comments."""
    delta = 0
    quote: str | None = None
    i = 0
    while i < len(value):
        c = value[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c == "#":
            break
        elif c in "[{":
            delta += 1
        elif c in "]}":
            delta -= 1
        i += 1
    return delta
