"""``git -c KEY=VALUE``: a setting that can make git run a program is a question, one that
switches such a setting off is not. Codex and Claude Code pass ``-c core.fsmonitor=false``,
``-c core.askPass=`` and ``-c protocol.file.allow=never`` on their own git calls; before
this, each of those was asked about at the exec boundary (about 17 questions per Codex start).
"""

from __future__ import annotations

import pytest

from corral.rules import Policy, decide
from corral.rules.analysis import analyze
from corral.types import RuleDecision

HARMLESS = [
    "git -c core.fsmonitor=false status",
    "git -c core.fsmonitor=true status",  # git's built-in daemon, not a program
    "git -c core.askPass= fetch",
    "git -c core.askpass='' fetch",
    "git -c protocol.file.allow=never submodule update",
    "git -c core.pager=/dev/null log",
    "git -c credential.helper= fetch",
    "git -ccore.fsmonitor=0 status",
    "git -c core.hooksPath=/dev/null commit -m x",
]
RISKY = [
    "git -c core.fsmonitor=/tmp/x status",
    "git -c core.askPass=/tmp/steal fetch",
    "git -c protocol.ext.allow=always fetch ext::sh",
    "git -c core.pager='rm -rf x' log",
    "git -c alias.x='!rm -rf x' x",
    "git -c core.sshCommand status",  # KEY alone means true: a program named "true"? still asked
    "git -ccore.pager=less log",
    "git --config-env=core.pager=PAGER_VAR log",  # the value lives in the environment
    'git -c "$SETTING" log',
]


@pytest.mark.parametrize("cmd", HARMLESS)
def test_switching_a_program_setting_off_is_not_a_question(cmd: str) -> None:
    assert not [p for p in analyze(["bash", "-lc", cmd]).problems if "git" in p[1]]
    assert decide(["bash", "-lc", cmd], Policy(), "on-request").decision is RuleDecision.ALLOW


@pytest.mark.parametrize("cmd", RISKY)
def test_a_setting_that_can_run_a_program_is_asked_about(cmd: str) -> None:
    problems = analyze(["bash", "-lc", cmd]).problems
    assert any("git" in p[1] for p in problems), problems
    assert decide(["bash", "-lc", cmd], Policy(), "on-request").decision is RuleDecision.PROMPT
