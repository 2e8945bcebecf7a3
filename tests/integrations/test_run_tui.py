"""The real Codex TUI (npm @openai/codex, no `exec`), Claude Code TUI and Gemini CLI TUI (no
`-p`) under `corral run` on a real pseudo-terminal: each keeps the terminal, draws its UI, runs
the scripted model's shell call inside the sandbox and quits on Ctrl-C, while corral never
prompts over it, the terminal stays safe from keystroke injection (see
tests/sandbox/test_terminal.py) and the session is journaled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
from tests.integrations.test_run_e2e import codex_config
from tests.ptyterm import Screen, on_a_pty
from tests.rules.conftest import NATIVE

pytestmark = pytest.mark.slow


def play_tui(agent: list[str], port: int, work: Path, env: dict[str, str], srv: ModelServer,
             done: bytes, gone: bytes, double: bool) -> Screen:
    """`corral run -- AGENT` on a pty until the agent has drawn ``done``, then quit with Ctrl-C;
    checks what every full-screen run must show, and returns the screen."""
    proc, screen = on_a_pty(
        [sys.executable, "-m", "corral", "-c", f'network.allow_local=["127.0.0.2:{port}"]',
         "run", "--allow-domain", "127.0.0.2", "--", *agent], work, env)
    try:
        assert screen.pump(done, proc, 90), screen.out[-3000:]
        assert screen.quit(proc, gone, double) == 0, screen.out[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(screen.master)
        srv.stop()
    assert b"the agent has this terminal" in screen.out
    # corral never drew its own prompt over the UI: its questions (Codex also calls
    # ab.chatgpt.com, an unfamiliar host) went to `corral approve`, where nobody answered
    assert b"allow [o]nce" not in screen.out
    verify = subprocess.run([sys.executable, "-m", "corral", "log", "verify"], cwd=work,
                            env=env, capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    log = subprocess.run([sys.executable, "-m", "corral", "log", "--json"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=60).stdout
    names = {(e := json.loads(ln)).get("event.name", e.get("name"))
             for ln in log.splitlines() if ln.strip()}
    # corral's hooks decided the shell call; the agent's own OTel logs were imported
    assert {"agent.tool.decision", "agent.import.record"} <= names, sorted(names)
    return screen


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
    config = [*codex_config(srv), (f'projects."{work}".trust_level', '"trusted"')]
    (home / ".codex" / "config.toml").write_text("".join(f"{k} = {v}\n" for k, v in config))
    env = dict(os.environ, HOME=str(home), CORRAL_HOME=str(tmp_path / "corral-home"),
               CORRAL_SYSTEM_DIR=str(tmp_path / "etc"), CODEX_HOME=str(home / ".codex"),
               TERM="xterm-256color", OPENAI_API_KEY="sk-test")
    # "state=done": the TUI's own "turn finished" signal (an OSC its terminal integration emits)
    screen = play_tui([str(NATIVE), "write out.txt"], srv._server.server_address[1], work, env,
                      srv, b"state=done", b"codex resume", double=False)
    assert b"Ask Codex to do anything" in screen.out  # its full-screen UI was drawn
    assert (work / "out.txt").read_text() == "hello-from-the-tui\n"  # ran in the sandbox


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
    play_tui([str(CLAUDE), "--model", "claude-sonnet-4-5", "write out.txt"], port, work, env,
             srv, b"finished", b"--resume", double=True)
    assert (work / "out.txt").read_text() == "hello-from-claude\n"


def test_gemini_cli_tui_under_corral_run_keeps_the_terminal_and_works(tmp_path: Path) -> None:
    from tests.integrations.gemini_server import GeminiServer, say, shell
    from tests.integrations.test_gemini_e2e import GEMINI, MODEL, configure

    if not (GEMINI.exists() and os.access(GEMINI, os.X_OK)):
        pytest.fail("Gemini CLI not installed: run scripts/setup --dev (npm @google/gemini-cli)")
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    configure(home)  # API-key auth, no usage statistics, corral's hooks
    srv = GeminiServer([shell("echo hello-from-gemini > out.txt"), say("finished")],
                       host="127.0.0.2").start()
    assert srv._server is not None
    env = dict(os.environ, HOME=str(home), CORRAL_HOME=str(tmp_path / "corral-home"),
               CORRAL_SYSTEM_DIR=str(tmp_path / "etc"), TERM="xterm-256color",
               GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=srv.root_url)
    env.pop("GEMINI_CLI_HOME", None)
    # -i: run the prompt, then stay interactive (no -p: the preset gives it the terminal)
    screen = play_tui([str(GEMINI), "-m", MODEL, "--approval-mode", "yolo", "--skip-trust",
                       "-i", "write out.txt"], srv._server.server_address[1], work, env, srv,
                      b"finished", b"gemini --resume", double=True)
    assert b"Model Usage" in screen.out  # its full-screen UI's own summary on the way out
    assert (work / "out.txt").read_text() == "hello-from-gemini\n"  # ran in the sandbox
