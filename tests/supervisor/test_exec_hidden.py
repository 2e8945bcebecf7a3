"""`corral exec` end to end with commands hidden from shell analysis (issue 19 item 3): a
forbidden command inside inline code, an environment variable or a package runner is refused
before anything runs; benign inline code runs; unanalysable code is asked about."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def _decisions(cli) -> list[dict]:
    r = cli("log", "--json")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return [e["attributes"] for e in events if e["name"] == "agent.tool.decision"]


def test_hidden_commands_through_corral_exec(cli):
    rules = cli.home / "rules" / "team.rules"
    rules.write_text('prefix_rule(pattern=["rm", ["-rf", "-r"]], decision="forbidden",\n'
                     '    justification="use trash-put")\n')
    victim = cli.work / "victim"
    victim.mkdir()
    refused = [
        ["python3", "-c", "import os; os.system('rm -rf victim')"],
        ["bash", "-lc", "GIT_PAGER='rm -rf victim' git log"],
        ["perl", "-e", "system('rm', '-rf', 'victim')"],
        ["bash", "-lc", "npx --yes rm -rf victim"],
    ]
    for argv in refused:
        r = cli("exec", "--", *argv)
        assert r.returncode == 240, (argv, r.stderr)
        line = r.stderr.strip().splitlines()[-1]
        assert line.startswith("corral: rules: ") and f"{rules}:1" in line, line
        assert "use trash-put" in line
        assert victim.is_dir(), argv
    decisions = _decisions(cli)
    assert [d["agent.decision"] for d in decisions[-len(refused):]] == ["forbidden"] * len(refused)

    # benign inline code runs in the sandbox and keeps its status
    r = cli("exec", "--", "python3", "-c",
            "import subprocess, sys; sys.exit(subprocess.run(['true']).returncode + 3)")
    assert r.returncode == 3, r.stderr

    # unanalysable code is asked about; with nobody to ask it does not run, and says why
    r = cli("exec", "--", "python3", "-c", "exec(open('x.py').read())")
    assert r.returncode == 242, r.stderr
    assert "uses `exec`, which runs code built at run time" in r.stderr
