"""The pipeline's prompt path with real processes: reviewer, queue answered by `corral approve`
in another process, grants reused across sessions, and every policy x decision x reviewer cell."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from corral.supervisor.pipeline import EXIT_CANNOT_ASK, EXIT_DENIED, EXIT_FORBIDDEN


def _decisions(cli) -> list[dict]:
    r = cli("log", "--json")
    return [e["attributes"] for e in map(json.loads, r.stdout.splitlines())
            if e["name"] == "agent.tool.decision"]


RULES = ('prefix_rule(pattern=["make", "deploy"], decision="prompt", '
         'justification="deploys need a look")\n'
         'prefix_rule(pattern=["npm", "publish"], decision="prompt", '
         'justification="publishing needs a look")\n'
         'prefix_rule(pattern=["make", "nuke"], decision="forbidden", '
         'justification="never")\n')

# (policy, reviewer, command) -> expected exit status. `make deploy` and `npm publish` prompt by
# rule; the deterministic reviewer lets `make deploy` run (make then fails: no Makefile, status
# 2) and denies publishing; `make nuke` is forbidden; `make -v` matches nothing and is not on the
# safe list; `ls` is known safe.
MATRIX = [
    ("untrusted", "user", ["ls"], 0),
    ("untrusted", "user", ["make", "deploy"], EXIT_CANNOT_ASK),
    ("untrusted", "user", ["make", "nuke"], EXIT_FORBIDDEN),
    ("untrusted", "user", ["make", "-v"], EXIT_CANNOT_ASK),
    ("untrusted", "auto_review", ["make", "-v"], 0),
    ("untrusted", "auto_review", ["make", "deploy"], 2),
    ("untrusted", "auto_review", ["npm", "publish"], EXIT_DENIED),
    ("untrusted", "auto_review", ["make", "nuke"], EXIT_FORBIDDEN),
    ("on-request", "user", ["make", "-v"], 0),
    ("on-request", "user", ["make", "deploy"], EXIT_CANNOT_ASK),
    ("on-request", "auto_review", ["npm", "publish"], EXIT_DENIED),
    ("on-request", "user", ["make", "nuke"], EXIT_FORBIDDEN),
    ("on-failure", "user", ["make", "-v"], 0),
    ("on-failure", "user", ["make", "deploy"], EXIT_CANNOT_ASK),
    ("on-failure", "auto_review", ["make", "nuke"], EXIT_FORBIDDEN),
    ("never", "user", ["make", "-v"], 0),
    ("never", "user", ["make", "deploy"], EXIT_FORBIDDEN),
    ("never", "auto_review", ["make", "deploy"], EXIT_FORBIDDEN),
    ("never", "user", ["make", "nuke"], EXIT_FORBIDDEN),
]


def test_exit_statuses_are_the_documented_numbers() -> None:
    # README and docs/supervisor.md promise these numbers to scripts and CI jobs.
    assert (EXIT_FORBIDDEN, EXIT_DENIED, EXIT_CANNOT_ASK) == (240, 241, 242)


@pytest.mark.parametrize(("policy", "reviewer", "argv", "expected"), MATRIX)
def test_policy_decision_reviewer_matrix(cli, policy, reviewer, argv, expected):
    (cli.home / "rules" / "team.rules").write_text(RULES)
    r = cli("exec", "--approval-policy", policy, "--reviewer", reviewer, "--", *argv)
    assert r.returncode == expected, r.stderr
    last = _decisions(cli)[-1]
    if expected in (0, 2):
        assert last["agent.decision"] == "auto_approved"
    elif expected == EXIT_FORBIDDEN:
        assert last["agent.decision"] == "forbidden"
        assert "do not try to achieve the same effect another way" in r.stderr
    elif expected == EXIT_DENIED:
        assert last["agent.decision.source"] == "automated_reviewer"
        assert "denied by the deterministic reviewer" in r.stderr
    if reviewer == "auto_review" and expected in (0, 2) and policy == "untrusted":
        assert last["agent.decision.source"] == "automated_reviewer"


def test_granular_policy_refuses_rule_prompts(cli):
    (cli.home / "rules" / "team.rules").write_text(RULES)
    r = cli("-c", "approval_policy={granular={rules=false, sandbox_approval=true}}",
            "exec", "--", "make", "deploy")
    assert r.returncode == EXIT_FORBIDDEN, r.stderr
    assert "corral: approvals:" in r.stderr


@pytest.mark.slow
def test_queue_answered_from_another_process_then_project_grant_reused(cli):
    (cli.home / "rules" / "team.rules").write_text(RULES)
    waiting = cli("-c", "approvals.queue_timeout_seconds=30", "exec", "--", "make", "deploy",
                  wait=False)
    pending: list[dict] = []
    deadline = time.monotonic() + 20
    while not pending and time.monotonic() < deadline:
        r = cli("approve", "--json")
        pending = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        time.sleep(0.2)
    assert pending, "the question never reached the queue"
    assert pending[0]["action"]["argv"] == ["make", "deploy"]
    assert "deploys need a look" in pending[0]["reason"]
    r = cli("approve", str(pending[0]["id"]), "--project")
    assert r.returncode == 0, r.stderr
    _out, err = waiting.communicate(timeout=30)
    # make deploy ran (and failed: there is no Makefile) -> make's own status, not ours.
    assert waiting.returncode == 2, err
    assert "No rule to make target" in err or "No targets" in err or "makefile" in err.lower()
    decisions = _decisions(cli)
    assert decisions[-1]["agent.decision"] == "approved_for_project"
    # A new session in the same project: covered by the project grant, nobody asked.
    r = cli("exec", "--", "make", "deploy")
    assert r.returncode == 2, r.stderr
    assert _decisions(cli)[-1]["agent.decision"] == "approved_for_project"
    grants = cli("grants", "list", "--json")
    rows = [json.loads(line) for line in grants.stdout.splitlines() if line.strip()]
    assert rows and rows[0]["scope"] == "project" and rows[0]["pattern"][:2] == ["make", "deploy"]
    assert cli("grants", "revoke", rows[0]["id"]).returncode == 0
    assert cli("exec", "--", "make", "deploy").returncode == EXIT_CANNOT_ASK


def test_escalation_is_refused_under_never_and_without_anyone_to_ask(cli):
    r = cli("exec", "--approval-policy", "never", "--escalate", "--", "true")
    assert r.returncode == EXIT_FORBIDDEN, r.stderr
    assert "escalation of `true` refused" in r.stderr
    r = cli("exec", "--escalate", "--", "true")
    assert r.returncode == EXIT_CANNOT_ASK, r.stderr
    r = cli("log", "--json")
    outcomes = [e["attributes"]["agent.sandbox.outcome"] for e in map(json.loads,
                r.stdout.splitlines()) if e["name"] == "agent.sandbox.outcome"]
    assert outcomes == ["escalation_denied", "escalation_denied"]


@pytest.mark.slow
def test_approved_escalation_lifts_the_filesystem_boundary_only(cli, tmp_path):
    outside = Path(f"/var/tmp/corral-escalation-{os.getpid()}")
    secret_home = tmp_path / "userhome"
    (secret_home / ".ssh").mkdir(parents=True)
    (secret_home / ".ssh" / "id_ed25519").write_text("PRIVATE")
    script = (f"echo done > {outside}; cat {secret_home}/.ssh/id_ed25519; "
              "echo > .git/hooks/post-commit")
    try:
        # Without escalation the write outside the workspace fails.
        r = cli("exec", "--", "bash", "-c", f"echo x > {outside}")
        assert r.returncode != 0 and not outside.exists()
        waiting = cli("-c", "approvals.queue_timeout_seconds=30", "exec", "--escalate",
                      "--", "bash", "-c", script, wait=False, home=secret_home)
        pending: list[dict] = []
        deadline = time.monotonic() + 20
        while not pending and time.monotonic() < deadline:
            out = cli("approve", "--json").stdout
            pending = [json.loads(line) for line in out.splitlines() if line.strip()]
            time.sleep(0.2)
        assert pending and pending[0]["kind"] == "escalation"
        assert cli("approve", str(pending[0]["id"]), "--once").returncode == 0
        out, err = waiting.communicate(timeout=30)
        assert outside.read_text() == "done\n"  # the boundary was lifted...
        assert "PRIVATE" not in out + err  # ...secrets stayed hidden
        assert "blocked read of" in err and waiting.returncode != 0
        assert not (cli.work / ".git" / "hooks" / "post-commit").exists()  # and .git/hooks
    finally:
        outside.unlink(missing_ok=True)
