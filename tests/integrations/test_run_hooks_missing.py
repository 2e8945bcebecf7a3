"""The real Codex CLI under `corral run` with corral's hooks not installed: its tool calls would
bypass corral's rules and approvals. Codex's own telemetry (imported by the run) shows the tool
call that no hook announced: the run says so on the terminal and in the journal
(`agent.hooks.inactive`), and with `integrations.hooks_missing = "stop"` ends the agent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integrations.model_server import ModelServer, message, shell_call
from tests.integrations.test_run_e2e import Run, codex, codex_config

pytestmark = pytest.mark.slow
__all__ = ["codex"]  # the fixture, used by name

LINE = "but its corral hooks never called in"


def _play(run: Run, codex: Path, commands: list[str], *config: str
          ) -> tuple[subprocess.CompletedProcess[str], ModelServer]:
    steps = [shell_call(c, f"c{i}") for i, c in enumerate(commands)] + [message("done")]
    srv = ModelServer(steps, host="127.0.0.2").start()
    try:
        assert srv._server is not None
        port = srv._server.server_address[1]
        flags = [a for k, v in codex_config(srv) for a in ("-c", f"{k}={v}")]
        proc = subprocess.run(
            [sys.executable, "-m", "corral", "-c", f'network.allow_local=["{srv.host}:{port}"]',
             *config, "run", "--allow-domain", srv.host, "--", str(codex), "exec", *flags,
             "--skip-git-repo-check", "-C", str(run.work), "make the files"],
            cwd=run.work, env=run.env, capture_output=True, text=True, timeout=180,
            stdin=subprocess.DEVNULL)
    finally:
        srv.stop()
    return proc, srv


def test_inactive_hooks_are_reported_on_the_terminal_and_in_the_journal(codex: Path,
                                                                        tmp_path: Path) -> None:
    run = Run(tmp_path)
    proc, _ = _play(run, codex, ["echo one > one.txt"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run.work / "one.txt").exists()  # warn: the run goes on
    lines = [x for x in proc.stderr.splitlines() if LINE in x]
    assert len(lines) == 1 and lines[0].startswith("corral: integrations: codex ran a tool")
    (ev,) = [e for e in run.events() if e["name"] == "agent.hooks.inactive"]
    assert ev["attributes"]["agent.hooks.action"] == "warn"
    assert ev["attributes"]["corral.origin"] == "pipeline"


def test_hooks_missing_stop_ends_the_agent(codex: Path, tmp_path: Path) -> None:
    run = Run(tmp_path)
    proc, _ = _play(run, codex, ["echo one > one.txt", "sleep 20; echo two > two.txt"],
                    "-c", 'integrations.hooks_missing="stop"')
    assert proc.returncode != 0
    assert not (run.work / "two.txt").exists()
    lines = [x for x in proc.stderr.splitlines() if LINE in x]
    assert len(lines) == 1 and lines[0].endswith(
        'stopping the agent (integrations.hooks_missing = "stop")'), proc.stderr[-3000:]
    (ev,) = [e for e in run.events() if e["name"] == "agent.hooks.inactive"]
    assert ev["attributes"]["agent.hooks.action"] == "stop"


def test_active_hooks_are_not_reported(codex: Path, tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.play(codex, ["echo one > one.txt"], "done", "make the files")
    assert (run.work / "one.txt").exists()
    names = [e["name"] for e in run.events()]
    assert "agent.tool.decision" in names and "agent.hooks.inactive" not in names
