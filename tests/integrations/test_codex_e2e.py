"""End to end with the real Codex CLI (npm @openai/codex): a scripted model server speaking the
Responses API replays tool calls; corral's hooks (installed by install_hooks) ask a real session
supervisor; Codex's own OTel logs come back through our receiver. Afterwards `corral log` tells
the story and `corral log verify` passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from corral.integrations.install import install_hooks
from corral.integrations.otel_map import args_for_agent
from corral.integrations.otlp_receiver import Receiver
from tests.integrations.model_server import ModelServer, message, shell_call
from tests.rules.conftest import NATIVE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def codex() -> Path:
    if not (NATIVE.exists() and os.access(NATIVE, os.X_OK)):
        pytest.fail("codex CLI not installed: run scripts/setup --dev (npm @openai/codex)")
    return NATIVE


def run_codex(codex: Path, session, turns, prompt: str, tmp_path: Path):
    srv = ModelServer(turns).start()
    home = tmp_path / "codex-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(
        'model = "test-model"\nmodel_provider = "scripted"\napproval_policy = "never"\n'
        'sandbox_mode = "danger-full-access"\n'
        f'[model_providers.scripted]\nname = "scripted"\nbase_url = "{srv.base_url}"\n'
        'wire_api = "responses"\nenv_key = "SCRIPTED_KEY"\nrequest_max_retries = 0\n'
        'stream_max_retries = 0\n')
    env = {**session.env, "CODEX_HOME": str(home), "SCRIPTED_KEY": "k"}
    old = os.environ.get("CODEX_HOME")
    os.environ["CODEX_HOME"] = str(home)
    try:
        install_hooks("codex", "user")
    finally:
        if old is None:
            os.environ.pop("CODEX_HOME")
        else:
            os.environ["CODEX_HOME"] = old
    rx = Receiver(session.tel)
    endpoint = rx.start()
    try:
        proc = subprocess.run(
            [str(codex), "exec", "--skip-git-repo-check", "--dangerously-bypass-hook-trust",
             *args_for_agent("codex", endpoint, token=rx.token, tier=1), "-C",
             str(session.work), prompt],
            env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        rx.stop()
        srv.stop()
    return proc, srv, rx


def corral_cli(session, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CORRAL_HOME": str(session.home)}
    return subprocess.run([sys.executable, "-m", "corral", *args], env=env, capture_output=True,
                          text=True, timeout=60, cwd=session.work)


def test_forbidden_rm_rf_is_blocked_and_the_model_is_told_why(codex, session, tmp_path):
    (session.work / "build").mkdir()
    (session.work / "build" / "keep.txt").write_text("precious")
    proc, srv, rx = run_codex(codex, session, [
        shell_call("echo hi > out.txt && cat out.txt", "c0"),
        shell_call("rm -rf build", "c1"),
        message("I will not delete the build directory."),
    ], "tidy up the workspace", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # The benign command ran without a prompt; the forbidden one never ran.
    assert (session.work / "out.txt").read_text() == "hi\n"
    assert (session.work / "build" / "keep.txt").read_text() == "precious"
    outputs = srv.tool_outputs()
    blocked = [o for o in outputs if "rm -rf build" in o]
    assert blocked and "corral: rules:" in blocked[0] and "forbidden by policy" in blocked[0]
    assert "deleting whole trees is not allowed" in blocked[0]  # the model reads the reason
    session.tel.flush(10)
    evs = session.events()
    decisions = [(e.attributes["agent.decision"], e.attributes.get("process.command_line"))
                 for e in evs if e.name == "agent.tool.decision"
                 and "agent.import.source" not in e.attributes]
    assert decisions == [("auto_approved", "bash -lc 'echo hi > out.txt && cat out.txt'"),
                         ("forbidden", "bash -lc 'rm -rf build'")]
    # Codex's own telemetry arrived through the receiver and was mapped.
    imported = {e.attributes["agent.import.event"] for e in evs
                if "agent.import.event" in e.attributes}
    assert {"codex.user_prompt", "codex.tool_decision", "codex.tool_result"} <= imported
    assert rx.accepted > 0 and rx.rejected == 0
    result = next(e for e in evs if e.attributes.get("agent.import.event") == "codex.tool_result")
    assert result.call_id == "import:c0" and result.attributes["agent.tool.success"] is True
    # The hook's PostToolUse result and the prompt are there too, at tier 1 (hashes only).
    prompts = [e for e in evs if e.name == "agent.user_prompt"]
    assert prompts and all("prompt" not in e.attributes for e in prompts)
    session.tel.close()
    log = corral_cli(session, "log", "--journal", str(session.tel.journal_path))
    assert log.returncode == 0, log.stderr
    assert "rm -rf build" in log.stdout and "forbidden" in log.stdout
    verify = corral_cli(session, "log", "verify", "--journal", str(session.tel.journal_path))
    assert verify.returncode == 0 and verify.stdout.startswith("journal OK"), verify.stderr


def test_no_supervisor_means_codex_runs_nothing(codex, session, tmp_path):
    session.api.stop()  # the supervisor is gone; the hooks are still installed
    proc, srv, _ = run_codex(codex, session, [shell_call("touch made.txt", "c0"),
                                              message("stopped")], "make a file", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (session.work / "made.txt").exists()
    out = srv.tool_outputs()[0]
    assert "corral: integrations: cannot reach the corral supervisor" in out


def test_agent_session_benign_edit_and_run_without_a_prompt(codex, tmp_path, monkeypatch):
    """The whole bundle the lead's `corral run` uses: AgentSession (journal, pipeline, API,
    receiver) + env + args, with an allow rule for the project's test command."""
    from corral.config import load_config
    from corral.integrations.session import AgentSession, with_agent_args
    from corral.telemetry import Journal

    home, work = tmp_path / "corral-home", tmp_path / "work"
    (home / "rules").mkdir(parents=True)
    (home / "rules" / "project.rules").write_text(
        'prefix_rule(pattern=["python3", "answer.py"], decision="allow", '
        'justification="the project test")\n')
    work.mkdir()
    cfg = load_config(work, home=home, system=tmp_path / "etc")
    srv = ModelServer([shell_call("printf 'print(6 * 7)\\n' > answer.py", "c0"),
                       shell_call("python3 answer.py", "c1"), message("42")]).start()
    codex_home = tmp_path / "codex-home"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        'model = "test-model"\nmodel_provider = "scripted"\napproval_policy = "never"\n'
        'sandbox_mode = "danger-full-access"\n'
        f'[model_providers.scripted]\nname = "scripted"\nbase_url = "{srv.base_url}"\n'
        'wire_api = "responses"\nenv_key = "SCRIPTED_KEY"\nrequest_max_retries = 0\n')
    monkeypatch.setenv("CODEX_HOME", str(codex_home))  # project hooks need codex's trust
    install_hooks("codex", "user")
    with AgentSession.open(cfg, "codex") as s:
        argv = with_agent_args([str(codex), "exec", "--skip-git-repo-check",
                                "--dangerously-bypass-hook-trust", "-C", str(work),
                                "write and run answer.py"], "codex", s.args)
        proc = subprocess.run(argv, env={**os.environ, "CODEX_HOME": str(codex_home),
                                         "SCRIPTED_KEY": "k", **s.env},
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        journal, sid = s.telemetry.journal_path, s.telemetry.session_id
    srv.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = srv.tool_outputs()[-1]
    assert "42" in last.split() or "42" in last.splitlines(), last  # the program's own output
    assert "print(6 * 7)" not in last
    evs = list(Journal(journal).events(session_id=sid))
    assert evs[0].name == "agent.session.start"
    ours = [e.attributes["agent.decision"] for e in evs
            if e.name == "agent.tool.decision" and "agent.import.source" not in e.attributes]
    assert ours == ["auto_approved", "auto_approved"]  # nobody was asked
    results = [e for e in evs if e.attributes.get("agent.import.event") == "codex.tool_result"]
    assert [e.call_id for e in results] == ["import:c0", "import:c1"]
