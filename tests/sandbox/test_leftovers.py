"""A sandbox never outlives its run, with or without a pids cgroup.

bubblewrap's --die-with-parent misses a sandbox whose outer bwrap is killed in its first
milliseconds (its init goes on running the command, reparented to the host's init). With a
cgroup the run's cgroup is emptied (tests/sandbox/test_pidcap.py); without one (the
RLIMIT_NPROC mechanism, or no cap), the run's marker on bwrap's command line finds it."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from corral.sandbox.leftovers import MARK_DIR
from tests.sandbox.conftest import Box


def _running(argv: list[str]) -> list[int]:
    """Host pids whose command line is exactly ``argv``."""
    want = ("\0".join(argv) + "\0").encode()
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{d}/cmdline").read_bytes() == want:
                    found.append(int(d))
    return found


def test_without_a_cgroup_a_run_killed_at_once_leaves_nothing_running(box: Box) -> None:
    marker = ["sleep", "7.4322"]
    sb = box.sandbox(max_processes=0)  # no cap: no cgroup to find what is left
    try:
        for delay in (0, 0, 0.001, 0.002, 0.003, 0.004, 0.005, 0.007) * 2:
            proc = sb.spawn(marker, box.ws)
            assert proc.corral_cgroup is None
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(10) == -signal.SIGKILL
        sb.close()
        time.sleep(0.2)  # a leftover would be running the command by now
        assert _running(marker) == []
    finally:
        for pid in _running(marker):
            os.kill(pid, signal.SIGKILL)


def test_the_marker_is_an_empty_directory_of_the_sandbox_own_dev(box: Box) -> None:
    """What marks a run is invisible outside it and changes nothing the command relies on."""
    r = box.sh(f"ls -d {MARK_DIR}*; ls -A {MARK_DIR}*")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(MARK_DIR) and len(r.stdout.splitlines()) == 1
    assert not any(n.startswith(".corral-run-") for n in os.listdir("/dev"))
