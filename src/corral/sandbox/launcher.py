"""Spawning commands under the plan: bubblewrap + seccomp on Linux.

``Sandbox(plan)`` checks the host once (bwrap present, user namespaces, seccomp compiled) and
then spawns many commands cheaply: per spawn it only stats the protected paths, writes the
cached BPF into a pipe and execs bwrap.
"""

from __future__ import annotations

import _thread
import fcntl
import os
import signal
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from corral.errors import CorralError
from corral.record import Record
from corral.sandbox import leftovers, pidcap
from corral.sandbox.envpolicy import build_env
from corral.sandbox.leftovers import marker_args, new_run_id
from corral.sandbox.locked import Held, hold, release
from corral.sandbox.plan import SandboxPlan
from corral.sandbox.process import (
    AfterExit,
    DirectProcess,
    tee,
    tee_then_wait,
    wait_interruptible,
)
from corral.sandbox.profiles import (
    ROOT,
    Access,
    FsEntry,
    NetworkMode,
    iglob,
    is_under,
    normalise,
)
from corral.sandbox.protected import (
    Protected,
    create_placeholder,
    protected_paths,
    remove_placeholder,
)
from corral.sandbox.seccomp import bpf_fd, build_bpf

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any, ClassVar, TypeVar

    from corral.sandbox.feedback import Violation
    from corral.sandbox.popen import SandboxedProcess

    P = TypeVar("P", bound=AfterExit)
    # the command line, environment, descriptors to pass and working directory of one start
    Starter = Callable[[list[str], dict[str, str], tuple[int, ...], str | None], P]


PROXY_SOCKET = "/dev/corral/proxy.sock"  # inside the sandbox (/dev is bwrap's own tmpfs)
EXEC_SOCKET = "/dev/corral/exec.sock"  # the exec boundary's listener goes to the supervisor
_MINIMAL_RO = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


class SandboxResult(Record):
    _fields = ("returncode", "weaker_mode", "violations", "stderr", "warnings")

    def __init__(self, returncode: int, weaker_mode: str | None = None,
                 violations: list[Violation] | None = None, stderr: str | None = None,
                 warnings: list[str] | None = None) -> None:
        self.returncode = returncode
        self.weaker_mode = weaker_mode
        self.violations: list[Violation] = [] if violations is None else violations
        self.stderr = stderr
        self.warnings: list[str] = [] if warnings is None else warnings


class _Layout(Record):
    """One spawn's mounts, and the placeholders to remove after it: ``lock_fds`` maps each
    directory holding some to the shared lock on it; ``held`` are the locked-path ones."""

    _fields = ("args", "lock_fds", "roots", "protected", "fresh_git", "held", "cgroup", "ready",
               "run_id")

    def __init__(self, args: list[str], lock_fds: dict[Path, int], roots: list[Path],
                 protected: list[Protected], fresh_git: list[Path] | None = None,
                 held: list[Held] | None = None, run_id: str = "") -> None:
        self.args = args
        self.run_id = run_id  # marks this run's bwrap (``corral.sandbox.leftovers``)
        self.lock_fds = lock_fds
        self.roots = roots
        self.protected = protected
        self.fresh_git: list[Path] = [] if fresh_git is None else fresh_git
        self.held: list[Held] = [] if held is None else held
        self.cgroup: str | None = None  # the pids cgroup, removed with the placeholders
        self.ready: pidcap.Ready | None = None  # the thread in it that started the run

    def pending(self, key: Path) -> list[Path | Held]:
        """What to remove once ``key`` is no longer shared with another run."""
        out: list[Path | Held] = [
            p.path for p in self.protected
            if (not p.exists or p.placeholder) and _key(p.path, self.roots) == key]
        return out + [h for h in self.held if h.locked.path.parent == key]


def _key(path: Path, roots: Sequence[Path]) -> Path:
    """The root a protected path belongs to (the most specific)."""
    return max((r for r in roots if is_under(path, r)), key=lambda r: len(r.parts), default=path)


def _ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``/a/b``, ``/a``, ``/`` (strings: pathlib's ``parents`` is far slower)."""
    out = []
    while (i := path.rfind("/")) > 0:
        path = path[:i]
        out.append(path)
    return [*out, "/"] if path != "/" else out


def _popen_starter(popen: dict[str, Any]) -> Starter[SandboxedProcess]:
    """Start with ``SandboxedProcess`` (a ``Popen``), ``popen`` its further arguments."""
    from corral.sandbox.popen import SandboxedProcess

    def start(cmd: list[str], env: dict[str, str], fds: tuple[int, ...],
              workdir: str | None) -> SandboxedProcess:
        return SandboxedProcess(cmd, env=env, pass_fds=fds, cwd=workdir, **popen)

    return start


def _direct_starter(capture_stderr: bool) -> Starter[DirectProcess | SandboxedProcess]:
    """For a process that runs one command and ends, inheriting its stdin and stdout: bwrap
    started with ``posix_spawn`` (``DirectProcess``). A command run without bwrap (full
    access, an accepted weaker mode: a working directory to enter, a PATH to search) gets
    the ``Popen``."""

    def start(cmd: list[str], env: dict[str, str], fds: tuple[int, ...],
              workdir: str | None) -> DirectProcess | SandboxedProcess:
        if workdir is None and os.path.isabs(cmd[0]):
            return DirectProcess(cmd, env, fds, capture_stderr)
        import subprocess

        popen = {"stderr": subprocess.PIPE if capture_stderr else None}
        return _popen_starter(popen)(cmd, env, fds, workdir)

    return start


def _on_main_thread() -> bool:
    import threading  # only for a terminal shared through the managed proxy

    return threading.current_thread() is threading.main_thread()


def _which(name: str) -> str:
    import shutil

    return shutil.which(name) or ""


def _probe_key(bwrap: str) -> str | None:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        st = os.stat(bwrap)
    except OSError:
        return None
    return f"{boot} {bwrap} {st.st_mtime_ns} {st.st_ino}\n"


def _probe_bwrap(bwrap: str, cache: Path | None = None) -> str | None:
    """None if bwrap can create the namespaces we need, else what is wrong.

    A success is remembered until reboot or a new bwrap (a failure never is), so a cold
    ``corral sandbox`` does not pay for a second bwrap run. If namespaces are taken away later,
    bwrap itself fails and the command does not run: still never unsandboxed.
    """
    if not os.path.exists(bwrap):
        import shutil  # ~5 ms (bz2, lzma): only when bwrap is not where the plan says

        found = shutil.which("bwrap")
        if found is None:
            return "bubblewrap (bwrap) is not installed"
        bwrap = found
    key = _probe_key(bwrap)
    if cache is not None and key is not None:
        try:
            if cache.read_text() == key:
                return None
        except OSError:
            pass
    import subprocess  # only here: the probe's result is cached (a one-shot run skips both)

    try:
        p = subprocess.run(
            [bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/",
             "--disable-userns", "--", "/bin/true"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not run ({exc})"
    if p.returncode != 0:
        msg = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
        return f"bubblewrap cannot create user namespaces: {msg}"
    if cache is not None and key is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(key)
        except OSError:
            pass
    return None


class Sandbox:
    """A reusable launcher for one plan. Thread-safe for concurrent ``spawn`` calls."""

    _probe_cache: ClassVar[dict[str, str | None]] = {}

    def __init__(self, plan: SandboxPlan, *, probe: bool = True,
                 defer_cleanup: bool = True, one_shot: bool = False) -> None:
        """``defer_cleanup``: remove a run's placeholders in a background thread after it
        exits (rmdir can take milliseconds); ``close()`` (also run at exit) waits for them.
        ``one_shot``: the process ends after its run (``corral sandbox``): a pids cgroup that
        is not empty yet is not waited for (~10 ms for the kernel to let its last tasks go);
        a later run's sweep removes it (``pidcap._remove_stale``)."""
        self.plan = plan
        self._defer = defer_cleanup
        self._one_shot = one_shot
        self._pending: set[Any] = set()
        self._pending_lock = _thread.allocate_lock()
        self._atexit = False
        self.weaker_mode: str | None = None
        self.bwrap = plan.bwrap if os.path.exists(plan.bwrap) else _which("bwrap")
        self._bpf: bytes | None = None
        self._strict_bpf: bytes | None = None
        self._pidcap: tuple[pidcap.Mechanism, int] | None = None
        self._spawned = False
        self._refilled = False
        self._static = normalise(list(plan.entries))
        self._roots = [e.path for e in self._static
                       if e.access is Access.WRITE and e.path != ROOT]
        self._home = Path(os.path.expanduser("~"))
        self._tmp_roots = {Path("/tmp")}
        if os.environ.get("TMPDIR"):
            self._tmp_roots.add(Path(os.path.normpath(os.environ["TMPDIR"])))
        if plan.full_access:
            self.weaker_mode = None  # explicit :danger-full-access, not a fallback
            return
        if sys.platform == "darwin":
            from corral.sandbox.seatbelt import SANDBOX_EXEC

            if not os.path.exists(SANDBOX_EXEC):
                self._weaker_or_refuse("unsandboxed", f"{SANDBOX_EXEC} is missing",
                                       "sandbox-exec ships with macOS")
            return
        if sys.platform != "linux":
            self._weaker_or_refuse(
                "unsandboxed", f"no sandbox backend for {sys.platform}",
                "run corral on Linux or macOS",
            )
            return
        if probe:
            if self.bwrap not in Sandbox._probe_cache:
                Sandbox._probe_cache[self.bwrap] = _probe_bwrap(
                    self.bwrap or plan.bwrap, plan.corral_home / "state" / "bwrap-probe")
            problem = Sandbox._probe_cache[self.bwrap]
            if problem is not None:
                self._weaker_or_refuse(
                    "unsandboxed", problem,
                    "apt-get install bubblewrap; allow unprivileged user namespaces "
                    "(sysctl kernel.unprivileged_userns_clone=1, "
                    "kernel.apparmor_restrict_unprivileged_userns=0)",
                )
                return
        try:
            cache = plan.corral_home / "state" / "seccomp"
            if plan.network.mode is NetworkMode.PROXY:
                # outer filter lets proxyinit reach the proxy socket; the command gets the
                # strict proxy filter stacked on top (no AF_UNIX socket())
                self._bpf = build_bpf(plan.network.mode, cache, allow_unix=True)
                self._strict_bpf = build_bpf(plan.network.mode, cache)
            else:
                self._bpf = build_bpf(plan.network.mode, cache)
        except CorralError as exc:
            self._weaker_or_refuse("no-seccomp", exc.message, exc.hint or "")
            if plan.keep_terminal:
                print("corral: sandbox: the terminal stays detached (new session): without the "
                      "seccomp filter, keystroke injection (TIOCSTI) could not be blocked",
                      file=sys.stderr)
        self._pidcap = pidcap.cap_for(plan.max_processes)

    def _weaker_or_refuse(self, mode: str, problem: str, fix: str) -> None:
        if mode in self.plan.allow_weaker or (
            mode == "no-seccomp" and "unsandboxed" in self.plan.allow_weaker
        ):
            self.weaker_mode = mode
            return
        what = "unsandboxed" if mode == "unsandboxed" else "without the seccomp filter"
        raise CorralError(
            "sandbox", f"refusing to run {what}: {problem}",
            f"{fix}; or accept a weaker mode with sandbox.allow_weaker = [\"{mode}\"]",
        )

    # -- layout --------------------------------------------------------------------------

    def _dynamic_entries(self) -> list[FsEntry]:
        out: list[FsEntry] = []
        if not self.plan.deny_read_globs:
            return out
        for pattern in self.plan.deny_read_globs:
            for hit in iglob(pattern):
                out.append(FsEntry(Path(os.path.normpath(hit)), Access.DENY, literal=False))
        return out

    def _protected(self, roots: Sequence[Path]) -> list[Protected]:
        out: list[Protected] = []
        for root in roots:
            # no placeholders in shared temp dirs: existing protected paths only
            ph = root not in self._tmp_roots
            for p in protected_paths(root, placeholders=ph, home=self._home):
                if p.path not in self.plan.explicit_writes:  # explicit write overrides
                    out.append(p)
        return out

    def layout(self) -> _Layout:
        """The bwrap arguments for one spawn (mount order = most specific wins)."""
        plan = self.plan
        roots = [r for r in self._roots if os.path.isdir(r)]
        prot = self._protected(roots)
        keys = {_key(p.path, roots) for p in prot if not p.exists or p.placeholder}
        # Locked paths: the lock on each parent is taken before a placeholder is made in it, so
        # a run ending meanwhile cannot remove one this run is about to mount.
        locked = tuple(lk for lk in plan.locked if lk.path not in plan.explicit_writes)
        parents = {lk.path.parent for lk in locked}
        lock_fds = self._lock_roots(sorted(keys | parents))
        held: list[Held] = []
        try:
            hold(locked, [e.path for e in self._static if e.access is Access.WRITE], held)
        except BaseException:
            self._cleanup(_Layout([], lock_fds, roots, [], held=held))
            raise
        for key in parents - keys - {h.locked.path.parent for h in held}:
            if key in lock_fds:  # nothing of ours there: no need to hold it
                os.close(lock_fds.pop(key))
        for p in prot:
            if not p.exists:
                create_placeholder(p.path)
        dyn = self._dynamic_entries()
        dyn += [FsEntry(p.path, Access.WRITE if p.pin else Access.READ, protected=True)
                for p in prot]
        dyn += [FsEntry(lk.path, Access.READ, protected=True) for lk in locked
                if os.path.lexists(lk.path)]
        entries = normalise([*self._static, *dyn]) if dyn else self._static
        args: list[str] = []
        if plan.root_readable:
            args += ["--ro-bind", "/", "/"]
        else:
            args += ["--tmpfs", "/"]
            for d in _MINIMAL_RO:
                args += ["--ro-bind-try", d, d]
        run_id = new_run_id()
        args += ["--dev", "/dev", "--proc", "/proc", *marker_args(run_id)]
        # denied directories with something re-opened below them (parents walked, not pairs:
        # the credential catalogue brings over a hundred deny entries)
        deny_dirs = {str(e.path) for e in entries if e.access is Access.DENY}
        reopened = {a for e in entries if e.access is not Access.DENY
                    for a in _ancestors(str(e.path)) if a in deny_dirs}
        remount: list[str] = []
        for e in entries:
            path = str(e.path)
            if path == "/":
                if e.access is Access.WRITE:
                    args += ["--bind", "/", "/"]
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue  # nothing there: nothing to bind, nothing to hide
            if e.access is Access.DENY:
                if stat.S_ISLNK(st.st_mode):
                    path = os.path.realpath(path)
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue
                if stat.S_ISDIR(st.st_mode):
                    args += ["--perms", "0111" if str(e.path) in reopened else "0000",
                             "--tmpfs", path]
                    remount.append(path)
                else:
                    args += ["--ro-bind", "/dev/null", path]
            else:
                args += ["--bind" if e.access is Access.WRITE else "--ro-bind", path, path]
        for path in remount:
            args += ["--remount-ro", path]
        fresh = [r for r in roots if r not in self._tmp_roots and not os.path.lexists(r / ".git")]
        return _Layout(args, lock_fds, roots, prot, fresh, held, run_id)

    def _lock_roots(self, roots: Sequence[Path]) -> dict[Path, int]:
        """Shared locks, one per root (or locked path's directory) with placeholders: cleanup
        removes placeholders only when no other sandbox run is using that directory."""
        fds: dict[Path, int] = {}
        lockdir = self.plan.corral_home / "state" / "sandbox-locks"
        try:
            lockdir.mkdir(parents=True, exist_ok=True)
        except OSError:
            return fds
        for root in roots:
            name = str(root).replace("%", "%25").replace("/", "%2F")
            if len(name) > 200:
                import hashlib

                name = hashlib.sha256(name.encode()).hexdigest()
            try:
                fd = os.open(lockdir / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                continue
            fcntl.flock(fd, fcntl.LOCK_SH)
            fds[root] = fd
        return fds

    def _after(self, layout: _Layout) -> None:
        if not self._defer:
            self._cleanup(layout)
            return
        import threading

        def work() -> None:
            try:
                self._cleanup(layout)
            finally:
                with self._pending_lock:
                    self._pending.discard(t)

        t = threading.Thread(target=work, name="corral-sandbox-cleanup", daemon=True)
        with self._pending_lock:
            self._pending.add(t)
            if not self._atexit:
                import atexit

                atexit.register(self.close)
                self._atexit = True
        t.start()

    def close(self) -> None:
        """Wait for pending placeholder cleanups; let go of a cgroup prepared for a next spawn
        (``pidcap.prepare``, after this sandbox's second spawn) that will not come."""
        if self._refilled:
            self._refilled = False
            pidcap.discard(wait=True)
        while True:
            with self._pending_lock:
                threads = list(self._pending)
            if not threads:
                return
            for t in threads:
                t.join()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cleanup(self, layout: _Layout) -> None:
        cg, layout.cgroup = layout.cgroup, None
        ready, layout.ready = layout.ready, None
        if ready is not None:
            ready.release(wait=not self._one_shot)
        if cg is not None:
            pidcap.end_cgroup(cg, wait=0.0 if self._one_shot else 2.0)
        if not layout.lock_fds:
            return
        fds, layout.lock_fds = layout.lock_fds, {}
        for key, fd in fds.items():
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # another run still uses this directory; it cleans up later
                continue
            try:
                for item in layout.pending(key):
                    if isinstance(item, Path):
                        remove_placeholder(item)
                    elif (problem := release(item)) is not None:
                        print(problem, file=sys.stderr)
            finally:
                os.close(fd)

    # -- spawning ------------------------------------------------------------------------

    def _terminal_kept(self) -> bool:
        return self.plan.keep_terminal and self._bpf is not None

    def command(self, argv: Sequence[str], cwd: str | Path | None = None) -> tuple[list[str],
                                                                                  _Layout | None]:
        if not argv:
            raise CorralError("sandbox", "no command given", "corral sandbox -- CMD [ARGS...]")
        if self.plan.full_access or self.weaker_mode == "unsandboxed":
            return list(argv), None
        if sys.platform == "darwin":
            from corral.sandbox.seatbelt import command as seatbelt_command

            return seatbelt_command(self.plan, list(argv)), None
        lay = self.layout()
        net = ["--unshare-net"] if self.plan.network.mode is not NetworkMode.HOST else []
        # A new session detaches the controlling terminal, so nothing inside can push keystrokes
        # into it; with the seccomp filter (TIOCSTI/TIOCLINUX refused) a TUI may keep it.
        session = [] if self._terminal_kept() else ["--new-session"]
        head = [
            self.bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", *net, "--disable-userns", "--die-with-parent",
            *session, "--cap-drop", "ALL", "--hostname", "corral-sandbox",
        ]
        chdir = str(Path(cwd) if cwd is not None else self.plan.cwd)
        extra: list[str] = []
        net_plan = self.plan.network
        if net_plan.mode is NetworkMode.PROXY and net_plan.proxy_socket is not None:
            extra = ["--dir", "/dev/corral", "--bind", str(net_plan.proxy_socket), PROXY_SOCKET]
            ports = [a for p in net_plan.bridge_ports for a in ("--port", str(p))]
            for port, host_sock in net_plan.extra_bridges:
                inside = f"/dev/corral/bridge-{port}.sock"
                extra += ["--bind", str(host_sock), inside]
                ports += ["--bridge", f"{port}={inside}"]
            for name, host_file in net_plan.ro_files:  # the credential broker's CA, logins
                dest = name if name.startswith("/") else f"/dev/corral/{name}"
                extra += ["--ro-bind", str(host_file), dest]
            if self.plan.exec_socket is not None:
                extra += ["--bind", str(self.plan.exec_socket), EXEC_SOCKET]
                ports += ["--exec-notify", EXEC_SOCKET]
            # -I -S: stdlib only, nothing from the workspace or PYTHON* variables can shadow it
            argv = [sys.executable, "-I", "-S", str(Path(__file__).with_name("proxyinit.py")),
                    *ports, "--to", PROXY_SOCKET, "--bpf-fd", "{strict}", "--", *argv]
        elif self.plan.exec_socket is not None:
            raise CorralError("sandbox", "the exec boundary needs the sandbox's init, which runs "
                              "only with the managed proxy (network mode proxy)")
        if self._pidcap is not None and self._pidcap[0].kind == "rlimit":
            argv = pidcap.rlimit_argv(self._pidcap[1], list(argv))
        return [*head, *lay.args, *extra, "--chdir", chdir, "--", *argv], lay

    def spawn(
        self,
        argv: Sequence[str],
        cwd: str | Path | None = None,
        env_extra: Mapping[str, str] | None = None,
        **popen: Any,
    ) -> SandboxedProcess:
        """Start ``argv`` in the sandbox; extra keyword arguments go to ``subprocess.Popen``.

        ``env_extra`` is for corral's own per-call values (CORRAL_SESSION_ID, CORRAL_CALL_ID,
        TRACEPARENT); they bypass the environment policy.
        """
        return self._launch(argv, cwd, env_extra, _popen_starter(popen))

    def _launch(self, argv: Sequence[str], cwd: str | Path | None,
                env_extra: Mapping[str, str] | None, start: Starter[P]) -> P:
        """Everything a spawn is, around ``start`` (which makes the process from its command
        line, environment, descriptors to pass and working directory): environment policy,
        layout and placeholders, seccomp descriptors, pids cgroup or run note, signals held
        while a terminal is shared, and the run's duties once reaped (``AfterExit``)."""
        extra = dict(self.plan.network.proxy_env)  # proxy variables, once netproxy is wired
        extra.update(env_extra or {})
        env = build_env(self.plan.env_policy, os.environ, extra, sandboxed=not (
            self.plan.full_access or self.weaker_mode == "unsandboxed"))
        cmd, lay = self.command(argv, cwd)
        fds: tuple[int, ...] = ()
        if lay is not None and self._bpf is not None:
            fd = bpf_fd(self._bpf)
            fds = (fd,)
            cmd = [cmd[0], "--seccomp", str(fd), *cmd[1:]]
            if self._strict_bpf is not None:
                sfd = bpf_fd(self._strict_bpf)
                fds = (fd, sfd)
                cmd = [str(sfd) if a == "{strict}" else a for a in cmd]
        cmd = ["none" if a == "{strict}" else a for a in cmd]  # accepted weaker 'no-seccomp'
        cgroup: str | None = None
        ready: pidcap.Ready | None = None  # a thread in the cgroup, to start bwrap from
        if lay is not None and self._pidcap is not None and self._pidcap[0].base is not None:
            (mech, limit), base = self._pidcap, self._pidcap[0].base
            try:
                if mech.threads:
                    ready = pidcap.take(base, limit)
                    cgroup = ready.cgroup
                else:
                    cgroup = pidcap.new_cgroup(base, limit)
                    cmd = pidcap.enter_cgroup_argv(cgroup, cmd)
            except OSError as exc:
                if (refusal := self._uncapped(exc)) is not None:
                    for fd in fds:
                        os.close(fd)
                    self._cleanup(lay)
                    raise refusal from None

        # no cgroup to hold what a killed run leaves: the run is noted (``leftovers``)
        run_note = self._note_run(lay) if lay is not None and cgroup is None else None

        # Sharing the terminal, bwrap and proxyinit are in its foreground process group: they
        # start with Ctrl-C / Ctrl-\ ignored so those reach only the command, which proxyinit
        # starts with the usual dispositions (without proxyinit, the command would inherit them).
        shield = (self._terminal_kept() and lay is not None
                  and self.plan.network.mode is NetworkMode.PROXY and _on_main_thread())
        held = {s: signal.signal(s, signal.SIG_IGN)
                for s in (signal.SIGINT, signal.SIGQUIT)} if shield else {}

        workdir = str(cwd) if lay is None and cwd is not None else None

        def begin() -> P:
            return start(cmd, env, fds, workdir)

        try:
            try:
                proc = begin() if ready is None else ready.run(begin)
            except pidcap.NotEntered as exc:  # the job did not run
                if (refusal := self._uncapped(exc)) is not None:
                    raise refusal from None
                if cgroup is not None:
                    pidcap.remove_cgroup(cgroup, 0)
                cgroup = ready = None
                if lay is not None:
                    run_note = self._note_run(lay)
                proc = begin()
        except BaseException:
            if lay is not None:
                self._cleanup(lay)
            if cgroup is not None:
                pidcap.remove_cgroup(cgroup, 0)
            if run_note is not None:
                leftovers.unregister(run_note)
            raise
        finally:
            for sig, handler in held.items():
                signal.signal(sig, handler)
            for fd in fds:
                os.close(fd)
        if ready is not None:
            if self._spawned:  # more spawns to come: the next cgroup's wait passes meanwhile
                pidcap.prepare(ready.limit)
                self._refilled = True
            self._spawned = True
        if lay is not None and (lay.lock_fds or cgroup is not None):
            lay.cgroup = cgroup
            lay.ready = ready
            proc._corral_cleanup = lambda: self._after(lay)
        proc.corral_fresh_git = lay.fresh_git if lay is not None else []
        proc.corral_cgroup = cgroup
        proc.corral_run_id = lay.run_id if lay is not None else ""
        proc.corral_run_note = run_note
        return proc

    def _note_run(self, lay: _Layout) -> str | None:
        """Note a run that has no cgroup (``leftovers.note``); the note's path."""
        return leftovers.note(str(self.plan.corral_home / "state" / "sandbox-runs"), lay.run_id)

    def _uncapped(self, exc: OSError) -> CorralError | None:
        """No cgroup for this spawn: the refusal if the cap was asked for, else None after a
        warning."""
        assert self._pidcap is not None
        why = (f"cannot cap processes at {self._pidcap[1]}: a pids cgroup could not be "
               f"made in {self._pidcap[0].base} ({exc.strerror})")
        if self.plan.max_processes is not None:  # asked for: refused without it
            return CorralError("sandbox", why, "set sandbox.max_processes = 0 to run "
                               "without a cap")
        print(f"corral: sandbox: warning: {why}; running without the default cap",
              file=sys.stderr)
        return None

    def run(
        self,
        argv: Sequence[str],
        cwd: str | Path | None = None,
        env_extra: Mapping[str, str] | None = None,
        *,
        stdin: int | IO[Any] | None = None,
        stdout: int | IO[Any] | None = None,
        stderr_sink: IO[str] | None = None,
        explain: bool = True,
    ) -> SandboxResult:
        """Run to completion. stderr is passed on to ``stderr_sink`` (default: our stderr)
        while being scanned for sandbox denials, which come back as ``violations``."""
        sink = stderr_sink if stderr_sink is not None else sys.stderr
        proc: DirectProcess | SandboxedProcess
        if self._one_shot and stdin is None and stdout is None:
            proc = self._launch(argv, cwd, env_extra, _direct_starter(explain))
        else:
            import subprocess

            proc = self.spawn(argv, cwd, env_extra, stdin=stdin, stdout=stdout,
                              stderr=subprocess.PIPE if explain else None)
        lines: list[str] = []
        if explain and proc.stderr is not None and self._one_shot:
            rc = tee_then_wait(proc, sink, lines)  # no second thread to start (~1-3 ms)
        elif explain and proc.stderr is not None:
            import threading

            t = threading.Thread(target=tee, args=(proc.stderr, sink, lines), daemon=True)
            t.start()
            rc = wait_interruptible(proc)
            t.join()
        else:
            rc = wait_interruptible(proc)
        text = "".join(lines)
        warnings: list[str] = []
        # a repository the command created: only then gitguard (~10 ms of imports) looks at it
        created = [root for root in proc.corral_fresh_git if os.path.isdir(root / ".git")]
        if created:
            from corral.sandbox.gitguard import audit_new_repo

            warnings = [w for root in created for w in audit_new_repo(root)]
        violations: list[Violation] = []
        if explain and rc != 0:
            from corral.sandbox.feedback import explain_stderr

            violations = explain_stderr(text, self.plan, Path(cwd) if cwd else self.plan.cwd)
        return SandboxResult(rc, self.weaker_mode, violations, text if explain else None,
                             warnings)
