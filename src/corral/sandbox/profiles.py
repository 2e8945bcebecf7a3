"""Permission profiles: which paths a sandboxed command may read, write or not see at all.

A profile is a map from path patterns to access. Built-ins are ``:read-only``, ``:workspace``
and ``:danger-full-access``; user profiles (``[permissions.NAME]``) extend one of them. Resolution
turns patterns into concrete paths once, so the launcher only has to order mounts.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path

from corral.errors import CorralError
from corral.record import Frozen

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from typing import Any


class Access(StrEnum):
    """What a path allows. Ordered read < write < deny: at equal specificity the higher wins."""

    READ = "read"
    WRITE = "write"
    DENY = "deny"

    @property
    def rank(self) -> int:
        return {"read": 0, "write": 1, "deny": 2}[self.value]


class NetworkMode(StrEnum):
    NONE = "none"
    PROXY = "proxy"
    HOST = "host"


BUILTIN_PROFILES = (":read-only", ":workspace", ":danger-full-access")

MINIMAL_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
                 "/opt", "/var/lib/dpkg")
# Special tokens usable as filesystem keys (Codex-compatible names plus ``:cwd``).
TOKENS = (":root", ":workspace_roots", ":cwd", ":tmpdir", ":slash_tmp", ":minimal")


class Profile(Frozen):
    """A resolved permission profile (``extends`` already merged, parent first)."""

    _fields = ("name", "filesystem", "network", "full_access", "description",
               "allow_credentials")
    name: str
    filesystem: tuple[tuple[str, Access], ...]
    network: NetworkMode | None
    full_access: bool
    description: str
    # credential catalogue ids this profile re-allows (``corral.sandbox.credentials``)
    allow_credentials: tuple[str, ...]

    def __init__(self, name: str, filesystem: tuple[tuple[str, Access], ...],
                 network: NetworkMode | None = None, full_access: bool = False,
                 description: str = "", allow_credentials: tuple[str, ...] = ()) -> None:
        self._set(name=name, filesystem=filesystem, network=network, full_access=full_access,
                  description=description, allow_credentials=allow_credentials)


def _builtin(name: str) -> Profile:
    if name == ":read-only":
        return Profile(name, ((":root", Access.READ),), NetworkMode.NONE)
    if name == ":workspace":
        return Profile(
            name,
            ((":root", Access.READ), (":workspace_roots", Access.WRITE),
             (":tmpdir", Access.WRITE), (":slash_tmp", Access.WRITE)),
            None,
        )
    if name == ":danger-full-access":
        return Profile(name, ((":root", Access.WRITE),), NetworkMode.HOST, full_access=True)
    raise CorralError(
        "sandbox", f"unknown built-in permission profile {name!r}",
        f"use one of {', '.join(BUILTIN_PROFILES)} or a [permissions.NAME] table",
    )


def _parse_access(value: Any, where: str) -> Access:
    if value == "none":  # older Codex alias
        return Access.DENY
    try:
        return Access(value)
    except ValueError:
        raise CorralError(
            "sandbox", f"{where}: access must be \"read\", \"write\" or \"deny\", got {value!r}"
        ) from None


def _key(name: str) -> str:
    """A profile name as a TOML key, quoted if it needs it (refusals stay one line)."""
    simple = name and all(c.isascii() and (c.isalnum() or c in "_-") for c in name)
    return name if simple else repr(name)


def resolve_profile(name: str, user_profiles: Mapping[str, Any] | None = None) -> Profile:
    """Resolve ``name`` (built-in or ``[permissions.NAME]``) following ``extends`` chains."""
    user_profiles = user_profiles or {}
    chain: list[str] = []
    cur: str | None = name
    while cur is not None and not cur.startswith(":"):
        if cur in chain:
            raise CorralError(
                "sandbox", f"permission profile cycle: {' -> '.join(map(_key, [*chain, cur]))}"
            )
        table = user_profiles.get(cur)
        if not isinstance(table, Mapping):
            raise CorralError(
                "sandbox", f"unknown permission profile {cur!r}",
                f"define [permissions.{_key(cur)}] or use one of {', '.join(BUILTIN_PROFILES)}",
            )
        chain.append(cur)
        parent = table.get("extends")
        if parent is not None and not isinstance(parent, str):
            raise CorralError("sandbox", f"permissions.{cur}.extends must be a profile name")
        cur = parent
    base = _builtin(cur) if cur is not None else Profile(name, ())
    fs = list(base.filesystem)
    network = base.network
    description = base.description
    allowed: list[str] = []
    for pname in reversed(chain):
        table = user_profiles[pname]
        entries = table.get("filesystem", {}) or {}
        if not isinstance(entries, Mapping):
            raise CorralError("sandbox", f"permissions.{pname}.filesystem must be a table")
        for pattern, acc in entries.items():
            fs.append((str(pattern), _parse_access(acc, f"permissions.{pname}.filesystem")))
        net = table.get("network")
        if isinstance(net, Mapping) and "mode" in net:
            try:
                network = NetworkMode(net["mode"])
            except ValueError:
                raise CorralError(
                    "sandbox", f"permissions.{pname}.network.mode must be none|proxy|host, "
                    f"got {net['mode']!r}",
                ) from None
        description = str(table.get("description", description))
        allow = table.get("allow_credentials", [])
        if not isinstance(allow, list) or not all(isinstance(a, str) for a in allow):
            raise CorralError("sandbox", f"permissions.{pname}.allow_credentials must be a "
                              "list of credential catalogue ids")
        allowed += allow
    return Profile(name, tuple(fs), network, base.full_access and not chain, description,
                   tuple(dict.fromkeys(allowed)))


class FsEntry(Frozen):
    """One concrete path and its access. ``enforced`` entries come from admin requirements:
    nothing more specific may re-open them."""

    _fields = ("path", "access", "literal", "enforced", "protected")
    path: Path
    access: Access
    literal: bool
    enforced: bool
    protected: bool

    def __init__(self, path: Path, access: Access, literal: bool = True, enforced: bool = False,
                 protected: bool = False) -> None:
        self._set(path=path, access=access, literal=literal, enforced=enforced,
                  protected=protected)

    @property
    def depth(self) -> int:
        return len(self.path.parts)


class ResolveContext(Frozen):
    _fields = ("cwd", "home", "writable_roots", "tmpdir", "exclude_tmpdir", "exclude_slash_tmp",
               "glob_limit", "extra")
    cwd: Path
    home: Path
    writable_roots: tuple[Path, ...]
    tmpdir: Path | None
    exclude_tmpdir: bool
    exclude_slash_tmp: bool
    glob_limit: int
    extra: dict[str, Path]

    def __init__(self, cwd: Path, home: Path, writable_roots: tuple[Path, ...] = (),
                 tmpdir: Path | None = None, exclude_tmpdir: bool = False,
                 exclude_slash_tmp: bool = False, glob_limit: int = 10_000,
                 extra: dict[str, Path] | None = None) -> None:
        self._set(cwd=cwd, home=home, writable_roots=writable_roots, tmpdir=tmpdir,
                  exclude_tmpdir=exclude_tmpdir, exclude_slash_tmp=exclude_slash_tmp,
                  glob_limit=glob_limit, extra={} if extra is None else extra)


ROOT = Path("/")  # compared against every entry: one instance, not one per comparison


def has_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern or "[" in pattern


def iglob(pattern: str) -> Iterator[str]:
    """``glob.iglob(pattern, recursive=True, include_hidden=True)``. A pattern with wildcards
    in its last component only (the credential catalogue's ``/etc/ssh/ssh_host_*_key``, expanded
    at every spawn) is matched against one directory listing, as glob does, without importing
    glob (~0.3 ms of every ``corral sandbox`` here; fnmatch comes with pathlib)."""
    head, tail = os.path.split(pattern)
    if has_glob(head) or "**" in tail or not has_glob(tail):
        import glob

        yield from glob.iglob(pattern, recursive=True, include_hidden=True)
        return
    try:
        with os.scandir(head or os.curdir) as listing:
            names = [e.name for e in listing]
    except OSError:
        return
    for name in fnmatch.filter(names, tail):
        yield os.path.join(head, name)


def _expand_user(pattern: str, ctx: ResolveContext) -> str:
    if pattern == "~" or pattern.startswith("~/"):
        return str(ctx.home) + pattern[1:]
    return pattern


def expand_pattern(pattern: str, ctx: ResolveContext) -> list[tuple[Path, bool]]:
    """Concrete paths for one filesystem key, each with ``literal`` (False if from a glob)."""
    if pattern.startswith(":"):
        if pattern == ":root":
            return [(ROOT, True)]
        if pattern == ":minimal":  # what programs need to run, without home or data dirs
            return [(Path(p), True) for p in MINIMAL_PATHS if os.path.exists(p)]
        if pattern == ":cwd":
            return [(ctx.cwd, True)]
        if pattern == ":workspace_roots":
            return [(ctx.cwd, True)] + [(p, True) for p in ctx.writable_roots]
        if pattern == ":tmpdir":
            if ctx.exclude_tmpdir or ctx.tmpdir is None:
                return []
            return [(ctx.tmpdir, True)]
        if pattern == ":slash_tmp":
            return [] if ctx.exclude_slash_tmp else [(Path("/tmp"), True)]
        raise CorralError(
            "sandbox", f"unknown filesystem token {pattern!r}",
            f"known tokens: {', '.join(TOKENS)}",
        )
    text = _expand_user(pattern, ctx)
    if not os.path.isabs(text):
        text = os.path.join(ctx.cwd, text)
    if not has_glob(text):
        return [(Path(os.path.normpath(text)), True)]
    out: list[tuple[Path, bool]] = []
    for i, hit in enumerate(iglob(text)):
        if i >= ctx.glob_limit:
            raise CorralError(
                "sandbox", f"filesystem pattern {pattern!r} matches more than "
                f"{ctx.glob_limit} paths", "use a narrower pattern",
            )
        out.append((Path(os.path.normpath(hit)), False))
    return out


def resolve_entries(
    rules: Iterable[tuple[str, Access]], ctx: ResolveContext, *, enforced: bool = False
) -> list[FsEntry]:
    out: list[FsEntry] = []
    for pattern, acc in rules:
        for path, literal in expand_pattern(pattern, ctx):
            out.append(FsEntry(path, acc, literal, enforced))
    return out


def is_under(path: Path | str, parent: Path | str) -> bool:
    """``path`` is ``parent`` or inside it (lexically; both absolute and normalised)."""
    p, q = str(path), str(parent)
    return p == q or q == "/" or p.startswith(q + "/")


def normalise(entries: Iterable[FsEntry]) -> list[FsEntry]:
    """One entry per path, ordered so that applying them in sequence gives "most specific wins".

    At the same path, deny > write > read (an explicit literal beats a glob only by coming from
    a more specific key; same path means same specificity). Enforced denies win over anything
    below them.
    """
    best: dict[Path, FsEntry] = {}
    for e in entries:
        cur = best.get(e.path)
        if cur is None or (e.enforced, e.access.rank) > (cur.enforced, cur.access.rank):
            best[e.path] = e
    enforced = [e.path for e in best.values() if e.enforced and e.access is Access.DENY]
    kept = [
        e for e in best.values()
        if e.access is Access.DENY or not any(is_under(e.path, d) for d in enforced)
    ]
    return sorted(kept, key=lambda e: (e.depth, str(e.path)))


def effective_access(path: Path, entries: list[FsEntry]) -> Access | None:
    """The access that applies to ``path`` given normalised entries (None: not visible)."""
    result: Access | None = None
    for e in entries:
        if is_under(path, e.path):
            result = e.access
    return result
