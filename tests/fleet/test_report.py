"""The check-in report from a real journal and real agent settings files."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from corral.config.enrolment import policy_cache
from corral.forward.checkin import report
from corral.telemetry.journal import JournalWriter, journal_file
from corral.telemetry.keys import load_or_create_signing_key
from corral.telemetry.schema import Event
from corral.telemetry.ulid import new_ulid


def _ev(name: str, agent: str, version: str, age_s: float = 0) -> Event:
    return Event(id=new_ulid(), name=name, time_unix_nano=time.time_ns() - int(age_s * 1e9),
                 session_id="s", turn_id=None, call_id=None, user="u", host="h",
                 agent_name=agent, agent_version=version, corral_version="0.1.0", tier=1,
                 attributes={})


def test_report_from_journal_and_settings(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "corral"
    user = tmp_path / "user"
    (user / ".claude").mkdir(parents=True)
    (user / ".codex").mkdir()
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.delenv("CODEX_HOME", raising=False)
    monkeypatch.delenv("GEMINI_CLI_HOME", raising=False)
    (user / ".codex" / "hooks.json").write_text(json.dumps({"hooks": {"PreToolUse": [{
        "hooks": [{"type": "command",
                   "command": "/usr/bin/python3 -I -m corral.integrations.hook_main codex"}]}]}}))
    w = JournalWriter(journal_file(home), load_or_create_signing_key(home))
    try:
        w.append([_ev("agent.session.start", "codex", "0.63.0", age_s=60),
                  _ev("agent.tool.decision", "codex", "0.63.0"),
                  _ev("agent.session.start", "claude-code", "2.0.1", age_s=30),
                  _ev("agent.session.start", "corral-exec", "")])
    finally:
        w.close()
    policy_cache(home).parent.mkdir(parents=True, exist_ok=True)
    policy_cache(home).write_text(json.dumps({"policy_version": 7}))
    doc = report(home, journal_file(home), (10, 14))
    assert doc["agents"] == {"codex": "0.63.0", "claude-code": "2.0.1"}
    assert doc["hooks"] == {"codex": "installed, active",
                            "claude-code": "not installed (sessions seen)",
                            "gemini": "not installed"}
    assert doc["drift"] == ["claude-code ran here without corral's hooks installed"]
    assert doc["policy_applied"] == 7
    assert doc["forwarding"] == {"acknowledged": 10, "head": 14, "behind": 4}


@pytest.mark.parametrize("moved", [False, True])
def test_report_covers_gemini_where_install_hooks_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moved: bool) -> None:
    """Gemini CLI's hooks, installed by the real ``install_hooks`` (``~/.gemini`` or
    ``$GEMINI_CLI_HOME/.gemini``), are reported installed and active like the others."""
    from corral.integrations.install import install_hooks

    home = tmp_path / "corral"
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.delenv("CODEX_HOME", raising=False)
    if moved:
        monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "ghome"))
    else:
        monkeypatch.delenv("GEMINI_CLI_HOME", raising=False)
    w = JournalWriter(journal_file(home), load_or_create_signing_key(home))
    try:
        w.append([_ev("agent.session.start", "gemini", "0.61.0", age_s=10)])
    finally:
        w.close()
    doc = report(home, journal_file(home))
    assert doc["hooks"]["gemini"] == "not installed (sessions seen)"
    assert doc["drift"] == ["gemini ran here without corral's hooks installed"]
    install_hooks("gemini")
    written = (tmp_path / "ghome" if moved else user) / ".gemini" / "settings.json"
    assert "corral.integrations.hook_main" in written.read_text()
    doc = report(home, journal_file(home))
    assert doc["hooks"]["gemini"] == "installed, active"
    assert doc["drift"] == []
