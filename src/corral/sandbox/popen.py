"""``SandboxedProcess``: the ``Popen`` a sandboxed command is held by.

A separate module because ``subprocess`` costs ~2 ms of imports that a process running one
command does not need (it gets a ``corral.sandbox.process.DirectProcess``).
"""

from __future__ import annotations

import subprocess

from corral.sandbox.process import AfterExit


class SandboxedProcess(AfterExit, subprocess.Popen[bytes]):
    """A Popen that does its run's duties (``AfterExit``: placeholders, cgroup, leftovers)
    once the process has been reaped."""

    def wait(self, timeout: float | None = None) -> int:
        rc = super().wait(timeout)
        self._after_exit()
        return rc

    def poll(self) -> int | None:
        rc = super().poll()
        if rc is not None:
            self._after_exit()
        return rc
