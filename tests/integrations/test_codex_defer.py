"""The real Codex CLI (approval `never`) with corral's hooks outside `corral run`: a command
corral's rules would ask about, with nobody corral can ask, is left to Codex's own approval, and
Codex runs it. The journal and `corral log` say exactly that (deferred to the agent), never that
corral denied a command that then ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integrations.model_server import message, shell_call
from tests.integrations.test_codex_e2e import codex, corral_cli, run_codex

pytestmark = pytest.mark.slow
__all__ = ["codex"]  # the fixture, used by name


def test_deferred_prompt_is_recorded_as_the_agents_decision(codex: Path, session: Any,
                                                            tmp_path: Path) -> None:
    script = "git push --force origin main 2>/dev/null; echo ran > ran.txt"
    proc, _srv, _rx = run_codex(codex, session, [shell_call(script, "c0"), message("done")],
                                "push it", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (session.work / "ran.txt").read_text() == "ran\n"  # Codex's approval let it run
    session.tel.flush(10)
    ours = [e.attributes for e in session.events() if e.name == "agent.tool.decision"
            and "agent.import.source" not in e.attributes]
    assert [(a["agent.decision"], a["agent.decision.source"]) for a in ours] == [
        ("deferred_to_agent", "agent")]
    assert "the agent's own approval decides" in ours[0]["agent.decision.rationale"]
    session.tel.close()
    log = corral_cli(session, "log", "--journal", str(session.tel.journal_path))
    assert log.returncode == 0, log.stderr
    ours_line = [x for x in log.stdout.splitlines() if "shell deferred" in x]
    assert len(ours_line) == 1 and "deferred to the agent's own approval" in ours_line[0]
    assert "shell denied" not in log.stdout
