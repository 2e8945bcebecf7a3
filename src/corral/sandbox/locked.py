"""Locked paths: files and directories a sandboxed command may not create, change, rename or
delete, whether or not they exist yet (e.g. an agent's ``hooks.json`` or ``settings.json`` inside
its otherwise writable config directory).

A missing one would be creatable, and a file the agent writes there grants it permissions in its
next run. bwrap can only mount onto something that exists, so the launcher creates a placeholder
on the host and mounts it read-only: a *file* whose content means "nothing configured" in its
format (``{}`` for JSON, empty for TOML) so the agent's reader still works, or an empty
directory. The plan carries only ``Locked`` values; ``hold``/``release`` are the side effects.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from corral.errors import CorralError
from corral.record import Frozen, Record
from corral.sandbox.protected import PLACEHOLDER_MODE as DIR_MODE
from corral.sandbox.protected import is_placeholder, remove_placeholder

# Read-only for everyone plus the sticky bit, which Linux ignores on files: nobody makes such a
# file by hand, so it marks a placeholder left by a killed run for the next run to remove.
FILE_MODE = 0o1444


class Locked(Frozen):
    """A path kept read-only. ``content`` is what a placeholder *file* holds when the path is
    missing; None means the placeholder is an empty directory."""

    _fields = ("path", "content")
    path: Path
    content: bytes | None

    def __init__(self, path: Path, content: bytes | None) -> None:
        self._set(path=path, content=content)

    @classmethod
    def infer(cls, path: Path) -> Locked:
        """By name: ``*.json`` -> ``{}``; another suffix (``.toml``...) -> empty file; no
        suffix -> directory (e.g. Codex's ``rules/``)."""
        if path.suffix == ".json":
            return cls(path, b"{}")
        return cls(path, b"" if path.suffix else None)


class Held(Record):
    """A placeholder this spawn mounts: made by it (``ino``/``mtime_ns`` of what it made) or
    found from an earlier or concurrent run (``ino`` None)."""

    _fields = ("locked", "ino", "mtime_ns")

    def __init__(self, locked: Locked, ino: int | None = None, mtime_ns: int = 0) -> None:
        self.locked = locked
        self.ino = ino
        self.mtime_ns = mtime_ns


def is_file_placeholder(path: Path, content: bytes, st: os.stat_result | None = None) -> bool:
    """A regular file with FILE_MODE holding exactly ``content``."""
    try:
        st = st or os.lstat(path)
        if not (stat.S_ISREG(st.st_mode) and (st.st_mode & 0o7777) == FILE_MODE
                and st.st_size == len(content)):
            return False
        return not content or path.read_bytes() == content
    except OSError:
        return False


def _refuse(path: Path, why: str) -> CorralError:
    return CorralError(
        "sandbox", f"cannot lock {path}: a read-only placeholder could not be created ({why}); "
        "refusing to start with it creatable from inside",
        f"check that {path.parent} is a directory you can write, or create {path.name} yourself",
    )


def _make(lk: Locked) -> Held | None:
    """Create the placeholder; None if something appeared there meanwhile."""
    try:
        if lk.content is None:
            os.mkdir(lk.path, DIR_MODE)
            os.chmod(lk.path, DIR_MODE)  # an unusual umask took bits away
            st = os.lstat(lk.path)
        else:
            fd = os.open(lk.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o444)
            try:
                if os.write(fd, lk.content) != len(lk.content):
                    raise OSError(0, "short write")
                os.fchmod(fd, FILE_MODE)
                st = os.fstat(fd)
            except OSError:
                os.unlink(lk.path)  # half made (ENOSPC...): not left behind
                raise
            finally:
                os.close(fd)
    except FileExistsError:
        return None
    except OSError as exc:
        raise _refuse(lk.path, exc.strerror or str(exc)) from None
    return Held(lk, st.st_ino, st.st_mtime_ns)


def hold(locked: tuple[Locked, ...], writable: list[Path], held: list[Held]) -> None:
    """Per spawn: a placeholder for every missing locked path under a ``writable`` directory
    (elsewhere nothing inside can create it); also earlier runs' placeholders, to remove later.
    All go into ``held``. Raises CorralError when a placeholder cannot be made (``held`` then
    has those made so far, for the caller to release)."""
    for lk in locked:
        st = _lstat(lk.path)
        if st is None:
            if not any(lk.path.is_relative_to(w) for w in writable):
                continue
            made = _make(lk)
            if made is not None:
                held.append(made)
                continue
            st = _lstat(lk.path)
            if st is None:
                raise _refuse(lk.path, "it keeps disappearing")
        if _is_ours(lk, st):
            held.append(Held(lk))


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _is_ours(lk: Locked, st: os.stat_result) -> bool:
    if lk.content is None:
        return stat.S_ISDIR(st.st_mode) and (st.st_mode & 0o7777) == DIR_MODE
    return is_file_placeholder(lk.path, lk.content, st)


def release(h: Held) -> str | None:
    """Remove a placeholder if it is still exactly ours (same file, unchanged): never a file or
    directory somebody put there meanwhile. A line to show if it had to be left in place."""
    lk = h.locked
    if lk.content is None:
        if is_placeholder(lk.path):
            remove_placeholder(lk.path)
            if is_placeholder(lk.path):
                _give_back(lk.path, 0o755)
                return (f"corral: sandbox: left the placeholder directory {lk.path} in place: "
                        "something was put inside it on the host (now an ordinary directory)")
        return None
    st = _lstat(lk.path)
    if st is None or (h.ino is not None and st.st_ino != h.ino):
        return None  # gone, or replaced by somebody else's file: not ours to remove
    if h.ino is None and not is_file_placeholder(lk.path, lk.content, st):
        return None  # found, not made: what is there now is somebody else's
    if not is_file_placeholder(lk.path, lk.content, st) or (
            h.ino is not None and st.st_mtime_ns != h.mtime_ns):
        _give_back(lk.path, 0o644)
        return (f"corral: sandbox: left {lk.path} in place: it changed during the run "
                "(it was corral's read-only placeholder; now an ordinary file)")
    try:
        os.unlink(lk.path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"corral: sandbox: could not remove the placeholder {lk.path}: {exc.strerror}"
    return None


def _give_back(path: Path, mode: int) -> None:
    """What somebody put into a placeholder is theirs: an ordinary mode, not ours (so later
    runs neither try to remove it again nor keep it read-only on the host)."""
    try:
        os.chmod(path, mode)
    except OSError:
        pass


def symlinked(locked: tuple[Locked, ...]) -> list[Path]:
    """Locked paths that are symlinks: the mount lands on the target, so the link itself (an
    entry of a writable directory) can still be replaced from inside."""
    return [lk.path for lk in locked if (st := _lstat(lk.path)) and stat.S_ISLNK(st.st_mode)]
