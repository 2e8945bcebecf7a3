"""Recursive TOML merge that remembers which layer set each leaf."""

from __future__ import annotations

import re

from corral.config.model import Origin
from corral.config.toml_io import TomlFile

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from typing import Any

_BARE = r"^[A-Za-z0-9_-]+$"  # compiled on first use (re caches it)


def deepcopy(value: Any) -> Any:
    """``copy.deepcopy`` for TOML data without importing ``copy`` (and ``weakref``) per command."""
    kind = type(value)
    if kind is dict:
        return {k: deepcopy(v) for k, v in value.items()}
    if kind is list:
        return [deepcopy(v) for v in value]
    if kind in (str, int, float, bool, type(None)):
        return value
    import copy

    return copy.deepcopy(value)


def dotted(path: tuple[str, ...]) -> str:
    """A key path as a TOML dotted key (segments quoted when they need it)."""
    return ".".join(p if re.match(_BARE, p) else '"' + p.replace('"', '\\"') + '"' for p in path)


def split_dotted(key: str) -> tuple[str, ...]:
    """Inverse of :func:`dotted`; raises ValueError on a malformed key."""
    parts: list[str] = []
    i, n = 0, len(key)
    while i < n:
        if key[i] == '"':
            j = i + 1
            buf: list[str] = []
            while j < n and key[j] != '"':
                if key[j] == "\\" and j + 1 < n:
                    buf.append(key[j + 1])
                    j += 2
                    continue
                buf.append(key[j])
                j += 1
            if j >= n:
                raise ValueError(f"unterminated quote in key {key!r}")
            parts.append("".join(buf))
            i = j + 1
        else:
            j = i
            while j < n and key[j] not in '."':
                j += 1
            seg = key[i:j].strip()
            if not seg or not re.match(_BARE, seg):
                raise ValueError(f"invalid key {key!r}")
            parts.append(seg)
            i = j
        if i < n:
            if key[i] != ".":
                raise ValueError(f"invalid key {key!r}")
            i += 1
            if i == n:
                raise ValueError(f"invalid key {key!r}")
    if not parts:
        raise ValueError("empty key")
    return tuple(parts)


def _set_leaf_origins(
    value: Any, path: tuple[str, ...], origins: dict[str, Origin], make: OriginMaker
) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _set_leaf_origins(v, (*path, k), origins, make)
    else:
        origins[dotted(path)] = make(path)


class OriginMaker:
    """Builds the Origin for a key path within one layer."""

    def __init__(self, layer: str, file: TomlFile | None = None, fixed_line: int | None = None):
        self.layer = layer
        self.file = file
        self.fixed_line = fixed_line

    def __call__(self, path: tuple[str, ...]) -> Origin:
        if self.file is None:
            return Origin(self.layer)
        line = self.fixed_line if self.fixed_line is not None else self.file.line_of(path)
        return Origin(self.layer, str(self.file.path), line)


def merge_into(
    base: dict[str, Any],
    origins: dict[str, Origin],
    layer: dict[str, Any],
    make: OriginMaker,
    prefix: tuple[str, ...] = (),
) -> None:
    """Merge ``layer`` over ``base`` in place: tables merge, everything else replaces."""
    for k, v in layer.items():
        path = (*prefix, k)
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge_into(base[k], origins, v, make, path)
            continue
        stale = dotted(path)
        for key in [o for o in origins if o == stale or o.startswith(stale + ".")]:
            del origins[key]
        base[k] = deepcopy(v)
        _set_leaf_origins(v, path, origins, make)


def strip_keys(
    data: dict[str, Any], forbidden: tuple[tuple[str, ...], ...]
) -> list[tuple[str, ...]]:
    """Remove forbidden key paths from ``data`` in place; returns what was removed."""
    removed: list[tuple[str, ...]] = []
    for path in forbidden:
        cur: Any = data
        for part in path[:-1]:
            cur = cur.get(part) if isinstance(cur, dict) else None
        if isinstance(cur, dict) and path[-1] in cur:
            del cur[path[-1]]
            removed.append(path)
    return removed
