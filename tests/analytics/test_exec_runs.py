"""`corral stats` over a journal written by real `corral exec` runs (real sandbox, real
decisions), against what those runs are known to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _corral(args: list[str], home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CORRAL_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "corral", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_stats_of_real_exec_runs(tmp_path: Path) -> None:
    home, repo = tmp_path / "home", tmp_path / "work" / "webshop"
    home.mkdir()
    repo.mkdir(parents=True)
    runs = [(["exec", "--", "true"], 0), (["exec", "--", "ls", "/nonexistent"], 2),
            (["exec", "--", "rm", "-rf", "/"], 242),
            (["exec", "--approval-policy", "never", "--", "touch", "/etc/corral-xx"], 1)]
    for args, code in runs:
        assert _corral(args, home, repo).returncode == code
    out = _corral(["stats", "--json", "--by", "repo"], home, repo)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["sessions"] == 4 and s["active_users"] == 1 and s["tool_calls"] == 4
    assert {k: s["decisions"][k] for k in ("allow", "prompt", "forbidden")} == \
        {"allow": 3, "prompt": 1, "forbidden": 0}
    assert s["decisions"]["outcomes"] == {"auto_approved": 3, "denied": 1}
    assert s["sandbox"]["outcomes"] == {"success": 1, "failure": 1, "sandbox_denied": 1}
    assert s["sandbox"]["denials_by_kind"] == {"write": 1}
    assert s["agents"] == {"corral-exec": 4}
    assert s["tools"]["by_kind"] == {"shell": 4}
    assert s["tools"]["results"] == {"shell": 3} and s["tools"]["failures"] == {"shell": 2}
    assert s["policies"]["approval"] == {"on-request": 3, "never": 1}
    assert s["network"] == {"allow": 0, "deny": 0, "ask": 0,
                            "per_100_tool_calls": {"allow": 0.0, "deny": 0.0, "ask": 0.0}}
    assert list(s["groups"]) == ["webshop"] and s["groups"]["webshop"]["tool_calls"] == 4
    # a second run reads only what is new: one more call
    assert _corral(["exec", "--", "true"], home, repo).returncode == 0
    again = json.loads(_corral(["stats", "--json"], home, repo).stdout)
    assert again["tool_calls"] == 5 and again["sessions"] == 5
