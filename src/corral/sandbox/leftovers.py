"""Sandboxes that outlive their run, found and ended.

bubblewrap's ``--die-with-parent`` misses a sandbox whose outer bwrap is killed in its first
milliseconds (bubblewrap issue 633): the namespace's init sets its parent-death signal only
after the parent has let it go, so it is reparented and goes on running the command, confined
but no longer supervised. With a pids cgroup the run's cgroup still holds it
(``pidcap.end_cgroup``). Without one, every run's bwrap carries a marker on its command line
(an empty directory in the sandbox's own ``/dev``, which its init inherits), by which what is
left of a killed run is found in ``/proc`` and killed: by the corral that ran it when its bwrap
was killed, and by the next corral when the corral itself was killed while its bwrap was still
setting up (SIGKILL to corral alone, before bwrap's --die-with-parent is in force; killing the
whole process group also kills the namespace's init, which ends it): such a run is noted in
``$CORRAL_HOME/state/sandbox-runs`` before its bwrap starts, the note removed once it has been
reaped; a note whose corral is gone is swept at the next spawn (``sweep``).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

MARK_DIR = "/dev/.corral-run-"
_counter = 0


def new_run_id() -> str:
    """Unique among this host's runs: our pid, a counter, and random bits (a pid is reused)."""
    global _counter
    _counter += 1
    return f"{os.getpid()}-{_counter}-{os.urandom(4).hex()}"


def marker_args(run_id: str) -> list[str]:
    """The bwrap arguments that mark a run (after ``--dev /dev``)."""
    return ["--dir", MARK_DIR + run_id]


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"\0" + fh.read()
    except OSError:
        return b""


def kill_if(pid: int, still: Callable[[int], bool]) -> bool:
    """SIGKILL ``pid`` if ``still(pid)`` holds once it is held by a pidfd (a pid the kernel
    reused for another process after ``still`` was first seen true is then not hit); whether
    it was signalled."""
    import signal

    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False  # already gone
    try:
        if still(pid):
            signal.pidfd_send_signal(fd, signal.SIGKILL)
            return True
    except OSError:
        pass
    finally:
        os.close(fd)
    return False


def process_start(pid: str) -> str | None:
    """Process ``pid``'s start time (clock ticks after boot, /proc/PID/stat), None if there is
    no such process: with the pid, it names one process (a pid alone is reused: pid_max is
    32768 here)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _self_stamp() -> str:
    """This process as a note names it: pid namespace and start time (a pid alone is reused,
    and means another process in another namespace)."""
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    start = process_start("self")
    return f"{ns} {start}" if start is not None else ""


def _alive(pid: str, stamp: str) -> bool:
    """Whether the corral that wrote ``stamp`` as process ``pid`` still runs."""
    return process_start(pid) == stamp.split(" ")[-1]


def register(runs_dir: str, run_id: str, stamp: str) -> str | None:
    """Note a run before its bwrap starts (see the module's docstring), as this process's
    ``stamp``; the note's path, or None when it cannot be written (then only this corral can
    end what its run leaves)."""
    path = f"{runs_dir}/{run_id}"
    try:
        os.makedirs(runs_dir, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    try:
        os.write(fd, stamp.encode())
    finally:
        os.close(fd)
    return path


def unregister(path: str) -> None:
    """The run was reaped, and whatever its bwrap left was killed: drop its note."""
    try:
        os.unlink(path)
    except OSError:
        pass


def sweep(runs_dir: str, stamp: str) -> int:
    """End what is left of noted runs whose corral is gone, and drop their notes; how many
    processes were killed. Notes of another pid namespace than this process's ``stamp`` are
    left alone: its pids mean other processes here."""
    try:
        names = os.listdir(runs_dir)
    except OSError:
        return 0
    ns = stamp.split(" ")[0]
    if not ns:
        return 0  # no /proc to tell a live corral from a gone one, nor to find what is left
    killed = 0
    for name in names:
        pid = name.split("-")[0]
        try:
            with open(f"{runs_dir}/{name}") as fh:
                stamp = fh.read()
        except OSError:
            continue
        if not pid.isdigit() or stamp.split(" ")[0] != ns or _alive(pid, stamp):
            continue
        killed += kill_marked(name)
        unregister(f"{runs_dir}/{name}")
    return killed


def note(runs_dir: str, run_id: str) -> str | None:
    """Before a run without a cgroup: sweep what gone corrals left, then note this run."""
    stamp = _self_stamp()
    sweep(runs_dir, stamp)
    return register(runs_dir, run_id, stamp)


def kill_marked(run_id: str) -> int:
    """SIGKILL every process whose command line carries ``run_id``'s marker (killing a pid
    namespace's init ends everything in it); how many were signalled."""
    needle = b"\0" + (MARK_DIR + run_id).encode() + b"\0"
    me, n = os.getpid(), 0
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me and needle in _cmdline(name):
            n += kill_if(int(name), lambda pid: needle in _cmdline(str(pid)))
    return n
