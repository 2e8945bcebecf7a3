"""`corral policy replay`: past decisions from a real journal, re-decided with new rules."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from corral.telemetry.journal import JournalWriter
from corral.telemetry.schema import Event

ROOT = Path(__file__).resolve().parents[2]


def _event(n: int, verdict: str, cmdline: str, name: str = "agent.tool.decision") -> Event:
    return Event(id=f"01ARZ3NDEKTSV4RRFFQ69G5F{n:02d}", name=name, time_unix_nano=n,
                 session_id="s1", turn_id=None, call_id=f"call-{n}", user="u", host="h",
                 agent_name="test", agent_version="0", corral_version="0.1.0", tier=1,
                 attributes={"gen_ai.tool.name": "shell", "agent.decision": verdict,
                             "agent.decision.source": "rule", "process.command_line": cmdline})


def test_replay_lists_changed_decisions(tmp_path: Path) -> None:
    db = tmp_path / "journal" / "journal.db"
    db.parent.mkdir()
    writer = JournalWriter(db, Ed25519PrivateKey.generate())
    writer.append([
        _event(1, "auto_approved", "git status"),
        _event(2, "auto_approved", "bash -lc 'npm test && git push --force'"),
        _event(3, "approved", "make deploy"),
        _event(4, "forbidden", "rm -rf build"),
        _event(5, "auto_approved", "echo 'unterminated"),
        _event(6, "auto_approved", "ls", name="agent.tool.result"),
    ])
    writer.close()
    rules = tmp_path / "new.rules"
    rules.write_text('prefix_rule(pattern=["git", "push", "--force"], decision="forbidden")\n'
                     'prefix_rule(pattern=["make", "deploy"], decision="allow")\n')
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/corral"), "policy", "replay", "--journal", str(db), "-r",
         str(rules), "--json"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "CORRAL_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["checked"] == 5
    changed = {c["command_line"]: (c["before"], c["after"]) for c in out["changes"]}
    assert changed == {
        "bash -lc 'npm test && git push --force'": ("allow", "forbidden"),
        "make deploy": ("prompt", "allow"),
        "rm -rf build": ("forbidden", "prompt"),  # the new rules no longer forbid it
    }
    assert [u[1] for u in out["unreadable"]] == ["echo 'unterminated"]
