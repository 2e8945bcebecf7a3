"""The real Codex TUI (npm @openai/codex, full-screen, no `exec`) under `corral run` on a real
pseudo-terminal: it keeps the terminal, draws its UI, runs the scripted model's shell call inside
the sandbox and quits on Ctrl-C, while the terminal stays safe from keystroke injection (see
tests/sandbox/test_terminal.py) and the session is journaled."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.integrations.model_server import ModelServer, message, shell_call
from tests.rules.conftest import NATIVE

pytestmark = pytest.mark.slow


class Screen:
    """The master side of a pty: collects output and answers the cursor-position queries a
    terminal would (crossterm asks at startup)."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.out = b""

    def pump(self, until: bytes, proc: subprocess.Popen[bytes], timeout: float) -> bool:
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


def test_codex_tui_under_corral_run_keeps_the_terminal_and_works(tmp_path: Path) -> None:
    if not (NATIVE.exists() and os.access(NATIVE, os.X_OK)):
        pytest.fail("codex CLI not installed: run scripts/setup --dev (npm @openai/codex)")
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".codex").mkdir(parents=True)
    work.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    srv = ModelServer([shell_call("echo hello-from-the-tui > out.txt", "c0"),
                       message("finished")], host="127.0.0.2").start()
    assert srv._server is not None
    port = srv._server.server_address[1]
    provider = (f'{{name = "scripted", base_url = "{srv.base_url}", wire_api = "responses", '
                'request_max_retries = 0, stream_max_retries = 0}')
    config = [("model", '"test-model"'), ("model_provider", '"scripted"'),
              ("approval_policy", '"never"'), ("sandbox_mode", '"danger-full-access"'),
              ("model_providers.scripted", provider),
              (f'projects."{work}".trust_level', '"trusted"')]
    (home / ".codex" / "config.toml").write_text("".join(f"{k} = {v}\n" for k, v in config))
    env = dict(os.environ, HOME=str(home), CORRAL_HOME=str(tmp_path / "corral-home"),
               CORRAL_SYSTEM_DIR=str(tmp_path / "etc"), CODEX_HOME=str(home / ".codex"),
               TERM="xterm-256color", OPENAI_API_KEY="sk-test")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "corral", "-c", f'network.allow_local=["127.0.0.2:{port}"]',
         "run", "--allow-domain", "127.0.0.2", "--", str(NATIVE), "write out.txt"],
        cwd=work, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=take_terminal)
    os.close(slave)
    screen = Screen(master)
    try:
        # the TUI's own "turn finished" signal (an OSC its terminal integration emits)
        assert screen.pump(b"state=done", proc, 90), screen.out[-3000:]
        os.write(master, b"\x03")
        time.sleep(0.3)
        os.write(master, b"\x03")  # Ctrl-C twice: quit
        screen.pump(b"\0never\0", proc, 15)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        srv.stop()
    assert b"the agent has this terminal" in screen.out
    assert b"Ask Codex to do anything" in screen.out  # its full-screen UI was drawn
    # corral never drew its own prompt over the UI (Codex also calls ab.chatgpt.com, an
    # unfamiliar host: that question went to `corral approve`, where nobody answered)
    assert b"allow [o]nce" not in screen.out
    assert (work / "out.txt").read_text() == "hello-from-the-tui\n"  # ran in the sandbox
    verify = subprocess.run([sys.executable, "-m", "corral", "log", "verify"], cwd=work,
                            env=env, capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
