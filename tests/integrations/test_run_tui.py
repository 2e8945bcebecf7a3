"""The real Codex TUI (npm @openai/codex, no `exec`) and Claude Code TUI (no `-p`) under
`corral run` on a real pseudo-terminal: each keeps the terminal, draws its UI, runs the scripted
model's shell call inside the sandbox and quits on Ctrl-C, while corral never prompts over it,
the terminal stays safe from keystroke injection (see tests/sandbox/test_terminal.py) and the
session is journaled."""

from __future__ import annotations

import fcntl
import json
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

from corral.integrations.install import install_hooks
from tests.integrations.model_server import (
    AnthropicServer,
    ModelServer,
    bash_use,
    message,
    shell_call,
    text,
)
from tests.integrations.test_claude_e2e import CLAUDE
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

    def quit(self, proc: subprocess.Popen[bytes], gone: bytes, double: bool) -> int:
        """Quit as a user would: Ctrl-C (twice in quick succession when ``double``: Claude Code
        wants that, and a first press may only close a dialog) until the agent says it is
        ``gone``, then no more; corral's exit status, which is the agent's."""
        for _ in range(5):
            os.write(self.master, b"\x03")
            if double and not self.pump(gone, proc, 0.3):
                os.write(self.master, b"\x03")
            if self.pump(gone, proc, 3.0):
                break
        self.pump(b"\0never\0", proc, 15)  # corral winds down: journal, proxy, placeholders
        return proc.wait(15)


def on_a_pty(argv: list[str], cwd: Path, env: dict[str, str]
             ) -> tuple[subprocess.Popen[bytes], Screen]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, preexec_fn=take_terminal)
    os.close(slave)
    return proc, Screen(master)


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
    proc, screen = on_a_pty(
        [sys.executable, "-m", "corral", "-c", f'network.allow_local=["127.0.0.2:{port}"]',
         "run", "--allow-domain", "127.0.0.2", "--", str(NATIVE), "write out.txt"], work, env)
    try:
        # the TUI's own "turn finished" signal (an OSC its terminal integration emits)
        assert screen.pump(b"state=done", proc, 90), screen.out[-3000:]
        assert screen.quit(proc, b"codex resume", double=False) == 0, screen.out[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(screen.master)
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
    log = subprocess.run([sys.executable, "-m", "corral", "log", "--json"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=60).stdout
    names = {(e := json.loads(ln)).get("event.name", e.get("name"))
             for ln in log.splitlines() if ln.strip()}
    # corral's hooks decided the Bash call; Claude Code's own OTel logs were imported
    assert {"agent.tool.decision", "agent.import.record"} <= names, sorted(names)


def test_claude_code_tui_under_corral_run_keeps_the_terminal_and_works(tmp_path: Path) -> None:
    if not (CLAUDE.exists() and os.access(CLAUDE, os.X_OK)):
        pytest.fail("Claude Code not installed: run scripts/setup --dev "
                    "(npm @anthropic-ai/claude-code)")
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".claude").mkdir(parents=True)
    work.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    srv = AnthropicServer([bash_use("echo hello-from-claude > out.txt", "toolu_0"),
                           text("finished")], host="127.0.0.2").start()
    assert srv._server is not None
    port = srv._server.server_address[1]
    # The sandbox's environment drops *KEY* variables; a key helper survives. Onboarding and
    # trust answered beforehand, as after a first run outside corral (~/.claude.json is
    # read-only under corral run).
    (home / ".claude" / "settings.json").write_text(json.dumps({"apiKeyHelper": "echo sk-t"}))
    install_hooks("claude-code", "user", home=home)
    (home / ".claude.json").write_text(json.dumps({
        "hasCompletedOnboarding": True, "theme": "dark",
        "projects": {str(work): {"hasTrustDialogAccepted": True}}}))
    env = dict(os.environ, HOME=str(home), CORRAL_HOME=str(tmp_path / "corral-home"),
               CORRAL_SYSTEM_DIR=str(tmp_path / "etc"), TERM="xterm-256color",
               ANTHROPIC_BASE_URL=srv.root_url, DISABLE_AUTOUPDATER="1",
               CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
    env.pop("CLAUDE_CONFIG_DIR", None)
    proc, screen = on_a_pty(
        [sys.executable, "-m", "corral", "-c", f'network.allow_local=["127.0.0.2:{port}"]',
         "run", "--allow-domain", "127.0.0.2", "--", str(CLAUDE), "--model",
         "claude-sonnet-4-5", "write out.txt"], work, env)
    try:
        assert screen.pump(b"finished", proc, 90), screen.out[-3000:]
        assert screen.quit(proc, b"--resume", double=True) == 0, screen.out[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(screen.master)
        srv.stop()
    assert b"the agent has this terminal" in screen.out
    assert b"allow [o]nce" not in screen.out
    assert (work / "out.txt").read_text() == "hello-from-claude\n"
    verify = subprocess.run([sys.executable, "-m", "corral", "log", "verify"], cwd=work,
                            env=env, capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    log = subprocess.run([sys.executable, "-m", "corral", "log", "--json"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=60).stdout
    names = {(e := json.loads(ln)).get("event.name", e.get("name"))
             for ln in log.splitlines() if ln.strip()}
    # corral's hooks decided the Bash call; Claude Code's own OTel logs were imported
    assert {"agent.tool.decision", "agent.import.record"} <= names, sorted(names)


HANDLES_CTRL_C = r"""#!/usr/bin/env python3
import os, signal, sys, time
got = []
signal.signal(signal.SIGINT, lambda *_: got.append(1))
print("READY", flush=True)
deadline = time.time() + 20
while not got and time.time() < deadline:
    time.sleep(0.05)
time.sleep(0.5)  # still winding down when a second Ctrl-C could come
open("handled.txt", "w").write("interrupted and finished\n")
print("HANDLED", flush=True)
sys.exit(3)
"""


def test_ctrl_c_on_a_shared_terminal_reaches_only_the_agent(tmp_path: Path) -> None:
    """In cooked mode Ctrl-C signals the terminal's whole foreground group: corral, bwrap,
    proxyinit and the agent. Only the agent may act on it; the sandbox must not die under it."""
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".codex").mkdir(parents=True)
    work.mkdir()
    agent = tmp_path / "bin" / "codex"  # a full-screen preset: it keeps the terminal
    agent.parent.mkdir()
    agent.write_text(HANDLES_CTRL_C)
    agent.chmod(0o755)
    env = dict(os.environ, HOME=str(home), CORRAL_HOME=str(tmp_path / "corral-home"),
               CORRAL_SYSTEM_DIR=str(tmp_path / "etc"))
    env.pop("CODEX_HOME", None)
    proc, screen = on_a_pty([sys.executable, "-m", "corral", "run", "--", str(agent)], work, env)
    try:
        assert screen.pump(b"READY", proc, 60), screen.out[-2000:]
        os.write(screen.master, b"\x03")
        time.sleep(0.2)
        os.write(screen.master, b"\x03")  # a second one while the agent winds down
        assert screen.pump(b"HANDLED", proc, 20), screen.out[-2000:]
        screen.pump(b"\0never\0", proc, 15)
        assert proc.wait(15) == 3  # the agent's own status, not a signal's
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(screen.master)
    assert (work / "handled.txt").read_text() == "interrupted and finished\n"
