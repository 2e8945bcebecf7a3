"""``corral.cli.entry.exit_now``: the fast paths' exit skips module teardown, nothing else."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import atexit, sys, threading, time
from corral.cli.entry import exit_now
atexit.register(lambda: print("atexit ran", flush=True))
sys.stdout.write("buffered, not flushed")
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), print(" thread finished"))).start()
exit_now(7)
"""


def _run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True,
                          timeout=60)


def test_atexit_handlers_run_and_stdout_is_flushed() -> None:
    got = _run("plain")
    assert got.returncode == 7
    assert got.stdout == "buffered, not flushedatexit ran\n"


def test_a_live_non_daemon_thread_gets_the_normal_exit() -> None:
    got = _run("thread")
    assert got.returncode == 7
    assert "thread finished" in got.stdout and "atexit ran" in got.stdout


def test_stdout_that_cannot_be_flushed_is_an_error_status() -> None:
    code = ("import sys; from corral.cli.entry import exit_now\n"
            "class Gone:\n"
            "    def flush(self): raise BrokenPipeError(32, 'Broken pipe')\n"
            "sys.stdout = Gone(); exit_now(0)")
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert got.returncode == 120
