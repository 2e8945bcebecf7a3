"""`corral policy check|decide|test` as a user runs them (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORRAL = ROOT / ".venv" / "bin" / "corral"


def corral(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CORRAL), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, cwd=cwd)


RULES = """
prefix_rule(pattern=["git", ["push", "commit"]], decision="prompt", justification="ask first")
prefix_rule(pattern=["rm", "-rf"], decision="forbidden")
prefix_rule(pattern=["git"], match=["git status"], not_match=["ls"])
host_executable(name="git", paths=["/usr/bin/git"])
"""


@pytest.fixture()
def rules(tmp_path: Path) -> Path:
    p = tmp_path / "team.rules"
    p.write_text(RULES)
    return p


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize(
    "extra",
    [["--", "git", "push", "origin"], ["--pretty", "--", "git", "commit"],
     ["--resolve-host-executables", "--", "/usr/bin/git", "push"], ["--", "ls", "-la"],
     ["--resolve-host-executables", "--pretty", "--", "/opt/git", "push"]],
)
def test_check_output_identical_to_codex(codex_bin: Path, rules: Path, extra: list[str]) -> None:
    ours = corral("policy", "check", "-r", str(rules), *extra)
    theirs = subprocess.run([str(codex_bin), "execpolicy", "check", "-r", str(rules), *extra],
                            capture_output=True, text=True, timeout=60)
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout)


def test_check_bad_file_fails_with_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.rules"
    bad.write_text('prefix_rule(pattern=["a"])\nprefix_rule(pattern=["b"], decision="maybe")\n')
    r = corral("policy", "check", "-r", str(bad), "--", "a")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines()[0] == f"Error: failed to parse policy at {bad}"
    assert f"{bad}:2: invalid decision: maybe" in r.stderr


def test_decide_json_shape(rules: Path) -> None:
    r = corral("policy", "decide", "-r", str(rules), "--json", "--",
               "bash", "-lc", "git status && /bin/rm -rf /tmp/x")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"decision", "commands", "matches", "reason"}
    assert out["decision"] == "forbidden"
    assert out["commands"] == [["git", "status"], ["/bin/rm", "-rf", "/tmp/x"]]
    assert {"command": ["/bin/rm", "-rf", "/tmp/x"], "decision": "forbidden",
            "source": f"{rules}:3", "justification": None} in out["matches"]
    assert "rejected" in out["reason"]


def test_decide_never_refuses_prompts(rules: Path) -> None:
    r = corral("policy", "decide", "-r", str(rules), "--json", "--approval-policy", "never",
               "--", "git", "push")
    out = json.loads(r.stdout)
    assert out["decision"] == "forbidden" and "never" in out["reason"]
    bad = corral("policy", "decide", "-r", str(rules), "--approval-policy", "sometimes", "--", "ls")
    assert bad.returncode == 2 and "corral: rules: unknown approval policy" in bad.stderr


def test_decide_uses_configured_sources_and_reports_broken_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "rules").mkdir(parents=True)
    (home / "rules" / "a.rules").write_text('prefix_rule(pattern=["deploy"], decision="forbidden")')
    (home / "rules" / "b.rules").write_text('\nprefix_rule(pattern=["x"], decision=1)\n')
    env = {"CORRAL_HOME": str(home), "CORRAL_SYSTEM_DIR": str(tmp_path / "sys")}
    r = corral("policy", "decide", "--json", "--", "deploy", "prod", env=env, cwd=tmp_path)
    assert json.loads(r.stdout)["decision"] == "forbidden", r.stderr
    assert f"{home / 'rules' / 'b.rules'}:2" in r.stderr
    r = corral("policy", "decide", "--json", "--", "ls", env=env, cwd=tmp_path)
    out = json.loads(r.stdout)
    assert out["decision"] == "prompt"
    assert any(m["source"].startswith(str(home / "rules" / "b.rules")) for m in out["matches"])


def test_policy_test_reports_failures(tmp_path: Path, rules: Path) -> None:
    bad = tmp_path / "bad.rules"
    bad.write_text('\n\nprefix_rule(pattern=["a"], not_match=["a b"])\n')
    r = corral("policy", "test", str(rules), str(bad))
    assert r.returncode == 1
    assert f"ok   {rules}" in r.stdout
    assert f"FAIL {bad}:3: not_match example `a b` matches rule `a`" in r.stdout
    assert corral("policy", "test", str(rules)).returncode == 0


def test_check_rejects_non_utf8_arguments_like_codex(rules: Path) -> None:
    proc = subprocess.run([str(CORRAL), "policy", "check", "-r", str(rules), "--", b"\xff", "x"],
                          capture_output=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.startswith(b"error: invalid UTF-8 was detected in one or more arguments")


@pytest.mark.slow
@pytest.mark.e2e
def test_fast_entry_point_cache_miss_then_hit(codex_bin: Path, rules: Path, tmp_path: Path) -> None:
    """The typer-free path: first run compiles and caches, second run reads the cache."""
    py = str(ROOT / ".venv" / "bin" / "python")
    env = {**os.environ, "CORRAL_HOME": str(tmp_path / "home")}
    args = ["-r", str(rules), "--resolve-host-executables", "--", "/usr/bin/git", "push"]
    want = subprocess.run([str(codex_bin), "execpolicy", "check", *args], capture_output=True,
                          text=True, timeout=60).stdout
    for _ in range(2):
        got = subprocess.run([py, "-m", "corral.rules.check_fast", *args], capture_output=True,
                             text=True, timeout=60, env=env)
        assert (got.returncode, got.stdout) == (0, want), got.stderr
    assert len(list((tmp_path / "home" / "state" / "rules-cache").glob("*.marshal"))) == 1
    # editing the file invalidates the cache entry
    rules.write_text(RULES.replace('"prompt"', '"forbidden"'))
    got = subprocess.run([py, "-m", "corral.rules.check_fast", *args], capture_output=True,
                         text=True, timeout=60, env=env)
    assert '"decision":"forbidden"' in got.stdout
