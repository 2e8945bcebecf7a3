"""``corral review`` as users run it: the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CORRAL = [sys.executable, "-m", "corral"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(cwd.parent)}
    return subprocess.run([*CORRAL, "review", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def test_json_verdict_for_a_dangerous_command(tmp_path: Path) -> None:
    p = run("--json", "--", "rm", "-rf", "~", cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    d = json.loads(p.stdout)
    assert d["outcome"] == "deny" and d["risk_level"] == "critical"
    assert d["reviewer"] == "deterministic" and d["failed"] is False
    assert "outside the workspace" in d["rationale"]


def test_everyday_command_is_allowed(tmp_path: Path) -> None:
    p = run("--", "bash", "-lc", "pytest -q && git status", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("allow (risk low")


def test_intent_and_cwd(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    denied = run("--json", "--cwd", str(ws), "--", "npm", "publish", cwd=tmp_path)
    allowed = run("--json", "--cwd", str(ws), "--intent", "publish the package to npm", "--",
                  "npm", "publish", cwd=tmp_path)
    assert json.loads(denied.stdout)["outcome"] == "deny"
    d = json.loads(allowed.stdout)
    assert d["outcome"] == "allow" and d["user_authorization"] == "high"


def test_no_command_is_one_clear_line(tmp_path: Path) -> None:
    p = run("--json", cwd=tmp_path)
    assert p.returncode != 0
    assert "corral: review: no command given" in p.stderr or "Missing argument" in p.stderr
