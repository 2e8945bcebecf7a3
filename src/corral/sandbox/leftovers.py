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


def kill_marked(run_id: str) -> int:
    """SIGKILL every process whose command line carries ``run_id``'s marker (killing a pid
    namespace's init ends everything in it); how many were signalled. Each is held by a pidfd
    and its command line read again before the signal, so a pid reused meanwhile is never
    hit."""
    import signal

    needle = b"\0" + (MARK_DIR + run_id).encode() + b"\0"
    me, n = os.getpid(), 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me or needle not in _cmdline(name):
            continue
        try:
            fd = os.pidfd_open(int(name))
        except OSError:
            continue  # already gone
        try:
            if needle in _cmdline(name):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                n += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return n
