"""A cap on the tasks (processes and threads) of one sandboxed command: a fork bomb inside must
not fill the host's process table.

Two mechanisms, the first that works here:

- a **pids cgroup** per spawn (cgroup v1 ``pids`` hierarchy, or cgroup v2 where ``pids`` is
  enabled for the children of this process's cgroup): ``pids.max`` counts every task in it,
  whatever its uid, root included. Nothing forks before it is counted: with cgroup v1 a thread
  of ours moves itself into the cgroup and starts bwrap from there (``Ready``); with v2, where a
  thread cannot leave its process's cgroup, bwrap is started through ``/bin/sh`` that first
  moves itself in;
- **RLIMIT_NPROC**, lowered *inside* the sandbox's user namespace by ``prlimit`` (the kernel
  counts it per user namespace since Linux 5.14, so only the sandbox's own tasks count; set
  before bwrap it would also count the user's tasks on the host). It never binds real root
  (the kernel exempts uid 0), so as root only a cgroup works.

``probe()`` says which one applies, or why none does (``corral doctor`` shows it). A cap the
user set explicitly that cannot be enforced refuses the spawn; the default one is then off.
"""

from __future__ import annotations

import _thread
import itertools
import os
import time

from corral.record import Frozen
from corral.sandbox.leftovers import kill_if, process_start

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    T = TypeVar("T")

DEFAULT_MAX = 4096
_PREFIX = "corral-"
_counter = itertools.count()


class Mechanism(Frozen):
    """``kind``: "cgroup" | "rlimit" | ""; ``base``: the cgroup directory children are made in;
    ``why_not``: when kind == ""; ``threads``: a single thread can be moved into a child cgroup
    (cgroup v1), so a spawn needs no shell to enter it."""

    _fields = ("kind", "base", "why_not", "threads")
    kind: str
    base: str | None
    why_not: str
    threads: bool

    def __init__(self, kind: str, base: str | None = None, why_not: str = "",
                 threads: bool = False) -> None:
        self._set(kind=kind, base=base, why_not=why_not, threads=threads)

    def describe(self) -> str:
        if self.kind == "cgroup":
            return f"pids cgroup under {self.base}"
        if self.kind == "rlimit":
            return "RLIMIT_NPROC inside the sandbox's user namespace (prlimit)"
        return self.why_not


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, fs type, super options) from /proc/self/mountinfo."""
    out: list[tuple[str, str, str]] = []
    text = _read("/proc/self/mountinfo")
    if text is None:
        return out
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        if len(f) >= 5 and len(r) >= 3:
            out.append((f[4].replace("\\040", " "), r[0], r[2]))
    return out


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _cgroup_candidates() -> list[tuple[str, bool]]:
    """(cgroup directory, is cgroup v1) where pids can be capped, v1 first."""
    text = _read("/proc/self/cgroup")
    if text is None:
        return []
    lines = text.splitlines()
    mounts = _mounts()
    out: list[tuple[str, bool]] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for point, fstype, opts in mounts:
            if fstype == "cgroup" and "pids" in controllers.split(",") and \
                    "pids" in opts.split(","):
                out.append((point + path.rstrip("/"), True))
            elif fstype == "cgroup2" and controllers == "":
                base = point + path.rstrip("/")
                if "pids" in (_read(f"{base}/cgroup.subtree_control") or "").split():
                    out.append((base, False))
    return sorted(out, key=lambda c: not c[1])


def _works(base: str) -> bool:
    probe = f"{base}/{_PREFIX}probe-{os.getpid()}"
    try:
        os.mkdir(probe)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        return os.path.exists(f"{probe}/pids.max")
    finally:
        _rmdir_quietly(probe)


def _rmdir_quietly(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        nums = [int(x) for x in os.uname().release.split("-")[0].split(".")[:2]]
    except ValueError:
        return False
    return tuple(nums) >= (major, minor)


_probed: Mechanism | None = None


def probe() -> Mechanism:
    """Which mechanism caps processes on this host (cached per process)."""
    global _probed
    if _probed is not None:
        return _probed
    for base, v1 in _cgroup_candidates():
        if _works(base):
            _remove_stale(base)
            _probed = Mechanism("cgroup", base, threads=v1)
            return _probed
    if os.geteuid() == 0:
        why = ("no writable pids cgroup, and RLIMIT_NPROC does not bind root "
               "(run as a regular user, or delegate a cgroup with the pids controller)")
    elif not _kernel_at_least(5, 14):
        why = (f"no writable pids cgroup, and Linux {os.uname().release} counts RLIMIT_NPROC "
               "across the whole user, not per sandbox (needs 5.14)")
    elif _which("prlimit") is None:
        why = "no writable pids cgroup, and prlimit (util-linux) is not installed"
    else:
        _probed = Mechanism("rlimit")
        return _probed
    _probed = Mechanism("", None, why)
    return _probed


def _which(name: str) -> str | None:
    import shutil  # ~5 ms: not on the common path (a cgroup found first)

    return shutil.which(name)


def _remove_stale(base: str) -> None:
    """Cgroups left by a corral that is gone: what still runs in one is a sandbox that outlived
    its supervisor (see ``end_cgroup``) and is killed; an empty one is removed (one whose
    tasks are still leaving is left for a later sweep)."""
    try:
        entries = list(os.scandir(base))
    except OSError:
        return
    for e in entries:
        # PID-START-N a run's, probe-PID a probe's (``_works``) whose corral was killed
        if e.name.startswith(_PREFIX) and e.is_dir(follow_symlinks=False) and \
                _owner_gone(e.name[len(_PREFIX):].removeprefix("probe-").split("-")):
            try:
                end_cgroup(e.path, wait=0.0)
            except OSError:
                pass


def cap_for(limit: int | None) -> tuple[Mechanism, int] | None:
    """The cap to apply at each spawn: the default where this host can enforce one; a limit
    the user set, or a refusal (CorralError) when it cannot be enforced."""
    n = DEFAULT_MAX if limit is None else limit
    if n == 0:
        return None
    mech = probe()
    if mech.kind:
        return mech, n
    if limit is None:
        return None  # the default is best effort; corral doctor says it is not enforced
    from corral.errors import CorralError

    raise CorralError("sandbox", f"cannot cap processes at {n}: {mech.why_not}",
                      "set sandbox.max_processes = 0 to run without a cap")


def _owner_gone(name: list[str]) -> bool:
    """Whether the corral named by a cgroup's ``PID-START-N`` (or older ``PID-N``) is gone:
    by pid and start time, so a pid the kernel gave to another process meanwhile does not keep
    a dead corral's cgroup, and what still runs in it, alive."""
    if not name[0].isdigit():
        return False
    start = process_start(name[0])
    return start is None or (len(name) == 3 and start != name[1])


def _owner_name() -> str:
    """``PID-START`` of this process (``PID`` alone if its start time cannot be read)."""
    start = process_start("self")
    return f"{os.getpid()}-{start}" if start is not None else str(os.getpid())


def new_cgroup(base: str, limit: int) -> str:
    """A fresh cgroup with ``pids.max`` = ``limit``; raises OSError if it cannot be made."""
    cg = f"{base}/{_PREFIX}{_owner_name()}-{next(_counter)}"
    os.mkdir(cg)
    try:
        _write(f"{cg}/pids.max", f"{limit}\n")
    except OSError:
        _rmdir_quietly(cg)
        raise
    return cg


def enter_cgroup_argv(cg: str, argv: list[str]) -> list[str]:
    """``argv`` started by a shell that first moves itself into ``cg``."""
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', f"{cg}/cgroup.procs", *argv]


def rlimit_argv(limit: int, argv: list[str]) -> list[str]:
    prlimit = _which("prlimit") or "/usr/bin/prlimit"
    return [prlimit, f"--nproc={limit}:{limit}", "--", *argv]


def remove_cgroup(cg: str, wait: float = 2.0) -> None:
    """rmdir once the last task is gone (killed tasks of the pid namespace linger briefly)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.rmdir(cg)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return  # left for _remove_stale of a later run
            time.sleep(0.002)


def _procs(cg: str) -> list[int]:
    try:
        return [int(p) for p in (_read(f"{cg}/cgroup.procs") or "").split()]
    except ValueError:
        return []


def kill_tasks(cg: str) -> int:
    """SIGKILL every process in ``cg`` but this one (a thread of ours may still be leaving it);
    how many were signalled. Each is held by a pidfd and seen in ``cg`` again before the
    signal, so a pid the kernel reused meanwhile for another process is never hit."""
    me = os.getpid()
    return sum(kill_if(pid, lambda p: p in _procs(cg)) for pid in _procs(cg)
               if pid != me)


def end_cgroup(cg: str, wait: float = 2.0) -> int:
    """End a finished run's cgroup: kill what is still in it, then remove it (waiting up to
    ``wait`` seconds for the killed tasks to leave; a later run's sweep removes it otherwise).
    Returns how many processes were left and killed.

    Something can be left: bubblewrap's ``--die-with-parent`` misses a sandbox whose outer
    bwrap is killed in its first milliseconds (the namespace's init then keeps running the
    command, reparented to the host's init); the cgroup still holds it, so it ends here."""
    try:
        os.rmdir(cg)
        return 0
    except FileNotFoundError:
        return 0
    except OSError:
        pass
    killed = kill_tasks(cg)
    remove_cgroup(cg, wait)
    return killed


class NotEntered(OSError):
    """The thread could not move into the cgroup."""


class Latch:
    """``threading.Event``'s set and wait, on one ``_thread`` lock (held while unset): this
    module is the first a one-shot run imports, and ``threading`` (~0.5 ms here) is needed by
    nothing else there. Meant for one waiter at a time; any number may set it."""

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()

    def set(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # set already
            pass

    def is_set(self) -> bool:
        return not self._lock.locked()

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False if ``timeout`` seconds passed first."""
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        try:
            self._lock.release()  # still set for whoever waits next
        except RuntimeError:  # a set() in between already released it
            pass
        return True


class Ready:
    """A fresh pids cgroup with a thread of ours already moved into it (cgroup v1 only: v2
    keeps a process's threads in one cgroup). ``run(job)`` calls ``job`` on that thread, so
    the processes it starts are born in the cgroup: counted from their first fork, with no
    shell to move them in. The thread then waits for ``release()``: it must outlive what it
    started, whose ``--die-with-parent`` (PR_SET_PDEATHSIG) fires when the *thread* that forked
    it exits. It is one of the cgroup's tasks meanwhile, so it takes one of ``pids.max``.

    Moving a task into a cgroup waits for an RCU grace period (the kernel's
    ``cgroup_threadgroup_rwsem``): ~10 ms here, every time. Made early (``prepare``), that wait
    passes while the caller still plans the spawn, instead of in front of it."""

    def __init__(self, base: str, limit: int) -> None:
        self.base = base
        self.cgroup = new_cgroup(base, limit)
        self.limit = limit
        self._go = Latch()
        self._done = Latch()
        self._release = Latch()
        self._ended = Latch()  # the thread's last step (a daemon thread: exit does not wait)
        self._job: Callable[[], object] | None = None
        self._result: object = None
        self._error: BaseException | None = None
        _thread.start_new_thread(self._main, ())

    def _main(self) -> None:
        try:
            try:
                fd = os.open(f"{self.cgroup}/tasks", os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, f"{_thread.get_native_id()}\n".encode())
                finally:
                    os.close(fd)
            except OSError as exc:
                self._error = NotEntered(exc.errno, exc.strerror)
            self._go.wait()
            job = self._job
            if job is not None and self._error is None:
                try:
                    self._result = job()
                except BaseException as exc:  # handed to the caller of run()
                    self._error = exc
            self._done.set()
            self._release.wait()
        finally:
            self._ended.set()

    def run(self, job: Callable[[], T]) -> T:
        """``job()`` on the thread inside the cgroup; its exception is raised here, and
        ``NotEntered`` if the thread could not enter the cgroup (then ``job`` does not run).
        After a result, ``release()`` once what ``job`` started has been reaped."""
        self._job = job
        self._go.set()
        try:
            self._done.wait()
        finally:
            while not self._done.wait(1):  # interrupted: what the job started is still ours
                pass
        if self._error is not None:
            self.release()
            raise self._error
        return self._result  # type: ignore[return-value]

    def release(self, wait: bool = True) -> None:
        """Let the thread end (and leave the cgroup); ``wait`` for it."""
        self._release.set()
        self._go.set()
        if wait:
            self._ended.wait()

    def discard(self, wait: bool = False) -> None:
        """Not used: let the thread go; the cgroup is removed once empty (or by a later run's
        ``_remove_stale``). ``wait``: for the thread (at most the kernel's ~10 ms move), then
        remove the cgroup here."""
        self._release.set()
        self._go.set()
        if wait:
            self._ended.wait()
            remove_cgroup(self.cgroup)
        elif self._ended.is_set():
            _rmdir_quietly(self.cgroup)


_ready: Ready | None = None
_ready_lock = _thread.allocate_lock()
_at_exit = False


def prepare(limit: int = DEFAULT_MAX) -> None:
    """Start moving a thread into a fresh cgroup now, for this process's next spawn
    (``take``). Best effort: without a v1 pids cgroup, or if it cannot be made, nothing
    happens here and the spawn makes its own (and reports what fails)."""
    global _ready, _at_exit
    if limit == 0:
        return
    mech = probe()
    if mech.kind != "cgroup" or not mech.threads or mech.base is None:
        return
    with _ready_lock:
        if _ready is not None:
            return
        try:
            _ready = Ready(mech.base, limit)
        except OSError:
            return
        if _at_exit:
            return
        _at_exit = True
    import atexit

    atexit.register(discard)


def discard(wait: bool = False) -> None:
    """Let go of the prepared cgroup, if any (``Ready.discard``)."""
    global _ready
    with _ready_lock:
        r, _ready = _ready, None
    if r is not None:
        r.discard(wait)


def take(base: str, limit: int) -> Ready:
    """The prepared cgroup, with ``limit``, or a fresh one (raises OSError if it cannot be
    made)."""
    global _ready
    with _ready_lock:
        r, _ready = _ready, None
    if r is not None and r.base == base:
        if r.limit != limit:
            _write(f"{r.cgroup}/pids.max", f"{limit}\n")
            r.limit = limit
        return r
    if r is not None:
        r.discard()
    return Ready(base, limit)
