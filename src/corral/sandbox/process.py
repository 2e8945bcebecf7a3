"""The sandboxed process as the caller holds it, and waiting for it.

``SandboxedProcess`` is a ``Popen`` that runs its run's cleanup once reaped (and ends what a
killed bwrap left, ``corral.sandbox.leftovers``); ``wait_interruptible`` and the stderr tee
serve ``Sandbox.run``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from typing import IO, Any


def wait_interruptible(proc: subprocess.Popen[bytes]) -> int:
    """Ctrl-C reaches bwrap too (same process group) and ends the sandbox; wait for that
    instead of dying with a traceback, and report 130 like a shell would."""
    try:
        return proc.wait()
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGINT)
        proc.wait()
        return 130


def tee_then_wait(proc: subprocess.Popen[bytes], sink: IO[str], lines: list[str]) -> int:
    """``tee`` on this thread until the sandbox's stderr closes, then reap; Ctrl-C is passed
    on to bwrap as in ``wait_interruptible`` (what was kept before it is not scanned)."""
    assert proc.stderr is not None
    interrupted = False
    while True:
        try:
            tee(proc.stderr, sink, lines)
            break
        except KeyboardInterrupt:
            interrupted = True
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGINT)
    rc = wait_interruptible(proc)
    return 130 if interrupted else rc


def tee(src: IO[bytes], sink: IO[str], lines: list[str]) -> None:
    """Pass stderr on as it arrives (no line buffering: progress bars stay live) and keep the
    last ~1 MB for the violation scan."""
    out = getattr(sink, "buffer", None)
    fd = src.fileno()
    kept: list[bytes] = []
    size = 0
    while chunk := os.read(fd, 65536):
        if out is not None:
            out.write(chunk)
            out.flush()
        else:
            sink.write(chunk.decode(errors="replace"))
            sink.flush()
        kept.append(chunk)
        size += len(chunk)
        while size > 1_000_000 and len(kept) > 1:
            size -= len(kept.pop(0))
    src.close()
    lines.append(b"".join(kept).decode(errors="replace"))


class SandboxedProcess(subprocess.Popen[bytes]):
    """A Popen that removes this run's placeholders once the process has been reaped.
    ``corral_fresh_git``: roots without a ``.git`` at launch (see ``audit_new_repo``)."""

    _corral_cleanup: Any = None
    corral_fresh_git: list[Path] = []  # noqa: RUF012 (replaced per instance)
    corral_cgroup: str | None = None  # this run's pids cgroup (``corral.sandbox.pidcap``)
    corral_run_id = ""  # the marker on this run's bwrap (``corral.sandbox.leftovers``)
    corral_run_note: str | None = None  # its note, for a corral killed with it

    def _after_exit(self) -> None:
        run_id, self.corral_run_id = self.corral_run_id, ""
        note, self.corral_run_note = self.corral_run_note, None
        if run_id and self.corral_cgroup is None and (self.returncode or 0) < 0:
            # bwrap was killed: what its --die-with-parent may have missed is found by its
            # marker (with a cgroup, the cgroup's cleanup ends it)
            from corral.sandbox.leftovers import kill_marked

            kill_marked(run_id)
        if note is not None:
            from corral.sandbox.leftovers import unregister

            unregister(note)
        fn, self._corral_cleanup = self._corral_cleanup, None
        if fn is not None:
            fn()

    def wait(self, timeout: float | None = None) -> int:
        rc = super().wait(timeout)
        self._after_exit()
        return rc

    def poll(self) -> int | None:
        rc = super().poll()
        if rc is not None:
            self._after_exit()
        return rc
