"""The exec boundary (issue 19) with the real Codex and Claude Code CLIs under `corral run`,
against scripted model servers: with no hooks installed, a forbidden `rm` is refused when the
agent starts it and the model reads why; with hooks and the exec boundary both on, a command a
person approved through the hook is not asked about again when it is executed."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.integrations.test_run_e2e import Run, claude, codex  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

RULES = '''
prefix_rule(pattern=["rm"], decision="forbidden",
            justification="EB-WHY: nothing is deleted in this repository")
prefix_rule(pattern=["touch", "asked.txt"], decision="prompt", justification="EB-ASK")
'''


def _setup(tmp_path: Path) -> Run:
    run = Run(tmp_path)
    (run.chome / "rules").mkdir(parents=True)
    (run.chome / "rules" / "team.rules").write_text(RULES)
    (run.work / "build").mkdir()
    (run.work / "build" / "keep.txt").write_text("kept")
    return run


def _exec_decisions(run: Run) -> list[tuple[str, str]]:
    return [(e["attributes"]["process.command_line"], e["attributes"]["agent.decision"])
            for e in run.events() if e["name"] == "agent.tool.decision"
            and e["attributes"].get("gen_ai.tool.name") == "exec"]


def _refused_and_told(binary: Path, tmp_path: Path) -> None:
    run = _setup(tmp_path)
    _, out = run.play(binary, ["rm build/keep.txt", "ls build"], "Done.", "clean the build",
                      hooks=False)
    assert len(out) == 2, out
    # the model reads the refusal: what, by which rule, and why
    assert "is forbidden by policy" in out[0] and "EB-WHY" in out[0], out[0]
    assert "keep.txt" in out[1], out[1]  # the next command ran as usual
    assert (run.work / "build" / "keep.txt").read_text() == "kept"
    refused = [c for c, verdict in _exec_decisions(run) if verdict == "forbidden"]
    assert any("rm build/keep.txt" in c for c in refused), _exec_decisions(run)
    run.verify()


def test_codex_without_hooks_forbidden_rm_is_refused_and_the_model_is_told_why(
        codex, tmp_path):  # noqa: F811
    _refused_and_told(codex, tmp_path)


def test_claude_without_hooks_forbidden_rm_is_refused_and_the_model_is_told_why(
        claude, tmp_path):  # noqa: F811
    _refused_and_told(claude, tmp_path)


def test_codex_with_hooks_is_not_asked_twice_for_the_same_command(codex, tmp_path):  # noqa: F811
    """The hook asks (a person approves once through `corral approve`); the exec of the same
    command that follows is covered by that decision, not asked about again."""
    run = _setup(tmp_path)
    db = run.chome / "state" / "grants.db"
    answered: list[str] = []
    stop = threading.Event()

    def person() -> None:
        while not stop.is_set():
            time.sleep(0.2)
            if not db.exists():
                continue
            with closing(sqlite3.connect(db)) as con:
                try:
                    rows = con.execute("SELECT id, action FROM pending WHERE answered IS "
                                       "NULL").fetchall()
                except sqlite3.OperationalError:
                    continue
            for pid, action in rows:
                # the person approves the command asked for; whatever else Codex starts on its
                # own and the rules ask about (its git housekeeping...) is denied
                ours = "asked.txt" in action
                r = subprocess.run([sys.executable, "-m", "corral", "approve", pid,
                                    "--once" if ours else "--deny"],
                                   env=run.env, capture_output=True, text=True, timeout=60)
                assert r.returncode == 0, r.stderr
                if ours:
                    answered.append(pid)

    t = threading.Thread(target=person, daemon=True)
    t.start()
    (run.chome / "config.toml").write_text("[approvals]\nqueue_timeout_seconds = 60\n")
    try:
        _, out = run.play(codex, ["touch asked.txt", "ls"], "Done.", "make the file")
    finally:
        stop.set()
        t.join(10)
    assert (run.work / "asked.txt").exists(), out
    assert answered, "nobody was asked"
    with closing(sqlite3.connect(db)) as con:
        asked = [a for (a,) in con.execute("SELECT action FROM pending") if "asked.txt" in a]
    assert len(asked) == 1, asked  # one question, from the hook; none from the exec
    shell = [(e["attributes"]["process.command_line"], e["attributes"]["agent.decision"])
             for e in run.events() if e["name"] == "agent.tool.decision"
             and e["attributes"].get("gen_ai.tool.name") == "shell"]
    assert ("bash -lc 'touch asked.txt'", "approved") in shell, shell
    assert not [c for c, _ in _exec_decisions(run) if "asked.txt" in c], _exec_decisions(run)
    hooked = [e["attributes"] for e in run.events() if e["name"] == "agent.exec"
              and "asked.txt" in e["attributes"]["process.command_line"]]
    assert hooked and hooked[0]["agent.decision.source"] == "hook", hooked
    run.verify()


def test_the_journal_says_which_exec_boundary_each_run_had(codex, tmp_path):  # noqa: F811
    run = _setup(tmp_path)
    run.play(codex, ["ls"], "Done.", "list", hooks=False)
    modes = [e["attributes"]["agent.exec.mode"] for e in run.events()
             if e["name"] == "agent.exec.boundary"]
    assert modes == ["top"], modes
