"""`corral log` after an agent's telemetry was imported: one summarised line per imported record
(the raw record only with --verbose or --json), and nothing the agent chose (call ids, its name)
reaches the terminal unescaped, in the timeline or in --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from corral.config import load_config
from corral.integrations.otlp_receiver import Receiver
from corral.telemetry import Telemetry
from tests.integrations.test_otlp_receiver import CODEX, request

ESC = "\x1b]0;owned\x07\x1b[2J\u202egnp.exe"


def _log(home: Path, *args: str) -> str:
    env = {**os.environ, "CORRAL_HOME": str(home), "COLUMNS": "400"}
    r = subprocess.run([sys.executable, "-m", "corral", "log", *args], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _journal(tmp_path: Path, recs: list[dict[str, Any]]) -> Path:
    work = tmp_path / "w"
    work.mkdir()
    home = tmp_path / "home"
    cfg = load_config(work, home=home, system=tmp_path / "etc")
    tel = Telemetry.open(cfg, agent="codex", tier=1)
    try:
        with Receiver(tel) as rx:
            r = httpx.post(f"{rx.endpoint}/v1/logs",
                           content=request("codex_cli_rs", recs).SerializeToString(),
                           headers={"Content-Type": "application/x-protobuf",
                                    "Authorization": f"Bearer {rx.token}"})
            assert r.status_code == 200
    finally:
        tel.close()
    return home


def test_imported_records_are_one_summarised_line_each(tmp_path: Path) -> None:
    home = _journal(tmp_path, CODEX)
    out = _log(home)
    assert '{"' not in out and "agent.import.raw" not in out  # no raw JSON in the timeline
    lines = [x for x in out.splitlines() if "imported telemetry" in x]
    assert len(lines) == 7
    result = next(x for x in lines if "codex.tool_result" in x and "call_9" in x)
    assert "claimed by the agent (imported telemetry): codex.tool_result call import:call_9 " \
           "failed 812 ms shell" in result
    decision = next(x for x in lines if "codex.tool_decision" in x and "call_10" in x)
    assert "approved_for_session by user" in decision
    verbose = _log(home, "--verbose")
    assert verbose.count('"attributes"') == 7  # each raw record, on request
    assert len(_log(home, "--json").splitlines()) == 7  # the raw records are in --json too


def test_agent_chosen_text_is_escaped_in_the_timeline_and_json(tmp_path: Path) -> None:
    recs = [{"event.name": "codex.tool_result", "tool_name": "shell" + ESC,
             "call_id": "c1" + ESC, "success": "true", "duration_ms": 12, "output": ESC}]
    home = _journal(tmp_path, recs)
    for args in ((), ("--verbose",), ("--json",)):
        out = _log(home, *args)
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, args
    assert "call import:c1" in _log(home)
    for line in _log(home, "--json").splitlines():
        json.loads(line)
        assert line.isascii()
