"""A real pseudo-terminal for tests: start a process whose controlling terminal it is, read what
it draws, type into it. Used by the sandbox, `corral run` and real-agent TUI tests."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from pathlib import Path


class Screen:
    """The master side of a pty: collects output and answers the cursor-position queries a
    terminal would (crossterm asks at startup)."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.out = b""

    def pump(self, until: bytes, proc: subprocess.Popen[bytes], timeout: float) -> bool:
        """Read until ``until`` was drawn (True), or the process is gone and nothing more comes,
        or ``timeout`` seconds passed (False)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if until in self.out:
                return True
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # EIO: the slave side is closed, everyone is gone
                    return until in self.out
                self.out += chunk
                if b"\x1b[6n" in chunk:
                    os.write(self.master, b"\x1b[1;1R")
            elif proc.poll() is not None and until not in self.out:
                return False
        return until in self.out

    def quit(self, proc: subprocess.Popen[bytes], gone: bytes, double: bool) -> int:
        """Quit as a user would: Ctrl-C (twice in quick succession when ``double``: Claude Code
        wants that, and a first press may only close a dialog) until the agent says it is
        ``gone``, then no more; the process's exit status."""
        for _ in range(5):
            os.write(self.master, b"\x03")
            if double and not self.pump(gone, proc, 0.3):
                os.write(self.master, b"\x03")
            if self.pump(gone, proc, 3.0):
                break
        self.pump(b"\0never\0", proc, 15)  # let it wind down: journal, proxy, placeholders
        return proc.wait(15)


def on_a_pty(argv: list[str], cwd: Path, env: dict[str, str]
             ) -> tuple[subprocess.Popen[bytes], Screen]:
    """Start ``argv`` in a new session whose controlling terminal is a new 120x40 pty."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def take_terminal() -> None:  # in the child, after setsid: make the pty its terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, preexec_fn=take_terminal)
    os.close(slave)
    return proc, Screen(master)


def on_a_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run ``argv`` to the end on a new pty; its exit status and everything it wrote there."""
    proc, screen = on_a_pty(argv, cwd, env)
    try:
        screen.pump(b"\0never\0", proc, 120)
        rc = proc.wait(120)
    finally:
        os.close(screen.master)
    return rc, screen.out.decode(errors="replace")
