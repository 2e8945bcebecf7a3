"""After-the-fact audit of protected names *below* the top of a writable root.

The sandbox keeps protected names (``.codex``, ``.claude``, ``.envrc``, ``.vscode``...) read-only
directly under each writable root, but cannot mount over every depth: a command may still create
``sub/.codex/config.toml`` or ``sub/.envrc``, which an agent or direnv reads later when started
in ``sub/``. This module cannot prevent that; it makes it visible. ``snapshot`` records what such
paths look like before a run, ``changes`` lists what was created, changed or removed after it,
so the caller can report each one (one line, and a journal event).

Bounded: at most ``max_entries`` directory entries are visited, and trees that are never
configuration (``.git`` internals, dependency and build directories) are skipped.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from corral.sandbox.protected import ALL_NAMES, PROTECTED_NAMES

_SKIP_DIRS = frozenset({
    ".git", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache",
    ".ruff_cache", ".pytest_cache", "target", "dist", "build", ".cache",
})
MAX_ENTRIES = 200_000

Fingerprint = tuple[int, int, int, int]  # inode, size, mtime_ns, mode


@dataclass(frozen=True)
class Snapshot:
    root: Path
    entries: dict[str, Fingerprint]  # path relative to root -> fingerprint
    complete: bool  # False when the walk stopped at max_entries


@dataclass(frozen=True)
class Change:
    path: str  # relative to the root
    kind: str  # created | changed | removed

    def line(self) -> str:
        return (f"corral: sandbox: the run {self.kind} {self.path}: agent or tool configuration "
                "below the workspace top is not locked; review it before starting anything there")


def _fingerprint(st: os.stat_result) -> Fingerprint:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)


def snapshot(root: Path, max_entries: int = MAX_ENTRIES) -> Snapshot:
    """Protected-name paths (and everything inside protected directories) below ``root``,
    excluding the top level, which the sandbox locks itself."""
    out: dict[str, Fingerprint] = {}
    seen = 0
    stack: list[tuple[str, bool]] = [("", False)]  # (relative dir, inside a protected dir)
    while stack:
        rel, inside = stack.pop()
        try:
            it = os.scandir(root / rel if rel else root)
        except OSError:
            continue
        with it:
            for e in it:
                seen += 1
                if seen > max_entries:
                    return Snapshot(root, out, False)
                path = f"{rel}/{e.name}" if rel else e.name
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                nested = bool(rel)  # below the top level
                hit = inside or (nested and e.name in ALL_NAMES)
                if hit:
                    out[path] = _fingerprint(st)
                if is_dir and (inside or e.name not in _SKIP_DIRS):
                    stack.append((path, hit and (inside or e.name in PROTECTED_NAMES)))
    return Snapshot(root, out, True)


def changes(before: Snapshot, after: Snapshot) -> list[Change]:
    """What differs between two snapshots of the same root, sorted by path. A directory whose
    only change is its timestamp (because something inside changed) is not repeated."""
    out: list[Change] = []
    for path, fp in after.entries.items():
        old = before.entries.get(path)
        if old is None:
            out.append(Change(path, "created"))
        elif old != fp and not (stat.S_ISDIR(fp[3]) and old[:2] == fp[:2]):
            out.append(Change(path, "changed"))
    out += [Change(p, "removed") for p in before.entries if p not in after.entries]
    # A new directory is named by what was put in it (sub/.codex/config.toml, not sub/.codex).
    parents = {c.path.rsplit("/", 1)[0] for c in out if "/" in c.path}
    out = [c for c in out if not (c.kind != "changed" and c.path in parents)]
    return sorted(out, key=lambda c: c.path)
