"""`corral install-hooks codex` leaves the hooks ACTIVE: the real Codex CLI, with no
`--dangerously-bypass-hook-trust`, runs them and a forbidden command is refused. Without the
trust record (what install-hooks used to leave), the same Codex runs the command unchecked:
that is the hole this closes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from corral.integrations.codex_trust import list_hooks
from tests.integrations.model_server import ModelServer, message, shell_call
from tests.rules.conftest import NATIVE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def codex() -> Path:
    if not (NATIVE.exists() and os.access(NATIVE, os.X_OK)):
        pytest.fail("codex CLI not installed: run scripts/setup --dev (npm @openai/codex)")
    return NATIVE


def _codex_home(tmp_path: Path, base_url: str) -> Path:
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        'model = "test-model"\nmodel_provider = "scripted"\napproval_policy = "never"\n'
        'sandbox_mode = "danger-full-access"\n'
        f'[model_providers.scripted]\nname = "scripted"\nbase_url = "{base_url}"\n'
        'wire_api = "responses"\nenv_key = "SCRIPTED_KEY"\nrequest_max_retries = 0\n'
        'stream_max_retries = 0\n')
    return home


def _install(codex: Path, home: Path, with_codex_on_path: bool
             ) -> subprocess.CompletedProcess[str]:
    path = os.environ["PATH"] if not with_codex_on_path else f"{codex.parent}:{os.environ['PATH']}"
    if not with_codex_on_path:  # no codex anywhere on PATH
        path = ":".join(p for p in path.split(":")
                        if not (Path(p) / "codex").exists())
    env = {**os.environ, "CODEX_HOME": str(home), "PATH": path}
    return subprocess.run([sys.executable, "-m", "corral", "install-hooks", "codex"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=home)


@pytest.mark.parametrize("trusted", [True, False])
def test_installed_hooks_govern_codex_only_once_trusted(codex, session, tmp_path, trusted):
    (session.work / "build").mkdir()
    (session.work / "build" / "keep.txt").write_text("precious")
    srv = ModelServer([shell_call("rm -rf build", "c1"), message("done")]).start()
    home = _codex_home(tmp_path, srv.base_url)
    r = _install(codex, home, with_codex_on_path=trusted)
    if trusted:
        assert r.returncode == 0, r.stderr
        assert "Codex trusts corral's 6 hooks" in r.stdout
        listed = [h for h in list_hooks(str(codex), home, session.work) if h.ours]
        assert len(listed) == 6 and {h.trust for h in listed} == {"trusted"}
    else:
        assert r.returncode == 1
        assert "installed but INACTIVE" in r.stderr and "codex is not on PATH" in r.stderr
    try:
        proc = subprocess.run(
            [str(codex), "exec", "--skip-git-repo-check", "-C", str(session.work),
             "tidy up"],
            env={**session.env, "CODEX_HOME": str(home), "SCRIPTED_KEY": "k"},
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        srv.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    decisions = [e.attributes["agent.decision"] for e in session.events()
                 if e.name == "agent.tool.decision"]
    if trusted:  # the hook ran: corral's rule refused, and the model was told why
        assert decisions == ["forbidden"]
        blocked = [o for o in srv.tool_outputs() if "rm -rf build" in o]
        assert blocked and "corral: rules:" in blocked[0], srv.tool_outputs()
    else:  # the hook never ran: corral saw nothing (Codex's own checks were all there was)
        assert decisions == []
        assert not any("corral:" in o for o in srv.tool_outputs())
    assert (session.work / "build" / "keep.txt").exists()


def test_trust_is_recorded_only_for_corral_hooks_and_survives_reinstall(codex, tmp_path):
    home = _codex_home(tmp_path, "http://127.0.0.1:9")
    (home / "hooks.json").write_text(
        '{"hooks": {"Stop": [{"hooks": [{"type": "command", "command": "/usr/bin/true"}]}]}}')
    assert _install(codex, home, with_codex_on_path=True).returncode == 0
    again = _install(codex, home, with_codex_on_path=True)
    assert again.returncode == 0 and "already up to date" in again.stdout
    hooks = list_hooks(str(codex), home, tmp_path)
    theirs = [h for h in hooks if not h.ours]
    assert [h.trust for h in theirs] == ["untrusted"]  # the user's own hook is not ours to trust
    assert {h.trust for h in hooks if h.ours} == {"trusted"}
