"""`corral log`: timeline, --json, --session, --follow (real CLI processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from corral.telemetry import (
    NetworkDecision,
    SessionStart,
    Telemetry,
    ToolDecision,
    ToolResult,
    UserPrompt,
)

ROOT = Path(__file__).resolve().parents[2]


def corral(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CORRAL_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "corral", *args], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def session(sid: str, prompt: str) -> None:
    tel = Telemetry.open(None, sid, agent="codex", agent_version="0.169.0")
    tel.emit_event(SessionStart.from_summary({"approval": "on-request"},
                                             approval_policy="on-request"))
    tel.emit_event(UserPrompt(prompt=prompt), turn_id="t1")
    tel.emit_event(ToolDecision(tool_name="shell", decision="approved", source="rule",
                                rule="/home/u/.corral/rules/default.rules:7",
                                command_line="git status"), call_id="c1", turn_id="t1")
    tel.emit_event(ToolResult(tool_name="shell", tool_kind="shell", command_line="git status",
                              exit_code=0, duration_ms=41.0, output="clean"),
                   call_id="c1", turn_id="t1")
    tel.emit_event(ToolDecision(tool_name="shell", decision="denied", source="automated_reviewer",
                                rationale="pushes to main without review",
                                command_line="git push --force"), call_id="c2", turn_id="t1")
    tel.emit_event(NetworkDecision(decision="deny", host="evil.example", port=443,
                                   reason="not in allowlist"), call_id="c3", turn_id="t1")
    tel.close()


def test_timeline_shows_prompt_then_actions_with_decision_source_result(home: Path) -> None:
    session("sess-a", "tidy the repo")
    out = corral(home, "log")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "session sess-a" in text and "codex 0.169.0" in text
    order = [text.index(s) for s in (
        "prompt [", "call c1", "shell approved by rule (/home/u/.corral/rules/default.rules:7)",
        "result exit 0 in 41 ms", "call c2", "denied by automated_reviewer",
        "pushes to main without review", "network deny evil.example:443")]
    assert order == sorted(order), text


def test_json_lines_and_session_filter(home: Path) -> None:
    session("sess-a", "one")
    session("sess-b", "two")
    out = corral(home, "log", "--json", "--session", "sess-b")
    assert out.returncode == 0, out.stderr
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(recs) == 6 and {r["session_id"] for r in recs} == {"sess-b"}
    assert [r["seq"] for r in recs] == list(range(7, 13))
    assert recs[2]["attributes"]["agent.decision.source"] == "rule"
    both = corral(home, "log")
    assert "session sess-a" in both.stdout and "session sess-b" in both.stdout


def test_follow_prints_new_events(home: Path) -> None:
    session("sess-a", "first")
    env = {**os.environ, "CORRAL_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "corral", "log", "--follow", "--json"],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        first = [proc.stdout.readline() for _ in range(6)]
        assert all(json.loads(line)["session_id"] == "sess-a" for line in first)
        time.sleep(0.3)
        tel = Telemetry.open(None, "sess-late")
        tel.emit_event(UserPrompt(prompt="later"), wait=True)
        line = proc.stdout.readline()
        tel.close()
        assert json.loads(line)["session_id"] == "sess-late"
    finally:
        proc.kill()
        proc.wait()


def test_missing_journal_is_one_clear_line(home: Path) -> None:
    out = corral(home, "log")
    assert out.returncode != 0
    assert out.stderr.strip().startswith("corral: telemetry: no journal at")
    out = corral(home, "log", "verify")
    assert out.returncode == 1 and "no journal at" in out.stderr


def test_last_n_sessions(home: Path) -> None:
    for i in range(3):
        session(f"sess-{i}", f"prompt {i}")
    out = corral(home, "log", "--last", "2")
    assert "session sess-0" not in out.stdout
    assert "session sess-1" in out.stdout and "session sess-2" in out.stdout
    js = corral(home, "log", "--json", "--last", "1")
    assert {json.loads(line)["session_id"] for line in js.stdout.splitlines()} == {"sess-2"}
