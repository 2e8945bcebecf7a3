"""A sandbox never outlives its run, with or without a pids cgroup.

bubblewrap's --die-with-parent misses a sandbox whose outer bwrap is killed in its first
milliseconds (its init goes on running the command, reparented to the host's init). With a
cgroup the run's cgroup is emptied (tests/sandbox/test_pidcap.py); without one (the
RLIMIT_NPROC mechanism, or no cap), the run's marker on bwrap's command line finds it."""

from __future__ import annotations

import os

from corral.sandbox.leftovers import MARK_DIR
from tests.sandbox.conftest import Box, kill_at_once


def test_without_a_cgroup_a_run_killed_at_once_leaves_nothing_running(box: Box) -> None:
    cgroups = kill_at_once(box.sandbox(max_processes=0), ["sleep", "7.4322"], box.ws)
    assert cgroups == [None] * len(cgroups)  # no cap: no cgroup to find what is left


def test_the_marker_is_an_empty_directory_of_the_sandbox_own_dev(box: Box) -> None:
    """What marks a run is invisible outside it and changes nothing the command relies on."""
    r = box.sh(f"ls -d {MARK_DIR}*; ls -A {MARK_DIR}*")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(MARK_DIR) and len(r.stdout.splitlines()) == 1
    assert not any(n.startswith(".corral-run-") for n in os.listdir("/dev"))
