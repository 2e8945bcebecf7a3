"""`corral run -- AGENT` when the agent's permission files do not exist yet (no `hooks.json`
before `corral install-hooks`, no `rules/`, no `settings.json`): a stand-in agent, the whole
process in the real sandbox, tries every way to create them and fails; its config directory is
otherwise writable, and the host is left exactly as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sandbox.test_locked import PROBE, snapshot

AGENT = "#!/usr/bin/env python3\n" + PROBE  # every way to get its own file in place


CASES = {
    # codex with only its config.toml: hooks.json, rules/, requirements.toml ... missing
    "codex": (".codex", {"config.toml": 'model = "m"\n'},
              "hooks.json rules requirements.toml managed_config.toml config.toml"),
    # Claude Code before anything was configured: an empty ~/.claude
    "claude": (".claude", {}, "settings.json settings.local.json managed-settings.json"),
    "gemini": (".gemini", {"oauth_creds.json": "{}"},
               "settings.json trustedFolders.json policies extensions commands skills agents "
               ".env"),
    # $GEMINI_CLI_HOME names the directory holding .gemini: the lock follows it
    "gemini-moved": ("elsewhere/gemini-home/.gemini", {}, "settings.json policies .env"),
    # $CODEX_HOME moves codex's directory: the lock follows it
    "codex-moved": ("elsewhere/codex-home", {},
                    "hooks.json rules config.toml requirements.toml"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_agent_cannot_create_its_missing_permission_files(tmp_path: Path, case: str) -> None:
    rel, files, locked = CASES[case]
    home = tmp_path / "userhome"
    cdir = home / rel
    cdir.mkdir(parents=True)
    for name, text in files.items():
        (cdir / name).write_text(text)
    work = tmp_path / "work"
    work.mkdir()
    program = case.split("-")[0]
    agent = tmp_path / "bin" / program  # the preset is chosen by the program's name
    agent.parent.mkdir()
    agent.write_text(AGENT)
    agent.chmod(0o755)
    env = dict(os.environ, HOME=str(home), CORRAL_HOME=str(tmp_path / "corral-home"),
               CORRAL_SYSTEM_DIR=str(tmp_path / "etc"), AGENT_DIR=str(cdir), LOCKED=locked)
    env.pop("CODEX_HOME", None)
    env.pop("CLAUDE_CONFIG_DIR", None)
    env.pop("GEMINI_CLI_HOME", None)
    if case == "codex-moved":
        env["CODEX_HOME"] = str(cdir)
    if case == "gemini-moved":
        env["GEMINI_CLI_HOME"] = str(cdir.parent)
    before = snapshot(tmp_path / "userhome")
    r = subprocess.run([sys.executable, "-m", "corral", "run", "--", str(agent)], cwd=work,
                       env=env, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for name in locked.split():
        assert out[f"{name}:write"] in (30, 13, 21), (name, out)  # EROFS / EACCES / EISDIR
        assert out[f"{name}:rename-over"] in (16, 21), (name, out)  # EBUSY / EISDIR
        assert out[f"{name}:delete"] == 16, (name, out)  # EBUSY: a mount point
        assert out[f"{name}:rename-away"] == 16, (name, out)
        assert out[f"{name}:excl"] == 17, (name, out)  # EEXIST: it is there, read-only
        assert out[f"{name}:chmod"] == 30, (name, out)
        assert out[f"{name}:inside"] in (30, 20), (name, out)  # EROFS / ENOTDIR
    # the directory itself stays the agent's to use
    assert (cdir / "history.jsonl").read_text().startswith('{"hooks"')
    after = snapshot(tmp_path / "userhome")
    after.pop(str((cdir / "history.jsonl").relative_to(home)))
    assert after == before  # no placeholder, no residue, the user's config untouched
    assert "corral: sandbox: left" not in r.stderr


def test_a_symlinked_permission_file_is_named_as_only_partly_locked(tmp_path: Path,
                                                                    monkeypatch, capsys) -> None:
    """The mount lands on a symlink's target; the link is an entry of the writable directory.
    `corral run` says so before starting instead of pretending the file is locked."""
    from corral.sandbox import build_plan
    from corral.supervisor.run import PRESETS, _lock_files

    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    (tmp_path / "dotfiles").mkdir()
    (tmp_path / "dotfiles" / "config.toml").write_text("")
    (home / ".codex" / "config.toml").symlink_to(tmp_path / "dotfiles" / "config.toml")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CODEX_HOME", raising=False)
    base = build_plan(":workspace", tmp_path, home=home)  # home is writable here: its own locks
    plan = _lock_files(base, PRESETS["codex"], home)
    assert {lk.path.name for lk in plan.locked[len(base.locked):]} == {
        "config.toml", "hooks.json", "requirements.toml", "managed_config.toml", "rules"}
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"corral: sandbox: warning: {home / '.codex' / 'config.toml'} is a symlink: "
                   "its target is read-only in the sandbox, but the link itself can be "
                   "replaced from inside (make it a regular file to lock it)"]


@pytest.mark.slow
def test_killed_agent_or_supervisor_leaves_the_host_as_it_was(tmp_path: Path) -> None:
    """The agent killed (SIGKILL): `corral run` still removes its placeholders. `corral run`
    itself killed: the placeholders stay (nothing is left to remove them), still read-only
    stand-ins; the next run recognises and removes them."""
    import signal
    import time

    home = tmp_path / "userhome"
    cdir = home / ".codex"
    cdir.mkdir(parents=True)
    (cdir / "config.toml").write_text('model = "m"\n')
    work = tmp_path / "work"
    work.mkdir()
    agent = tmp_path / "bin" / "codex"
    agent.parent.mkdir()
    agent.write_text("#!/bin/sh\n[ -n \"$SLEEP\" ] && exec sleep 60\nkill -9 $$\n")
    agent.chmod(0o755)
    env = dict(os.environ, HOME=str(home), CORRAL_HOME=str(tmp_path / "corral-home"),
               CORRAL_SYSTEM_DIR=str(tmp_path / "etc"))
    env.pop("CODEX_HOME", None)
    before = snapshot(home)
    cmd = [sys.executable, "-m", "corral", "run", "--", str(agent)]
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert snapshot(home) == before, r.stderr

    supervisor = subprocess.Popen(cmd, cwd=work, env=dict(env, SLEEP="1"),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (cdir / "hooks.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let bwrap mount it
    supervisor.send_signal(signal.SIGKILL)
    supervisor.wait(timeout=30)
    left = sorted(p.name for p in cdir.iterdir())
    assert {"hooks.json", "rules", "requirements.toml"} <= set(left), left
    assert (cdir / "hooks.json").read_bytes() == b"{}"

    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert snapshot(home) == before, r.stderr
