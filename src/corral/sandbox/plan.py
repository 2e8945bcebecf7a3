"""The sandbox plan: everything decided before spawning, computed once and reused per command.

``build_plan`` takes plain values (usable without config); ``plan_from_config`` reads the
layered config and admin requirements and calls it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from corral.errors import CorralError
from corral.paths import corral_home as _corral_home
from corral.paths import runtime_dirs_to_hide as _runtime_dirs_to_hide
from corral.record import Frozen
from corral.sandbox import credentials as _credentials
from corral.sandbox.credentials import Credential
from corral.sandbox.envpolicy import EnvPolicy
from corral.sandbox.homelock import home_locks
from corral.sandbox.locked import Locked
from corral.sandbox.profiles import (
    ROOT,
    Access,
    FsEntry,
    NetworkMode,
    Profile,
    ResolveContext,
    has_glob,
    resolve_entries,
    resolve_profile,
)

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from typing import Any, Protocol

DEFAULT_DENY_READ: tuple[str, ...] = (
    "~/.ssh", "~/.aws", "~/.gnupg", "~/.config/gcloud", "~/.azure", "~/.kube",
    "~/.docker/config.json", "~/.netrc", "~/.git-credentials", "~/.pypirc", "~/.npmrc",
    # readable by owner root: matters when corral itself runs as root (containers, CI)
    "/etc/shadow", "/etc/gshadow", "/etc/ssh/ssh_host_*_key",
)

WEAKER_MODES = ("no-seccomp", "unsandboxed")


class NetworkPlan(Frozen):
    """Network access for the sandbox.

    ``proxy`` mode needs a running managed proxy listening on the unix socket ``proxy_socket``
    (host path). It is bind-mounted into the sandbox, and a bridge inside listens on 127.0.0.1 at
    each of ``bridge_ports`` and relays to it. ``proxy_env`` (HTTP(S)_PROXY, ALL_PROXY, ...,
    pointing at those ports) is added to the command's environment. ``allow_domains`` and
    ``deny_domains`` are for the proxy's policy; the sandbox only records them.
    ``ro_files`` are (name, host file) pairs mounted read-only at ``/dev/corral/<name>``, or
    at ``name`` itself when it is an absolute path (the credential broker's CA bundle, and an
    agent's login file with placeholders over the real one).
    """

    _fields = ("mode", "proxy_socket", "proxy_env", "bridge_ports", "allow_domains",
               "deny_domains", "extra_bridges", "ro_files")
    mode: NetworkMode
    proxy_socket: Path | None
    proxy_env: Mapping[str, str]
    bridge_ports: tuple[int, ...]
    allow_domains: tuple[str, ...]
    deny_domains: tuple[str, ...]
    # More (loopback port inside, unix socket outside) relays, e.g. the session API for hooks.
    extra_bridges: tuple[tuple[int, Path], ...]
    ro_files: tuple[tuple[str, Path], ...]

    def __init__(self, mode: NetworkMode = NetworkMode.NONE, proxy_socket: Path | None = None,
                 proxy_env: Mapping[str, str] | None = None,
                 bridge_ports: tuple[int, ...] = (3128, 1080),
                 allow_domains: tuple[str, ...] = (), deny_domains: tuple[str, ...] = (),
                 extra_bridges: tuple[tuple[int, Path], ...] = (),
                 ro_files: tuple[tuple[str, Path], ...] = ()) -> None:
        self._set(mode=mode, proxy_socket=proxy_socket,
                  proxy_env={} if proxy_env is None else proxy_env, bridge_ports=bridge_ports,
                  allow_domains=allow_domains, deny_domains=deny_domains,
                  extra_bridges=extra_bridges, ro_files=ro_files)


class SandboxPlan(Frozen):
    """A resolved sandbox: the static part of every spawn."""

    _fields = ("profile", "cwd", "entries", "writable_roots", "deny_read_globs", "network",
               "env_policy", "full_access", "root_readable", "allow_weaker",
               "allow_weaker_source", "explicit_writes", "bwrap", "corral_home", "locked",
               "keep_terminal", "max_processes", "exec_socket")
    profile: str
    cwd: Path
    entries: tuple[FsEntry, ...]           # static filesystem entries (no protected paths yet)
    writable_roots: tuple[Path, ...]       # roots whose protected paths are carved out
    deny_read_globs: tuple[str, ...]       # re-expanded at each spawn
    network: NetworkPlan
    env_policy: EnvPolicy
    full_access: bool
    root_readable: bool
    allow_weaker: tuple[str, ...]
    allow_weaker_source: str
    explicit_writes: frozenset[Path]
    bwrap: str
    corral_home: Path
    # Kept read-only whether or not they exist (a missing one gets a placeholder at each spawn).
    locked: tuple[Locked, ...]
    # Keep the caller's controlling terminal (a whole interactive agent under ``corral run``):
    # honoured only with the seccomp filter, which blocks TIOCSTI/TIOCLINUX keystroke injection;
    # otherwise the sandbox starts a new session as always.
    keep_terminal: bool
    # Tasks one command may have (``sandbox.max_processes``): None is the default cap where the
    # host can enforce one (``corral.sandbox.pidcap``), 0 none; a number set is enforced or the
    # spawn is refused.
    max_processes: int | None
    # The supervisor's exec-boundary socket (``corral run`` with ``rules.exec_boundary``): the
    # init passes it a seccomp listener for the command's execs (``sandbox.execnotify``).
    exec_socket: Path | None

    def __init__(self, profile: str, cwd: Path, entries: tuple[FsEntry, ...],
                 writable_roots: tuple[Path, ...], deny_read_globs: tuple[str, ...],
                 network: NetworkPlan, env_policy: EnvPolicy, full_access: bool = False,
                 root_readable: bool = True, allow_weaker: tuple[str, ...] = (),
                 allow_weaker_source: str = "", explicit_writes: frozenset[Path] = frozenset(),
                 bwrap: str = "/usr/bin/bwrap", corral_home: Path | None = None,
                 locked: tuple[Locked, ...] = (), keep_terminal: bool = False,
                 max_processes: int | None = None, exec_socket: Path | None = None) -> None:
        self._set(profile=profile, cwd=cwd, entries=entries, writable_roots=writable_roots,
                  deny_read_globs=deny_read_globs, network=network, env_policy=env_policy,
                  full_access=full_access, root_readable=root_readable,
                  allow_weaker=allow_weaker, allow_weaker_source=allow_weaker_source,
                  explicit_writes=explicit_writes, bwrap=bwrap,
                  corral_home=corral_home if corral_home is not None else _corral_home(),
                  locked=locked, keep_terminal=keep_terminal, max_processes=max_processes,
                  exec_socket=exec_socket)


def _abs(p: str | Path, cwd: Path) -> Path:
    q = Path(os.path.expanduser(str(p)))
    return Path(os.path.normpath(q if q.is_absolute() else cwd / q))


def build_plan(
    profile: str = ":workspace",
    cwd: str | Path | None = None,
    *,
    writable_roots: Sequence[str | Path] = (),
    network: NetworkPlan | NetworkMode | str | None = None,
    deny_read: Sequence[str] = (),
    enforced_deny_read: Sequence[str] = (),
    env_policy: EnvPolicy | None = None,
    exclude_tmpdir: bool = False,
    exclude_slash_tmp: bool = False,
    user_profiles: Mapping[str, Any] | None = None,
    allow_weaker: Sequence[str] = (),
    allow_weaker_source: str = "",
    home: Path | None = None,
    bwrap: str | None = None,
    tmpdir: str | None = None,
    corral_home_dir: Path | None = None,
    locked: Sequence[Locked] = (),
    max_processes: int | None = None,
    credentials: tuple[Sequence[str], Sequence[Credential], Sequence[Credential]] = ((), (), ()),
) -> SandboxPlan:
    """Resolve a profile into a plan. Raises CorralError on anything it cannot honour.
    ``locked``: paths kept read-only even if missing (see ``corral.sandbox.locked``).
    ``credentials``: (ids re-allowed, entries added by config, entries added by requirements)
    for the credential catalogue (``corral.sandbox.credentials``), hidden unless re-allowed."""
    cwd_p = _abs(cwd or os.getcwd(), Path(os.getcwd()))
    home_p = home or Path(os.path.expanduser("~"))
    prof: Profile = resolve_profile(profile, user_profiles)
    for mode in allow_weaker:
        if mode not in WEAKER_MODES:
            raise CorralError(
                "sandbox", f"sandbox.allow_weaker: unknown mode {mode!r}",
                f"known weaker modes: {', '.join(WEAKER_MODES)}",
            )
    if isinstance(network, NetworkPlan):
        net = network
    else:
        mode = NetworkMode(network) if network is not None else (prof.network or NetworkMode.NONE)
        net = NetworkPlan(mode=mode)
    if net.mode is NetworkMode.PROXY and net.proxy_socket is None:
        raise CorralError(
            "sandbox", "network mode 'proxy' needs the managed proxy's unix socket "
            "(NetworkPlan.proxy_socket)", "start corral.netproxy.Proxy with Listen(unix=...)",
        )
    if (net.allow_domains or net.deny_domains) and net.mode is not NetworkMode.PROXY:
        raise CorralError(
            "sandbox", "--allow-domain/--deny-domain only apply with --network proxy",
            "add --network proxy",
        )
    tmp_env = tmpdir if tmpdir is not None else os.environ.get("TMPDIR")
    ctx = ResolveContext(
        cwd=cwd_p, home=home_p,
        writable_roots=tuple(_abs(p, cwd_p) for p in writable_roots),
        tmpdir=_abs(tmp_env, cwd_p) if tmp_env else None,
        exclude_tmpdir=exclude_tmpdir, exclude_slash_tmp=exclude_slash_tmp,
    )
    entries = resolve_entries(prof.filesystem, ctx)
    if writable_roots and not prof.full_access:
        entries += [FsEntry(r, Access.WRITE) for r in ctx.writable_roots]
    home_dir = corral_home_dir or _corral_home()
    creds, enforced_creds = ([], []) if prof.full_access else _credentials.hidden(
        home_p, os.environ, [*prof.allow_credentials, *credentials[0]], credentials[1],
        credentials[2])
    denies = [*DEFAULT_DENY_READ, *deny_read, *(p for p, _ in creds)]
    enforced_deny_read = [*enforced_deny_read, *(p for p, _ in enforced_creds)]
    literal_denies = [d for d in denies if not has_glob(d)]
    enforced_literal = [d for d in enforced_deny_read if not has_glob(d)]
    entries += resolve_entries(((d, Access.DENY) for d in literal_denies), ctx)
    entries += resolve_entries(((d, Access.DENY) for d in enforced_literal), ctx, enforced=True)
    entries.append(FsEntry(home_dir, Access.DENY, enforced=True))
    # sessions' sockets when a long CORRAL_HOME puts them in a private runtime dir (#21.7b)
    entries += [FsEntry(d, Access.DENY, enforced=True) for d in _runtime_dirs_to_hide()]
    globs = tuple(
        _glob_abs(g, ctx) for g in [*denies, *enforced_deny_read] if has_glob(g)
    )
    if not prof.full_access and any(
        e.path == ROOT and e.access is Access.WRITE for e in entries
    ):
        raise CorralError(
            "sandbox", f"profile {profile} would make the whole filesystem writable "
            f"(cwd or a writable root is /)",
            "run from a project directory, or choose :danger-full-access explicitly",
        )
    writable = tuple(dict.fromkeys(
        e.path for e in entries if e.access is Access.WRITE and e.path != ROOT
    ))
    explicit = frozenset(e.path for e in entries if e.access is Access.WRITE)
    # A writable home directory: its persistence paths are locked (explicit writes excepted).
    locked = [*locked, *(lk for lk in home_locks(
        home_p, [e.path for e in entries if e.access is Access.WRITE],
        [e.path for e in entries if e.access is Access.DENY]) if lk.path not in explicit)]
    # Missing credential paths where a command could create them: read-only placeholders.
    locked += [lk for lk in _credentials.locks([*creds, *enforced_creds], writable)
               if lk.path not in explicit and lk.path not in {x.path for x in locked}]
    root_readable = any(e.path == ROOT for e in entries if e.access is not Access.DENY)
    return SandboxPlan(
        profile=profile, cwd=cwd_p, entries=tuple(entries), writable_roots=writable,
        deny_read_globs=globs, network=net,
        env_policy=env_policy or EnvPolicy(), full_access=prof.full_access,
        root_readable=root_readable, allow_weaker=tuple(allow_weaker),
        allow_weaker_source=allow_weaker_source, explicit_writes=explicit,
        bwrap=bwrap or "/usr/bin/bwrap", corral_home=home_dir, locked=tuple(locked),
        max_processes=max_processes,
    )


def _glob_abs(pattern: str, ctx: ResolveContext) -> str:
    if pattern == "~" or pattern.startswith("~/"):
        pattern = str(ctx.home) + pattern[1:]
    return pattern if os.path.isabs(pattern) else str(ctx.cwd / pattern)


if TYPE_CHECKING:
    class _Reqs(Protocol):
        def get(self, dotted: str, default: Any = None) -> Any: ...

        @property
        def deny_read(self) -> list[str]: ...

        def source_of(self, dotted: str) -> str: ...

    class ConfigLike(Protocol):
        """What the plan needs from ``corral.config.EffectiveConfig``."""

        def get(self, dotted: str, default: Any = None) -> Any: ...

        @property
        def requirements(self) -> _Reqs: ...


def _list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise CorralError("sandbox", f"{key} must be a list of strings")
    return list(value)


def network_mode(cfg: ConfigLike, profile: str | None = None, network: str | None = None
                 ) -> NetworkMode:
    """--network flag > the profile's own network.mode > sandbox.network > none."""
    name = profile or str(cfg.get("default_permissions", ":workspace"))
    try:
        if network:
            return NetworkMode(network)
        return (resolve_profile(name, cfg.get("permissions", {}) or {}).network
                or NetworkMode(cfg.get("sandbox.network") or "none"))
    except ValueError as exc:
        raise CorralError("sandbox", f"network mode: {exc}", "use none, proxy or host") from None


def plan_from_config(
    cfg: ConfigLike,
    cwd: str | Path | None = None,
    *,
    profile: str | None = None,
    writable_roots: Sequence[str | Path] = (),
    network: str | None = None,
    allow_domains: Sequence[str] = (),
    deny_domains: Sequence[str] = (),
    proxy: NetworkPlan | None = None,
) -> SandboxPlan:
    """Plan from the layered config. ``proxy`` is the running managed proxy's plan, used when the
    resolved network mode is ``proxy`` (see ``network_mode``). ``profile``/``network`` are explicit flag values: a
    profile that requirements do not allow is refused (never silently replaced)."""
    reqs = cfg.requirements
    allowed = reqs.get("allowed_permission_profiles")
    if isinstance(allowed, Mapping):
        allowed = [k for k, v in allowed.items() if v]
    name = profile or str(cfg.get("default_permissions", ":workspace"))
    if profile is not None and isinstance(allowed, list) and profile not in allowed:
        raise CorralError(
            "requirements",
            f"permission profile {profile!r} is not allowed by requirements "
            f"(set by {reqs.source_of('allowed_permission_profiles')})",
            f"allowed: {', '.join(map(str, allowed))}",
        )
    user_profiles = cfg.get("permissions", {}) or {}
    mode = network_mode(cfg, name, network)
    if proxy is not None and mode is NetworkMode.PROXY:
        net = proxy
    else:
        net = NetworkPlan(mode=mode, allow_domains=tuple(allow_domains),
                          deny_domains=tuple(deny_domains))
    weaker = _list(cfg.get("sandbox.allow_weaker"), "sandbox.allow_weaker")
    src = ""
    origin_fn = getattr(cfg, "origin", None)
    if weaker and callable(origin_fn):
        o = origin_fn("sandbox.allow_weaker")
        src = o.describe() if o is not None and hasattr(o, "describe") else str(o or "")
    return build_plan(
        name, cwd,
        writable_roots=[*_list(cfg.get("sandbox.writable_roots"), "sandbox.writable_roots"),
                        *writable_roots],
        network=net,
        deny_read=_list(cfg.get("filesystem.deny_read"), "filesystem.deny_read"),
        enforced_deny_read=list(reqs.deny_read),
        env_policy=EnvPolicy.from_table(cfg.get("shell_environment_policy")),
        exclude_tmpdir=bool(cfg.get("sandbox.exclude_tmpdir", False)),
        exclude_slash_tmp=bool(cfg.get("sandbox.exclude_slash_tmp", False)),
        user_profiles=user_profiles, allow_weaker=weaker, allow_weaker_source=src,
        corral_home_dir=getattr(cfg, "corral_home", None),
        max_processes=_max_processes(cfg.get("sandbox.max_processes")),
        credentials=((), _credentials.user_entries(
            cfg.get("sandbox.credential_files"), "sandbox.credential_files"),
            _credentials.user_entries(reqs.get("sandbox.credential_files"),
                                      "requirements sandbox.credential_files")),
    )


def _max_processes(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CorralError("sandbox", f"sandbox.max_processes must be a whole number >= 0, "
                          f"got {value!r}", "0 turns the cap off")
    return value
