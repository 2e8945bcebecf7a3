"""`corral exec` end to end: real rules, real bubblewrap, real journal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest


def _events(cli) -> list[dict]:
    r = cli("log", "--json")
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def test_allowed_command_runs_sandboxed_and_keeps_its_status(cli):
    r = cli("exec", "--", "bash", "-c", "echo hi > out.txt; exit 7")
    assert r.returncode == 7, r.stderr
    assert (cli.work / "out.txt").read_text() == "hi\n"
    r = cli("exec", "--", "bash", "-c", "echo $CORRAL_SANDBOX $CORRAL_SESSION_ID")
    sandbox_flag, session = r.stdout.split()
    assert sandbox_flag == "1" and len(session) == 26


def test_forbidden_rule_refuses_with_file_line_and_exit_240(cli):
    rules = cli.home / "rules" / "team.rules"
    rules.write_text('# team policy\nprefix_rule(pattern=["git", "push"], decision="forbidden",\n'
                     '    justification="push through the review bot")\n')
    r = cli("exec", "--", "bash", "-lc", "cd . && FOO=1 /usr/bin/git push origin main")
    assert r.returncode == 240
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("corral: rules: ")
    assert f"{rules}:2" in line and "push through the review bot" in line
    assert "do not try to achieve the same effect another way" in line
    decisions = [e for e in _events(cli) if e["name"] == "agent.tool.decision"]
    assert decisions[-1]["attributes"]["agent.decision"] == "forbidden"
    assert decisions[-1]["attributes"]["agent.decision.rule"] == f"{rules}:2"


def test_prompt_without_anyone_to_ask_exits_242(cli):
    r = cli("exec", "--", "git", "push", "--force", "origin", "main")
    assert r.returncode == 242
    assert "nobody could be asked" in r.stderr and "git_push_force" in r.stderr


def test_reviewer_denial_exits_241(cli):
    (cli.home / "rules" / "team.rules").write_text(
        'prefix_rule(pattern=["npm", "publish"], decision="prompt")\n')
    r = cli("exec", "--approval-policy", "untrusted", "--reviewer", "auto_review", "--",
            "npm", "publish")
    assert r.returncode == 241, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("corral: ")


def test_never_policy_turns_prompt_into_forbidden(cli):
    r = cli("exec", "--approval-policy", "never", "--", "git", "push", "--force")
    assert r.returncode == 240, r.stderr


def test_requirements_refuse_explicit_flag(cli, tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "requirements.toml").write_text('allowed_approval_policies = ["untrusted"]\n')
    r = cli("exec", "--approval-policy", "never", "--", "true")
    assert r.returncode == 2
    assert "--approval-policy never is not allowed" in r.stderr


def test_sandbox_violation_is_explained_and_journaled(cli):
    r = cli("exec", "--", "python3", "-c", "open('.git/hooks/pre-commit', 'w')")
    assert r.returncode == 1
    assert "corral: sandbox: blocked write to .git/hooks/pre-commit" in r.stderr
    assert not (cli.work / ".git" / "hooks" / "pre-commit").exists()
    outcomes = [e for e in _events(cli) if e["name"] == "agent.sandbox.outcome"]
    assert outcomes[-1]["attributes"]["agent.sandbox.outcome"] == "sandbox_denied"
    r = cli("log", "verify")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_demo_main_job(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "corral", "demo"], env=env, capture_output=True,
                       text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert out.count("corral: decision:") == 9
    assert "   │ 42\n" in out  # the script's own output, shown as the command's output
    assert re.search(r"(?m)^   │ [0-9a-f]{7} add answer$", out), out
    assert "heuristic:rm_recursive_force" in out
    assert "corral: sandbox: blocked write to .git/hooks/pre-commit" in out
    assert "corral: sandbox: blocked read of" in out
    assert "corral: sandbox: blocked network access" in out
    assert "exit status 242" in out
    assert "journal in" in out
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("corral-demo-")]
    assert len(kept) == 1 and (kept[0] / "corral-home" / "journal").is_dir()  # --keep default


@pytest.mark.slow
def test_demo_no_keep_removes_its_scratch_directory(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "corral", "demo", "--no-keep"], env=env,
                       capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "removed (--no-keep)" in r.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("corral-demo-")]
