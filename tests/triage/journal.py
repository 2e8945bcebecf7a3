"""Build real journals for triage tests (through corral.telemetry, the writer corral uses)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from corral.telemetry import Telemetry
from corral.telemetry.journal import journal_file
from corral.triage.alerts import parse_alert
from corral.triage.source import JournalSource
from corral.triage.verdict import Verdict, triage


class Session:
    """One recorded session: ``shell(cmd)`` records a decision, a result and an outcome."""

    def __init__(self, home: Path, sid: str, *, cwd: str = "/work/repo", tier: int = 2,
                 pid: int = 4242) -> None:
        self.tel = Telemetry.open(None, sid, agent="codex", home=home, tier=tier, export=False)
        self.sid = sid
        self.calls = 0
        self.tel.emit("agent.session.start", {
            "agent.policy.approval": "on-request", "agent.policy.sandbox": ":workspace",
            "agent.policy.network": "proxy", "process.working_directory": cwd,
            "process.pid": pid})

    def prompt(self, text: str, origin: str = "session_api") -> None:
        self.tel.emit("agent.user_prompt", {}, content={"prompt": text}, origin=origin)

    def shell(self, cmd: str, decision: str = "auto_approved", source: str = "heuristic",
              output: str = "", ran: bool = True, files: tuple[str, ...] = ()) -> str:
        self.calls += 1
        call = f"call-{self.calls}"
        self.tel.emit("agent.tool.decision", {
            "gen_ai.tool.name": "shell", "agent.decision": decision,
            "agent.decision.source": source, "process.command_line": cmd}, call_id=call)
        if ran:
            attrs: dict[str, Any] = {"gen_ai.tool.name": "shell", "gen_ai.tool.type": "shell",
                                     "process.command_line": cmd, "process.exit.code": 0}
            if files:
                attrs["agent.patch.files"] = list(files)
            self.tel.emit("agent.tool.result", attrs, call_id=call, content={"output": output})
        return call

    def net(self, host: str, decision: str, pid: int | None = None) -> None:
        attrs: dict[str, Any] = {"network.policy.decision": decision, "server.address": host,
                                 "server.port": 443}
        if pid is not None:
            attrs["process.pid"] = pid
        self.tel.emit("agent.network.decision", attrs)

    def claim(self, cmd: str) -> None:
        self.tel.emit("agent.tool.result", {"gen_ai.tool.name": "shell",
                                            "gen_ai.tool.type": "shell",
                                            "process.command_line": cmd},
                      call_id="api:1", origin="session_api")

    def close(self) -> None:
        self.tel.close()


def alert(**kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": "a", "time": time.time_ns(), "host": socket.gethostname()}
    doc.update(kw)
    return doc


def run(home: Path, doc: dict[str, Any], **kw: Any) -> Verdict:
    return triage(parse_alert(doc), JournalSource(journal_file(home)), **kw)
