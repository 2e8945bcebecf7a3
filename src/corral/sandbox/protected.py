"""Protected paths: agent and tool configuration that stays read-only inside writable roots.

These files make code run later *outside* the sandbox (git hooks, direnv, editor tasks, shell rc
files, agent configs), so a sandboxed command must not create, change, rename or delete them.
Computed at each spawn, because whether they exist changes between commands.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from corral.record import Frozen

# Names protected directly under every writable root: they make code run later, outside the
# sandbox (direnv, editor tasks, agent configs and hooks).
PROTECTED_NAMES: tuple[str, ...] = (
    ".corral", ".codex", ".claude", ".gemini", ".agents", ".vscode", ".idea", ".mcp.json",
    ".envrc",
)
# Shell rc files: protected wherever they exist; creation is blocked only in the home directory,
# the one place shells read them from (elsewhere a placeholder would only be clutter).
SHELL_RC_NAMES: tuple[str, ...] = (
    ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile",
    ".zshrc", ".zshenv", ".zprofile", ".zlogin", ".zlogout",
    ".kshrc", ".cshrc", ".tcshrc", ".inputrc",
)
ALL_NAMES = PROTECTED_NAMES + SHELL_RC_NAMES
# A missing protected path is blocked by mounting over an empty read-only *directory* created
# for the run: git ignores empty directories (so ``git add -A`` does not pick it up) and writing
# a file there fails with EISDIR. The unusual mode marks it as ours for cleanup.
PLACEHOLDER_MODE = 0o1555
# Inside a git directory (``.git`` or the gitdir a ``.git`` file points to).
GIT_PROTECTED: tuple[tuple[str, bool], ...] = (("hooks", True), ("config", False))
# Also read-only in a git directory when they exist: each points git at more configuration or at
# another git directory (``commondir``: the config and hooks of the one it names). Missing ones
# cannot get a placeholder git would accept (an empty or directory ``commondir`` makes every git
# command fail): ``corral.sandbox.gitguard`` finds them after the run instead.
GIT_LOCKED_FILES: tuple[str, ...] = ("commondir", "config.worktree", "objects/info/alternates")
# In a linked worktree's administrative directory (``worktrees/NAME``): no hooks or config of
# its own, but these.
WORKTREE_LOCKED_FILES: tuple[str, ...] = ("commondir", "config.worktree", "gitdir")
REASON = "protected path inside writable root"


class Protected(Frozen):
    """A protected path. ``exists`` False means a placeholder must be created to mount over;
    ``placeholder`` marks an existing placeholder (from this or a concurrent run); ``pin`` means
    bind the path onto itself writable (so it cannot be renamed away) rather than read-only."""

    _fields = ("path", "is_dir", "exists", "reason", "pin", "placeholder")
    path: Path
    is_dir: bool
    exists: bool
    reason: str
    pin: bool
    placeholder: bool

    def __init__(self, path: Path, is_dir: bool, exists: bool, reason: str = REASON,
                 pin: bool = False, placeholder: bool = False) -> None:
        self._set(path=path, is_dir=is_dir, exists=exists, reason=reason, pin=pin,
                  placeholder=placeholder)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _entry(path: Path, want_dir: bool = True) -> Protected | None:
    st = _lstat(path)
    if st is None:
        return Protected(path, True, False) if want_dir else None
    is_dir = stat.S_ISDIR(st.st_mode)
    return Protected(path, is_dir, True,
                     placeholder=is_dir and (st.st_mode & 0o7777) == PLACEHOLDER_MODE)


def _read_gitdir(dotgit_file: Path) -> Path | None:
    try:
        text = dotgit_file.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("gitdir:"):
            target = Path(line.split(":", 1)[1].strip())
            if not target.is_absolute():
                target = dotgit_file.parent / target
            return Path(os.path.normpath(target))
    return None


def _git_protected(gitdir: Path, out: list[Protected]) -> None:
    dirs = [gitdir]
    try:
        common = (gitdir / "commondir").read_text().strip()
        if common:
            cpath = Path(os.path.normpath(gitdir / common))
            if cpath != gitdir:
                dirs.append(cpath)
    except OSError:
        pass
    modules = gitdir / "modules"  # submodule gitdirs have their own hooks and config
    if modules.is_dir():
        dirs += _submodule_gitdirs(modules)
    for d in dirs:
        for name, is_dir in GIT_PROTECTED:
            # a missing .git/config cannot be faked by a directory: only hooks get a placeholder
            e = _entry(d / name, want_dir=is_dir)
            if e is not None:
                out.append(e)
        out += _existing(d, GIT_LOCKED_FILES)
        for wt in _subdirs(d / "worktrees"):
            out += _existing(wt, WORKTREE_LOCKED_FILES)


def _existing(d: Path, names: tuple[str, ...]) -> list[Protected]:
    return [e for n in names if (e := _entry(d / n, want_dir=False)) is not None]


def _subdirs(d: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _submodule_gitdirs(modules: Path, depth: int = 0) -> list[Path]:
    out: list[Path] = []
    if depth > 4:
        return out
    try:
        entries = list(os.scandir(modules))
    except OSError:
        return out
    for e in entries:
        if not e.is_dir(follow_symlinks=False):
            continue
        p = Path(e.path)
        if (p / "HEAD").exists():
            out.append(p)
            if (p / "modules").is_dir():
                out += _submodule_gitdirs(p / "modules", depth + 1)
        else:  # submodule names may contain slashes: modules/a/b
            out += _submodule_gitdirs(p, depth + 1)
    return out


def protected_paths(root: Path, *, placeholders: bool = True, home: Path | None = None
                    ) -> list[Protected]:
    """Protected paths under one writable root. Missing ones are included (to be covered by a
    placeholder) only when ``placeholders``; missing shell rc files only when root is home."""
    out: list[Protected] = []
    rc_placeholders = placeholders and home is not None and root == home
    for name in ALL_NAMES:
        e = _entry(root / name, want_dir=placeholders and (
            rc_placeholders or name in PROTECTED_NAMES))
        if e is not None:
            out.append(e)
    dotgit = root / ".git"
    st = _lstat(dotgit)
    if st is None:
        return out
    gitdir: Path | None = None
    if stat.S_ISDIR(st.st_mode):
        # Pin .git itself so it cannot be renamed away and replaced by a fresh one.
        out.append(Protected(dotgit, True, True, "git directory", pin=True))
        gitdir = dotgit
    elif stat.S_ISREG(st.st_mode):
        # A gitdir pointer file (worktree/submodule): the pointer itself is read-only.
        out.append(Protected(dotgit, False, True))
        gitdir = _read_gitdir(dotgit)
    elif stat.S_ISLNK(st.st_mode):
        gitdir = Path(os.path.realpath(dotgit))
    if gitdir is not None and gitdir.is_dir():
        _git_protected(gitdir, out)
        for hooks in _hooks_paths(root, gitdir, home):
            # a missing one: the placeholder goes where creating it would start
            top = next((a for a in reversed(hooks.parents) if a.is_relative_to(root)
                        and a != root and not os.path.lexists(a)), hooks)
            e = _entry(top, want_dir=placeholders)
            if e is not None:
                out.append(e)
    if not placeholders:
        out = [p for p in out if p.exists]
    return out


def _hooks_paths(root: Path, gitdir: Path, home: Path | None) -> list[Path]:
    """Directories ``core.hooksPath`` names inside ``root`` (``.githooks``...), from the
    repository's config (locked, so stable for the run) and the user's global config: git runs
    hooks from there instead of ``.git/hooks``, so they are kept read-only the same way."""
    files = [gitdir / "config"]
    try:
        common = (gitdir / "commondir").read_text().strip()
    except OSError:
        common = ""
    if common:
        files.append(Path(os.path.normpath(gitdir / common)) / "config")
    h = home or Path(os.path.expanduser("~"))
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(h / ".config")
    files += [h / ".gitconfig", Path(xdg) / "git" / "config"]
    out: list[Path] = []
    for f in files:
        for value in _core_hookspath(f):
            if value == "~" or value.startswith("~/"):
                value = str(h) + value[1:]
            p = Path(os.path.normpath(root / value))
            if p.is_relative_to(root) and p != root and p not in out:
                out.append(p)
    return out


def _core_hookspath(config: Path) -> list[str]:
    """Values of ``core.hooksPath`` in one config file (a plain reading of git's syntax)."""
    try:
        text = config.read_text(errors="replace")
    except OSError:
        return []
    section, out = "", []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line[1:].split("]", 1)[0].strip().lower()
            line = line.split("]", 1)[1].strip() if "]" in line else ""
        key, eq, value = line.partition("=")
        if section == "core" and eq and key.strip().lower() == "hookspath":
            value = value.split(" #")[0].split(" ;")[0].strip().strip('"')
            if value:
                out.append(value)
    return out


def is_placeholder(path: Path) -> bool:
    """A directory with PLACEHOLDER_MODE: left by a sandbox run (rmdir refuses if not empty)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and (st.st_mode & 0o7777) == PLACEHOLDER_MODE


def remove_placeholder(path: Path) -> None:
    if is_placeholder(path):
        try:
            os.rmdir(path)
        except OSError:  # ENOTEMPTY if something was put inside: it stays
            pass


def create_placeholder(path: Path) -> bool:
    try:
        os.mkdir(path, PLACEHOLDER_MODE)
    except OSError:
        # exists already, or we may not create it here (EACCES, EROFS): then neither can the
        # sandboxed command, which runs with our uid and no capabilities
        return False
    if (os.lstat(path).st_mode & 0o7777) != PLACEHOLDER_MODE:
        os.chmod(path, PLACEHOLDER_MODE)  # an unusual umask took bits away
    return True


def is_protected_name(path: Path, roots: tuple[Path, ...]) -> bool:
    """Whether ``path`` is (inside) a protected path of one of ``roots``."""
    for root in roots:
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        parts = rel.parts
        if not parts:
            continue
        if parts[0] in ALL_NAMES:
            return True
        if parts[0] == ".git" and len(parts) > 1 and (
                parts[1] in ("hooks", "config", "commondir", "config.worktree")
                or parts[1:4] == ("objects", "info", "alternates")
                or (parts[1] == "worktrees" and len(parts) > 3
                    and parts[3] in WORKTREE_LOCKED_FILES)):
            return True
        if parts == (".git",):
            return True
    return False
