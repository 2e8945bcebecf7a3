"""After-the-run guard for the ways git finds configuration, hooks or another git directory.

The sandbox keeps ``.git/hooks``, ``.git/config`` and the existing indirection files
(``commondir``, ``config.worktree``, ``objects/info/alternates``, a ``.git`` pointer file) of
each git directory read-only, but mounts cannot stop a command from *creating* a name: a new
``.git/commondir`` naming a directory with its own ``config`` (``core.fsmonitor``) and
``hooks/``; a new submodule gitdir under ``.git/modules/``; a new linked worktree; a nested
repository (``sub/.git``, at any depth) that the top repository's index then records as a
submodule, so the user's ``git status`` runs ``git status`` inside it. Any of these would run a
planted program the next time the user runs git on the host.

``snapshot`` records the state of every such place before the run, ``review`` compares after it:
each change is reported (one line and a journal event), and a unit that would make git run code
(a program-valued config key, a hook, a ``commondir`` redirect) is moved aside to
``NAME.corral-quarantine`` so that git no longer finds it. The walk is bounded like
``corral.sandbox.audit``.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from corral.sandbox.audit import MAX_ENTRIES
from corral.sandbox.locked import Locked
from corral.sandbox.protected import GIT_LOCKED_FILES, WORKTREE_LOCKED_FILES

_SKIP_DIRS = frozenset({
    "node_modules", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache", ".ruff_cache",
    ".pytest_cache", ".cache",
})
QUARANTINE = ".corral-quarantine"
SEP = "\0"  # between a .git entry's path and a path inside its git directory
_MAX_DEPTH = 6  # nesting of modules/ inside modules/

Fingerprint = tuple[int, int, int, int]  # inode, size, mtime_ns, mode

# Config keys a repository git made itself holds (init, clone, submodule, worktree, remote and
# branch set-up). Anything else, above all the many keys whose value is a program (fsmonitor,
# hooksPath, pager, editor, sshCommand, filters, diff drivers, credential helpers, include.path,
# submodule.*.update = !cmd...), makes a new git directory suspect.
_PLAIN_KEYS = re.compile(
    r"(core\.(repositoryformatversion|filemode|bare|logallrefupdates|ignorecase"
    r"|precomposeunicode|symlinks|worktree|autocrlf|eol|sparsecheckout|sparsecheckoutcone"
    r"|quotepath|compression)"
    r"|remote\..+\.(url|pushurl|fetch|push|tagopt|promisor|partialclonefilter|mirror|prune)"
    r"|branch\..+\.(remote|merge|rebase|pushremote)"
    r"|submodule\..+\.(url|active)"
    r"|extensions\.(objectformat|refstorage|worktreeconfig|partialclone|preciousobjects)"
    r"|user\.(name|email)|init\.defaultbranch|pull\.(rebase|ff)|push\.default|fetch\.prune"
    r"|gc\.auto|index\.version|lfs\.repositoryformatversion)")


@dataclass(frozen=True)
class GitSnapshot:
    root: Path
    entries: dict[str, Fingerprint]  # LABEL<NUL>PATH-IN-GITDIR or .gitmodules path -> state
    gitdirs: dict[str, Path]  # each .git entry (relative to root) -> the git directory it is
    complete: bool


@dataclass(frozen=True)
class Finding:
    path: str  # the unit, relative to the root when inside it
    kind: str  # created | changed | removed
    risk: str  # what in it would run code; "" if nothing
    moved_to: str = ""  # where it was quarantined, if it was

    def line(self) -> str:
        head = f"corral: sandbox: the run {self.kind} {self.path}"
        if self.moved_to:
            return (f"{head}, through which git would run {self.risk} on your next git command "
                    f"there: moved it to {self.moved_to}; inspect it before moving it back")
        if self.risk:
            return (f"{head}, through which git would run {self.risk}, and it could not be "
                    "moved aside: inspect it before running git there")
        return (f"{head}: git finds configuration or another repository through it (nothing "
                "that runs a program found); review it")


def _fp(path: Path) -> Fingerprint | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)


def _key(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _read_pointer(dotgit: Path) -> Path | None:
    """The target of a ``.git`` file (``gitdir: X``) or symlink."""
    try:
        if os.path.islink(dotgit):
            return Path(os.path.realpath(dotgit))
        text = dotgit.read_text(errors="replace")[:4096]
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("gitdir:"):
            target = Path(line.split(":", 1)[1].strip())
            return Path(os.path.normpath(dotgit.parent / target))
    return None


def _gitdir_state(gitdir: Path, label: str, out: dict[str, Fingerprint], prefix: str = "",
                  depth: int = 0) -> None:
    """Fingerprints of everything in ``gitdir`` through which git finds code or another gitdir,
    keyed ``LABEL<NUL>PATH-IN-GITDIR`` (LABEL: the ``.git`` entry that leads there)."""
    if depth > _MAX_DEPTH:
        return
    for name in ("config", *GIT_LOCKED_FILES):
        if (fp := _fp(gitdir / name)) is not None:
            out[f"{label}{SEP}{prefix}{name}"] = fp
    try:
        for e in os.scandir(gitdir / "hooks"):
            if (fp := _fp(Path(e.path))) is not None:
                out[f"{label}{SEP}{prefix}hooks/{e.name}"] = fp
    except OSError:
        pass
    for wt in _subdirs(gitdir / "worktrees"):
        for name in WORKTREE_LOCKED_FILES:
            if (fp := _fp(wt / name)) is not None:
                out[f"{label}{SEP}{prefix}worktrees/{wt.name}/{name}"] = fp
    for mod in _module_dirs(gitdir / "modules"):
        _gitdir_state(mod, label, out, f"{prefix}{mod.relative_to(gitdir)}/", depth + 1)


def _subdirs(d: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(d) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _module_dirs(modules: Path, depth: int = 0) -> list[Path]:
    """Submodule gitdirs below ``modules`` (names may contain slashes: modules/a/b)."""
    out: list[Path] = []
    if depth > _MAX_DEPTH:
        return out
    for d in _subdirs(modules):
        if (d / "HEAD").exists() or (d / "config").exists():
            out.append(d)
        else:
            out += _module_dirs(d, depth + 1)
    return out


def snapshot(root: Path, max_entries: int = MAX_ENTRIES) -> GitSnapshot:
    """Every ``.git`` (directory, file or link, at any depth, the root's own included) and what
    each leads to, and every ``.gitmodules``."""
    out: dict[str, Fingerprint] = {}
    gitdirs: dict[str, Path] = {}
    seen = 0
    complete = True
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                seen += 1
                if seen > max_entries:
                    complete = False
                    stack = []
                    break
                path = Path(e.path)
                if e.name in (".git", ".gitmodules"):
                    fp = _fp(path)
                    if fp is None:
                        continue
                    label = _key(path, root)
                    if e.name == ".gitmodules":
                        out[label] = fp
                        continue
                    out[label + SEP] = fp
                    gitdir = path if e.is_dir(follow_symlinks=False) else _read_pointer(path)
                    if gitdir is not None and gitdir.is_dir():
                        gitdirs[label] = gitdir
                        _gitdir_state(gitdir, label, out)
                    continue
                if e.is_dir(follow_symlinks=False) and e.name not in _SKIP_DIRS:
                    stack.append(path)
    return GitSnapshot(root, out, gitdirs, complete)


def locks(snap: GitSnapshot) -> tuple[Locked, ...]:
    """Read-only for the run: the hooks, config and indirection files of the nested
    repositories that exist before it (the root's own are protected paths already)."""
    out: list[Locked] = []
    for label, gitdir in snap.gitdirs.items():
        if label == ".git":
            continue
        for name in ("hooks", "config", *GIT_LOCKED_FILES):
            p = gitdir / name
            if os.path.lexists(p):
                out.append(Locked(p, None if p.is_dir() else b""))
    return tuple(out)


def _unit(key: str, root: Path, gitdirs: dict[str, Path]) -> Path | None:
    """The entry through which git finds what changed at ``key``: a nested ``.git`` entry (all
    of it), a submodule or worktree gitdir of the root's own git directory, or one of its files
    (``commondir``, ``config.worktree``). None for ``.gitmodules`` (git takes no program from
    it) and alternates (objects, not code): reported, never moved."""
    if SEP not in key:
        return None
    label, inner = key.split(SEP, 1)
    if inner.endswith("objects/info/alternates"):
        return None
    if not inner or label != ".git" or label not in gitdirs:
        return root / label
    gitdir = gitdirs[label]
    if not gitdir.is_relative_to(root):  # the root's .git points outside: that pointer
        return root / label
    parts = inner.split("/")
    if parts[0] == "worktrees" and len(parts) > 2:
        return gitdir / "worktrees" / parts[1]
    if parts[0] == "modules" and len(parts) > 2:
        for j in range(len(parts) - 1, 1, -1):  # the deepest submodule gitdir holding it
            d = gitdir.joinpath(*parts[:j])
            if (d / "HEAD").exists() or (d / "config").exists():
                return d
        return gitdir.joinpath(*parts[:2])
    return gitdir / inner


def review(before: GitSnapshot, quarantine: bool = True) -> list[Finding]:
    """Compare with the state now; report every unit that changed and move aside the ones
    that would run code (``quarantine``)."""
    root = before.root
    after = snapshot(root)
    changed: dict[str, str] = {}
    for k, fp in after.entries.items():
        old = before.entries.get(k)
        if old is None:
            changed[k] = "created"
        elif old != fp and not (stat.S_ISDIR(fp[3]) and old[:2] == fp[:2]):
            changed[k] = "changed"
    for k in before.entries:
        if k not in after.entries:
            changed[k] = "removed"
    gitdirs = {**before.gitdirs, **after.gitdirs}
    kinds: dict[Path, set[str]] = {}
    own: dict[Path, str] = {}  # the unit's own entry changed (a .git created or replaced)
    shown: dict[Path, str] = {}
    replaced = {k[:-1] for k in changed if k.endswith(SEP)}  # .git entries new or replaced
    for k, kind in changed.items():
        label = k.split(SEP, 1)[0]
        u = root / label if SEP in k and label in replaced else _unit(k, root, gitdirs)
        if u is None:
            u = root / k.replace(SEP, "/").rstrip("/")
            shown[u] = "-"
        kinds.setdefault(u, set()).add(kind)
        if k.endswith(SEP):
            own[u] = kind
    judged: list[tuple[Path, str, str]] = []
    for u, ks in sorted(kinds.items()):  # judge all first: a pointer and its target alike
        kind = own.get(u) or (ks.pop() if len(ks) == 1 else "changed")
        risk = "" if kind == "removed" or u in shown else risk_of(u)
        judged.append((u, kind, risk))
    findings: list[Finding] = []
    for u, kind, risk in judged:
        # never anything outside the workspace (a pointer's target may be the user's own repo)
        moved = _move_aside(u) if risk and quarantine and u.is_relative_to(root) else ""
        findings.append(Finding(_key(u, root), kind, risk, _key(Path(moved), root) if moved
                                else ""))
    return findings


def _move_aside(path: Path) -> str:
    for n in range(100):
        dest = Path(f"{path}{QUARANTINE}{'' if n == 0 else f'-{n}'}")
        if os.path.lexists(dest):
            continue
        try:
            os.rename(path, dest)
        except OSError:
            return ""
        return str(dest)
    return ""


def risk_of(path: Path, depth: int = 0) -> str:
    """What in ``path`` (a ``.git`` entry, a gitdir, or a file of one) would make git run a
    program or look elsewhere for one; "" if nothing."""
    if depth > _MAX_DEPTH:
        return "a too deeply nested git directory"
    name = path.name
    try:
        st = os.lstat(path)
    except OSError:
        return ""
    if name == "commondir" and stat.S_ISREG(st.st_mode):
        return "the config and hooks of the directory its commondir names"
    if name == "config.worktree" or name == "config":
        return _config_risk(path)
    if name == "gitdir" and path.parent.parent.name == "worktrees":
        return ""  # a worktree's back-pointer: git finds nothing through it
    if not stat.S_ISDIR(st.st_mode):  # a .git file or link: judge what it leads to
        target = _read_pointer(path)
        if target is None:
            return ""
        return risk_of(target, depth + 1) if target.is_dir() else ""
    hooks = [h for h in _names(path / "hooks") if not h.endswith(".sample")]
    if hooks:
        return f"the hook {hooks[0]}"
    for cfg in ("config", "config.worktree"):
        if (r := _config_risk(path / cfg)) != "":
            return r
    common = path / "commondir"
    if common.exists():
        if path.parent.name != "worktrees":
            return "the config and hooks of the directory its commondir names"
        target = _read_relative(common, path)
        if target is None or os.path.realpath(target) != os.path.realpath(path.parent.parent):
            return "the config and hooks of the directory its commondir names"
    for mod in _module_dirs(path / "modules"):
        if (r := risk_of(mod, depth + 1)) != "":
            return r
    return ""


def _read_relative(f: Path, base: Path) -> Path | None:
    try:
        text = f.read_text(errors="replace").strip()
    except OSError:
        return None
    return Path(os.path.normpath(base / text)) if text else None


def _names(d: Path) -> list[str]:
    try:
        return sorted(os.listdir(d))
    except OSError:
        return []


def _config_risk(cfg: Path) -> str:
    """A key outside the plain set git writes itself; fails closed if git cannot parse it."""
    if not cfg.exists():
        return ""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "HOME": os.devnull, "LC_ALL": "C"}
    try:
        p = subprocess.run(["git", "config", "--file", str(cfg), "--no-includes", "--list",
                            "--name-only", "-z"], capture_output=True, cwd="/", env=env,
                           timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return f"whatever {cfg.name} configures (git could not read it)"
    if p.returncode != 0:
        return f"whatever {cfg.name} configures (git could not read it)"
    for raw in p.stdout.split(b"\0"):
        key = raw.decode(errors="replace").strip()
        if key and not _PLAIN_KEYS.fullmatch(key.lower()):
            return f"the program its {cfg.name} sets ({key})"
    return ""


_RISKY_GIT_CONFIG = ("hookspath", "fsmonitor", "sshcommand", "pager", "editor", "askpass",
                     "textconv", "external", "filter.", "gpg.program", "credential")


def audit_new_repo(root: Path) -> list[str]:
    """A git repository created *during* a run had writable hooks and config (``git init`` must
    work). Say so if it holds anything that would run code when git is used outside."""
    git = root / ".git"
    if not git.is_dir():
        return []
    found: list[str] = []
    with contextlib.suppress(OSError):
        found += [f".git/hooks/{h.name}" for h in (git / "hooks").iterdir()
                  if not h.name.endswith(".sample")]
    try:
        cfg = (git / "config").read_text(errors="replace").lower()
        found += [f".git/config ({k.rstrip('.')})" for k in _RISKY_GIT_CONFIG if k in cfg]
    except OSError:
        pass
    if not found:
        return []
    return [f"corral: sandbox: warning: the git repository created in {root} during this run "
            f"contains {', '.join(found)}; inspect before running git outside the sandbox"]
