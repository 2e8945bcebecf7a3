"""Sandboxes that outlive their run, found and ended.

bubblewrap's ``--die-with-parent`` misses a sandbox whose outer bwrap is killed in its first
milliseconds (bubblewrap issue 633): the namespace's init sets its parent-death signal only
after the parent has let it go, so it is reparented and goes on running the command, confined
but no longer supervised. With a pids cgroup the run's cgroup still holds it
(``pidcap.end_cgroup``). Without one, every run's bwrap carries a marker on its command line
(an empty directory in the sandbox's own ``/dev``, which its init inherits), by which what is
left of a killed run is found in ``/proc`` and killed.
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


def kill_marked(run_id: str) -> int:
    """SIGKILL every process whose command line carries ``run_id``'s marker (killing a pid
    namespace's init ends everything in it); how many were signalled."""
    needle = b"\0" + (MARK_DIR + run_id).encode() + b"\0"
    me, n = os.getpid(), 0
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me and needle in _cmdline(name):
            n += kill_if(int(name), lambda pid: needle in _cmdline(str(pid)))
    return n
