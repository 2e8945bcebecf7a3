"""A sandbox never outlives its run, with or without a pids cgroup.

bubblewrap's --die-with-parent misses a sandbox whose outer bwrap is killed in its first
milliseconds (its init goes on running the command, reparented to the host's init). With a
cgroup the run's cgroup is emptied (tests/sandbox/test_pidcap.py); without one (the
RLIMIT_NPROC mechanism, or no cap), the run's marker on bwrap's command line finds it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from corral.sandbox.leftovers import MARK_DIR
from tests.sandbox.conftest import Box, kill_at_once, running


def test_without_a_cgroup_a_run_killed_at_once_leaves_nothing_running(box: Box) -> None:
    cgroups = kill_at_once(box.sandbox(max_processes=0), ["sleep", "7.4322"], box.ws)
    assert cgroups == [None] * len(cgroups)  # no cap: no cgroup to find what is left


def test_the_marker_is_an_empty_directory_of_the_sandbox_own_dev(box: Box) -> None:
    """What marks a run is invisible outside it and changes nothing the command relies on."""
    r = box.sh(f"ls -d {MARK_DIR}*; ls -A {MARK_DIR}*")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(MARK_DIR) and len(r.stdout.splitlines()) == 1
    assert not any(n.startswith(".corral-run-") for n in os.listdir("/dev"))


def _bwrap_started(pid: int) -> bool:
    """Whether ``pid`` has a child that has exec'd bwrap."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return any(Path(f"/proc/{k}/comm").read_text().strip() == "bwrap" for k in kids)
    except OSError:
        return False


def test_a_corral_killed_in_its_bwrap_first_milliseconds_leaves_nothing_running(
        box: Box) -> None:
    """corral SIGKILLed (an agent's timeout, say) while its bwrap is still setting up: bwrap's
    --die-with-parent is not in force yet, so the sandbox ran on, unsupervised (here 18-20 of
    24 kills 0-11.5 ms after bwrap's exec did that). Without a cgroup to hold it, each next
    corral sweeps the run notes of gone corrals and kills what their marker finds."""
    argv = ["sleep", "7.4324"]
    cmd = [sys.executable, "-m", "corral", "-c", "sandbox.max_processes=0", "sandbox", "--",
           *argv]
    try:
        for delay in [i / 2000 for i in range(24)]:  # 0 to 11.5 ms after bwrap's exec
            corral = subprocess.Popen(cmd, cwd=box.ws, start_new_session=True,
                                      stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while not _bwrap_started(corral.pid) and time.monotonic() < deadline:
                time.sleep(0.0002)
            time.sleep(delay)
            corral.send_signal(signal.SIGKILL)
            corral.wait(10)
        notes = box.corral_home / "state" / "sandbox-runs"
        time.sleep(0.2)  # a leftover would be running the command by now
        left = running(argv)
        r = subprocess.run([sys.executable, "-m", "corral", "-c", "sandbox.max_processes=0",
                            "sandbox", "--", "true"], cwd=box.ws, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert running(argv) == [], f"left running after the sweep (before it: {left})"
        assert os.listdir(notes) == []  # every note swept, the last run's dropped
    finally:
        for pid in running(argv):
            os.kill(pid, signal.SIGKILL)


def test_the_sweep_ends_a_marked_leftover_of_a_gone_corral_and_nothing_else(
        box: Box, tmp_path: Path) -> None:
    """A note whose corral is gone: the process carrying its marker is killed, one carrying a
    live corral's marker, and a note of another pid namespace, are left alone."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    ns = os.readlink("/proc/self/ns/pid")
    notes = box.corral_home / "state" / "sandbox-runs"
    notes.mkdir(parents=True)
    dead_run, live_run, other_ns = (f"{gone.pid}-1-0a0b0c0d", f"{os.getpid()}-77-0e0f0a0b",
                                    f"{gone.pid}-2-01020304")
    me_start = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]
    (notes / dead_run).write_text(f"{ns} 1")
    (notes / live_run).write_text(f"{ns} {me_start}")
    (notes / other_ns).write_text("pid:[1] 1")
    procs = {run: subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", MARK_DIR + run])
        for run in (dead_run, live_run, other_ns)}
    try:
        r = subprocess.run([sys.executable, "-m", "corral", "-c", "sandbox.max_processes=0",
                            "sandbox", "--", "true"], cwd=box.ws, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert procs[dead_run].wait(5) == -signal.SIGKILL
        assert procs[live_run].poll() is None and procs[other_ns].poll() is None
        assert sorted(os.listdir(notes)) == sorted([live_run, other_ns])
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
