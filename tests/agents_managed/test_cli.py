"""`corral agents apply` and `corral agents check` as a user runs them: diffs, root-owned
atomic writes, idempotence, drift (missing, changed by hand, stale), the journal."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from corral.telemetry import Journal
from tests.agents_managed.conftest import ADMIN, corral

FILES = ("etc/codex/requirements.toml", "etc/codex/managed_config.toml",
         "etc/claude-code/managed-settings.json", "etc/gemini-cli/settings.json",
         "etc/gemini-cli/policies/corral.toml")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    etc = tmp_path / "corral-etc"
    etc.mkdir()
    (etc / "requirements.toml").write_text(ADMIN)
    home = tmp_path / "corral-home"
    home.mkdir()
    e = {k: v for k, v in os.environ.items() if not k.startswith(("CORRAL_", "GEMINI_CLI"))}
    return {**e, "CORRAL_HOME": str(home), "CORRAL_SYSTEM_DIR": str(etc)}


def events(env: dict[str, str]) -> list:
    path = Path(env["CORRAL_HOME"]) / "journal" / "journal.db"
    return [e for e in Journal(path).events() if e.name.startswith("agents.")] \
        if path.exists() else []


def test_apply_shows_the_diff_writes_root_owned_files_and_is_idempotent(tmp_path, env):
    root = tmp_path / "root"
    dry = corral("agents", "apply", "--root", str(root), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "--- /dev/null\n+++ /etc/codex/requirements.toml\n" in dry.stdout
    assert '+allowed_sandbox_modes = ["read-only", "workspace-write"]' in dry.stdout
    assert '+      "Bash(git push --force:*)",' in dry.stdout
    assert "+++ /etc/gemini-cli/policies/corral.toml\n" in dry.stdout
    assert '+commandPrefix = "git push -f"' in dry.stdout
    assert dry.stdout.rstrip().endswith("5 of 5 files would change; nothing written")
    assert not root.exists() and events(env) == []

    first = corral("agents", "apply", "--root", str(root), env=env)
    assert first.returncode == 0, first.stderr
    assert "/etc/claude-code/managed-settings.json: written (claude-code)" in first.stdout
    for rel in FILES:
        st = (root / rel).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o644), rel
        assert stat.S_IMODE((root / rel).parent.stat().st_mode) == 0o755
    assert not list(root.rglob(".*.tmp"))  # nothing left of the atomic writes
    (applied,) = events(env)
    assert applied.name == "agents.managed_settings.applied"
    assert json.loads(applied.attributes["agents.managed.files"]) == [
        "/" + f for f in FILES]

    again = corral("agents", "apply", "--root", str(root), env=env)
    assert again.returncode == 0, again.stderr
    assert "---" not in again.stdout and again.stdout.count(": unchanged") == 5
    assert corral("agents", "apply", "--root", str(root), "--dry-run",
                  env=env).stdout.strip() == "dry run: 0 of 5 files would change; nothing written"
    ok = corral("agents", "check", "--root", str(root), env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip() == "managed agent settings match the requirements (5 files)"
    assert events(env)[-1].name == "agents.managed_settings.checked"


def test_check_reports_each_kind_of_drift(tmp_path, env):
    root = tmp_path / "root"
    assert corral("agents", "apply", "--root", str(root), env=env).returncode == 0
    # by hand: an admin loosens Claude Code's deny list; someone deletes Gemini's file
    claude = root / "etc/claude-code/managed-settings.json"
    claude.write_text(claude.read_text().replace('"Bash(git push -f:*)",', ""))
    (root / "etc/gemini-cli/settings.json").unlink()
    policy = root / "etc/gemini-cli/policies/corral.toml"
    policy.write_text(policy.read_text().split("[[rule]]")[0])  # Gemini's deny rules, gone
    os.chmod(root / "etc/codex/managed_config.toml", 0o666)
    # and the requirements move on: requirements.toml is now behind
    etc = Path(env["CORRAL_SYSTEM_DIR"])
    (etc / "requirements.toml").write_text(ADMIN.replace('"on-request"]', '"on-request", '
                                                         '"never"]'))
    r = corral("agents", "check", "--root", str(root), env=env)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert "/etc/codex/requirements.toml (codex): stale: the requirements have changed since " \
        "it was applied" in lines
    assert any(x.startswith("/etc/claude-code/managed-settings.json (claude-code): changed by "
                            "hand: differs from what corral wrote at ") for x in lines)
    assert "/etc/gemini-cli/settings.json (gemini): missing: run `corral agents apply`" in lines
    assert "/etc/codex/managed_config.toml (codex): owner/mode: mode 0666, not 0644" in lines
    assert any(x.startswith("/etc/gemini-cli/policies/corral.toml (gemini): changed by hand: ")
               for x in lines)
    assert len(lines) == 5  # the Claude file is behind too, but it is reported once
    drift = events(env)[-1]
    assert drift.name == "agents.managed_settings.drift"
    assert drift.attributes["agents.managed.drift_count"] == 5
    assert json.loads(drift.attributes["agents.managed.drift"]) == lines
    # apply brings everything back in step
    fixed = corral("agents", "apply", "--root", str(root), env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert '+allowed_approval_policies = ["untrusted", "on-request", "never"]' in fixed.stdout
    assert stat.S_IMODE((root / "etc/codex/managed_config.toml").stat().st_mode) == 0o644
    assert corral("agents", "check", "--root", str(root), env=env).returncode == 0


def test_a_file_nobody_applied(tmp_path, env):
    root = tmp_path / "root"
    (root / "etc/codex").mkdir(parents=True)
    (root / "etc/codex/requirements.toml").write_text(
        'allowed_sandbox_modes = ["danger-full-access"]\n')
    r = corral("agents", "check", "--root", str(root), "--agent", "codex", env=env)
    assert r.returncode == 1
    assert r.stdout.splitlines() == [
        "/etc/codex/requirements.toml (codex): not written by corral: differs from what the "
        "requirements generate",
        "/etc/codex/managed_config.toml (codex): missing: run `corral agents apply`"]


def test_only_the_chosen_agent(tmp_path, env):
    root = tmp_path / "root"
    r = corral("agents", "apply", "--root", str(root), "--agent", "claude-code", env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        "etc/claude-code/managed-settings.json", "var/lib/corral/managed-agents.json"]
    bad = corral("agents", "apply", "--root", str(root), "--agent", "cursor", env=env)
    assert bad.returncode != 0
    assert "corral: agents: unknown agent 'cursor'" in bad.stderr


def test_root_from_the_environment(tmp_path, env):
    root = tmp_path / "elsewhere"
    r = corral("agents", "apply", env={**env, "CORRAL_AGENTS_ROOT": str(root)})
    assert r.returncode == 0, r.stderr
    assert (root / "etc/codex/requirements.toml").exists()


def test_not_root_is_refused_in_one_line(request, env):
    """Writing the real paths needs root; a user is told so and nothing is written or
    journaled. (Run as nobody through setpriv; --dry-run still works.)"""
    base = Path(tempfile.mkdtemp(prefix="corral-agents-"))  # reachable by nobody
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    os.chmod(base, 0o755)
    (base / "etc").mkdir()
    shutil.copy(Path(env["CORRAL_SYSTEM_DIR"]) / "requirements.toml", base / "etc")
    home = base / "home"
    home.mkdir(mode=0o777)
    os.chmod(home, 0o777)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    env = {**env, "HOME": str(home), "CORRAL_HOME": str(home),
           "CORRAL_SYSTEM_DIR": str(base / "etc")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*nobody, sys.executable, "-m", "corral", "agents", *args],
                              capture_output=True, text=True, timeout=120, env=env)

    r = run("apply")
    assert r.returncode != 0
    err = [x for x in r.stderr.splitlines() if x.startswith("corral:")]
    assert err == ["corral: agents: writing /etc/codex/requirements.toml needs root (the agents "
                   "trust administrator files only when root owns them): run it as root, or "
                   "--root DIR to write elsewhere"], r.stderr
    assert not (home / "journal").exists()
    assert run("apply", "--dry-run").returncode == 0


def test_the_fleet_check_in_reports_what_changed_since_apply(tmp_path, env, monkeypatch):
    """The check-in (`corral server devices`' drift column) reads the manifest: applied files
    that are missing or changed since, without rendering anything."""
    from corral.forward.checkin import report
    from corral.telemetry.journal import journal_file

    root = tmp_path / "root"
    assert corral("agents", "apply", "--root", str(root), env=env).returncode == 0
    monkeypatch.setenv("CORRAL_AGENTS_ROOT", str(root))
    home = Path(env["CORRAL_HOME"])
    assert report(home, journal_file(home))["drift"] == []
    claude = root / "etc/claude-code/managed-settings.json"
    claude.write_text(claude.read_text().replace('"allowManagedHooksOnly": true',
                                                 '"allowManagedHooksOnly": false'))
    (root / "etc/codex/requirements.toml").unlink()
    drift = report(home, journal_file(home))["drift"]
    assert drift[0].startswith("managed settings: /etc/claude-code/managed-settings.json "
                               "(claude-code): changed by hand: differs from what corral "
                               "wrote at ")
    assert drift[1:] == ["managed settings: /etc/codex/requirements.toml (codex): missing: run "
                         "`corral agents apply`"]


def test_the_check_in_counts_managed_hooks_as_installed(tmp_path, env, monkeypatch):
    from corral.forward.checkin import hooks_installed

    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))  # no user-level hooks anywhere
    monkeypatch.delenv("CODEX_HOME", raising=False)
    root = tmp_path / "root"
    monkeypatch.setenv("CORRAL_AGENTS_ROOT", str(root))
    assert not any(hooks_installed(a) for a in ("codex", "claude-code", "gemini"))
    assert corral("agents", "apply", "--root", str(root), "--agent", "codex", "--agent",
                  "claude-code", env=env).returncode == 0
    assert [hooks_installed(a) for a in ("codex", "claude-code", "gemini")] == [
        True, True, False]


def test_a_rule_that_cannot_be_carried_over_is_refused_in_one_line(tmp_path, env):
    etc = Path(env["CORRAL_SYSTEM_DIR"])
    (etc / "requirements.toml").write_text(
        '[[rules.prefix_rules]]\npattern = ["x", ["a", "b", "c", "d"], ["a", "b", "c", "d"], '
        '["a", "b", "c", "d"], ["a", "b", "c", "d"], ["a", "b", "c", "d"]]\n'
        'decision = "forbidden"\n')
    root = tmp_path / "root"
    r = corral("agents", "apply", "--root", str(root), env=env)
    assert r.returncode != 0
    assert [x for x in r.stderr.splitlines() if x.startswith("corral:")] == [
        "corral: agents: prefix rule pattern ['x', ['a', 'b', 'c', 'd'], ['a', 'b', 'c', 'd'], "
        "['a', 'b', 'c', 'd'], ['a', 'b', 'c', 'd'], ['a', 'b', 'c', 'd']] expands to 1024 "
        "command prefixes (more than 256); split the rule"], r.stderr
    assert not root.exists() and events(env) == []
    # Codex alone takes the rule as it is (any_of per position)
    assert corral("agents", "apply", "--root", str(root), "--agent", "codex",
                  env=env).returncode == 0
