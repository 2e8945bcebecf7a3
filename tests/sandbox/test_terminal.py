"""A whole interactive agent keeps its terminal (``keep_terminal``) without gaining the old
sandbox-escape through it: TIOCSTI/TIOCLINUX stay refused by the seccomp filter. Real bwrap,
real seccomp, a real pseudo-terminal as the controlling terminal."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.ptyterm import on_a_terminal
from tests.sandbox.conftest import Box

INSIDE = r"""
import errno, fcntl, json, os, termios
out = {"stdin_tty": os.isatty(0)}
try:
    fd = os.open("/dev/tty", os.O_RDWR)
    out["dev_tty"] = "ok"
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
        out["tiocsti"] = "injected"
    except OSError as e:
        out["tiocsti"] = errno.errorcode[e.errno]
    try:
        fcntl.ioctl(0, termios.TIOCSTI, b"y")
        out["tiocsti_stdin"] = "injected"
    except OSError as e:
        out["tiocsti_stdin"] = errno.errorcode[e.errno]
except OSError as e:
    out["dev_tty"] = errno.errorcode[e.errno]
print("RESULT" + json.dumps(out), flush=True)
"""

OUTSIDE = r"""
import sys
from pathlib import Path
from corral.sandbox import Sandbox, build_plan
ws, home, keep = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
plan = build_plan(":workspace", ws, home=home, exclude_slash_tmp=True, exclude_tmpdir=True)
with Sandbox(plan.replace(keep_terminal=keep)) as sb:
    sys.exit(sb.run([sys.executable, "-c", sys.argv[4]], ws).returncode)
"""


def probe_result(text: str) -> dict[str, object]:
    assert "RESULT" in text, text
    result: dict[str, object] = json.loads(text.split("RESULT", 1)[1].splitlines()[0])
    return result


def run_on_a_terminal(box: Box, keep: bool) -> dict[str, object]:
    """The probe in the sandbox, from a process whose controlling terminal is a new pty."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    rc, text = on_a_terminal(
        [sys.executable, "-c", OUTSIDE, str(box.ws), str(box.home), "1" if keep else "0", INSIDE],
        box.ws, env)
    assert rc == 0, text
    return probe_result(text)


@pytest.mark.slow
def test_keep_terminal_gives_the_tty_but_not_keystroke_injection(box: Box) -> None:
    r = run_on_a_terminal(box, keep=True)
    assert r == {"stdin_tty": True, "dev_tty": "ok", "tiocsti": "EPERM",
                 "tiocsti_stdin": "EPERM"}


@pytest.mark.slow
def test_by_default_the_sandbox_has_no_controlling_terminal(box: Box) -> None:
    r = run_on_a_terminal(box, keep=False)
    assert r["dev_tty"] == "ENXIO"  # new session: no controlling terminal to open
    assert r["stdin_tty"] is True  # the descriptor is still a tty, but not a controlling one
