"""install-hooks on real files: merge, idempotence, preservation of the user's settings, remove,
and refusal to touch files we cannot parse. Also through the real `corral` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.errors import CorralError
from corral.integrations.install import EVENTS, MARKER, hook_command, install_hooks

USER_CLAUDE = {
    "model": "opus",
    "permissions": {"allow": ["Bash(npm test)"], "deny": ["Read(./.env)"]},
    "hooks": {
        "PreToolUse": [{"matcher": "Bash", "hooks": [
            {"type": "command", "command": "~/bin/lint-bash.sh", "timeout": 5}]}],
        "Notification": [{"hooks": [{"type": "command", "command": "notify-send hi"}]}],
    },
}


def _ours(settings: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event, groups in settings.get("hooks", {}).items():
        for g in groups:
            for h in g.get("hooks", []):
                if MARKER in h.get("command", ""):
                    counts[event] = counts.get(event, 0) + 1
    return counts


def test_claude_user_settings_merge_idempotent_and_remove(tmp_path: Path):
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps(USER_CLAUDE, indent=4))
    os.chmod(path, 0o640)
    written, changed = install_hooks("claude-code", "user", home=tmp_path, python="/opt/py")
    assert written == path and changed
    data = json.loads(path.read_text())
    assert data["model"] == "opus" and data["permissions"] == USER_CLAUDE["permissions"]
    assert _ours(data) == dict.fromkeys(EVENTS["claude-code"], 1)
    pre = data["hooks"]["PreToolUse"]
    assert pre[0] == USER_CLAUDE["hooks"]["PreToolUse"][0]  # the user's hook first, untouched
    assert pre[1] == {"matcher": "*", "hooks": [{
        "type": "command", "command": f"/opt/py -I -m {MARKER} claude-code", "timeout": 600}]}
    assert "matcher" not in data["hooks"]["UserPromptSubmit"][0]
    assert data["hooks"]["Notification"] == USER_CLAUDE["hooks"]["Notification"]
    assert (path.stat().st_mode & 0o777) == 0o640
    text = path.read_text()
    assert install_hooks("claude-code", "user", home=tmp_path, python="/opt/py") == (path, False)
    assert path.read_text() == text
    # A new interpreter path replaces ours rather than adding a second entry.
    install_hooks("claude-code", "user", home=tmp_path, python="/new/py")
    assert _ours(json.loads(path.read_text())) == dict.fromkeys(EVENTS["claude-code"], 1)
    _, changed = install_hooks("claude-code", "user", remove=True, home=tmp_path)
    assert changed and json.loads(path.read_text()) == USER_CLAUDE
    assert install_hooks("claude-code", "user", remove=True, home=tmp_path)[1] is False


def test_our_handler_sharing_a_group_with_the_users_is_taken_out_alone(tmp_path: Path):
    path = tmp_path / "p" / ".claude" / "settings.json"
    path.parent.mkdir(parents=True)
    mixed = {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [
        {"type": "command", "command": "audit.sh"},
        {"type": "command", "command": hook_command("claude-code", "/x/py")}]}]}}
    path.write_text(json.dumps(mixed))
    install_hooks("claude-code", "project", remove=True, project_root=tmp_path / "p")
    assert json.loads(path.read_text()) == {"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [
        {"type": "command", "command": "audit.sh"}]}]}}


def test_codex_hooks_json_in_codex_home_and_project(tmp_path: Path, monkeypatch):
    codex_home = tmp_path / "codex-home"
    monkeypatch.setenv("CODEX_HOME", str(codex_home))
    path, changed = install_hooks("codex", "user", python="/opt/py")
    assert path == codex_home / "hooks.json" and changed
    data = json.loads(path.read_text())
    assert _ours(data) == dict.fromkeys(EVENTS["codex"], 1)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert install_hooks("codex", "user", python="/opt/py")[1] is False
    proj = tmp_path / "repo"
    ppath, _ = install_hooks("codex", "project", project_root=proj, python="/opt/py")
    assert ppath == proj / ".codex" / "hooks.json"
    install_hooks("codex", "user", remove=True)
    assert json.loads(path.read_text()) == {}


def test_codex_inline_hooks_table_is_merged_in_config_toml(tmp_path: Path):
    cfg = tmp_path / ".codex" / "config.toml"
    cfg.parent.mkdir()
    original = (
        '# my codex config\nmodel = "gpt-5"  # keep this comment\n\n'
        '[[hooks.PreToolUse]]\nmatcher = "^Bash$"\n'
        '[[hooks.PreToolUse.hooks]]\ntype = "command"\ncommand = "guard.sh"\n\n'
        '[hooks.state."guard"]\ntrusted_hash = "abc"\nenabled = true\n\n'
        '[mcp_servers.fs]\ncommand = "npx"\n'
    )
    cfg.write_text(original)
    path, changed = install_hooks("codex", "project", project_root=tmp_path, python="/opt/py")
    assert path == cfg and changed and not (tmp_path / ".codex" / "hooks.json").exists()
    text = cfg.read_text()
    assert "# keep this comment" in text and "# my codex config" in text
    data = tomllib.loads(text)
    assert data["model"] == "gpt-5" and data["mcp_servers"] == {"fs": {"command": "npx"}}
    assert data["hooks"]["state"] == {"guard": {"trusted_hash": "abc", "enabled": True}}
    assert data["hooks"]["PreToolUse"][0]["hooks"][0]["command"] == "guard.sh"
    assert _ours({"hooks": {k: v for k, v in data["hooks"].items() if k != "state"}}) == \
        dict.fromkeys(EVENTS["codex"], 1)
    assert install_hooks("codex", "project", project_root=tmp_path, python="/opt/py")[1] is False
    install_hooks("codex", "project", project_root=tmp_path, remove=True)
    assert tomllib.loads(cfg.read_text()) == tomllib.loads(original)


def test_unparseable_files_are_never_overwritten(tmp_path: Path):
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text('{"model": "opus",')
    with pytest.raises(CorralError, match="not valid JSON") as exc:
        install_hooks("claude-code", "user", home=tmp_path)
    assert exc.value.line().startswith("corral: integrations: ")
    assert path.read_text() == '{"model": "opus",'
    path.write_text('{"hooks": []}')
    with pytest.raises(CorralError, match='"hooks" is not an object'):
        install_hooks("claude-code", "user", home=tmp_path)
    with pytest.raises(CorralError, match="unknown agent"):
        install_hooks("aider", "user", home=tmp_path)


def test_cli_install_then_remove(tmp_path: Path):
    from tests.rules.conftest import NATIVE  # the real codex: install-hooks asks it to trust

    env = {**os.environ, "HOME": str(tmp_path), "CORRAL_HOME": str(tmp_path / "ch"),
           "PATH": f"{NATIVE.parent}:{os.environ['PATH']}"}
    env.pop("CODEX_HOME", None)
    corral = [sys.executable, "-m", "corral"]
    r = subprocess.run([*corral, "install-hooks", "codex"], env=env, capture_output=True,
                       text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"corral: installed corral hooks in {tmp_path}/.codex/hooks.json")
    assert f"Codex trusts corral's 6 hooks (recorded in {tmp_path}/.codex/config.toml)" in r.stdout
    r = subprocess.run([*corral, "install-hooks", "claude-code", "--project", "--project-root",
                        str(tmp_path / "p")], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and (tmp_path / "p" / ".claude" / "settings.json").exists()
    r = subprocess.run([*corral, "install-hooks", "codex", "--remove"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == f"corral: removed corral hooks from {tmp_path}/.codex/hooks.json"
    r = subprocess.run([*corral, "install-hooks", "codex", "--user", "--project"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == "corral: integrations: --project and --user are exclusive"


_handler = st.fixed_dictionaries({"type": st.just("command"),
                                  "command": st.text(min_size=1, max_size=12)},
                                 optional={"timeout": st.integers(1, 900)})
_group = st.fixed_dictionaries({"hooks": st.lists(_handler, max_size=3)},
                               optional={"matcher": st.sampled_from(["*", "Bash", "^Edit$"])})
_hooks = st.dictionaries(st.sampled_from(["PreToolUse", "PostToolUse", "Stop", "Notification",
                                          "UserPromptSubmit"]),
                         st.lists(_group, min_size=1, max_size=3), max_size=4)


@settings(max_examples=200, deadline=None)
@given(hooks=_hooks, agent=st.sampled_from(["codex", "claude-code"]))
def test_install_then_remove_gives_back_the_users_hooks(hooks, agent):
    """Property: for any hooks table without ours, install is idempotent and remove restores
    it exactly (modulo groups that were empty to begin with)."""
    from corral.integrations.install import merge_hooks

    hooks = {e: [g for g in gs if MARKER not in json.dumps(g)] for e, gs in hooks.items()}
    cmd = hook_command(agent, "/py")
    once = merge_hooks(hooks, agent, cmd)
    assert merge_hooks(once, agent, cmd) == once
    assert _ours({"hooks": once}) == dict.fromkeys(EVENTS[agent], 1)
    restored = merge_hooks(once, agent, None)
    expected = {e: gs for e, gs in hooks.items() if gs}
    assert restored == expected
