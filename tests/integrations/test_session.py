"""AgentSession: the outside-the-sandbox half of `corral run` — journal, pipeline, API socket,
OTLP receiver — and what an agent inside the sandbox is given to reach them."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from corral.config import load_config
from corral.errors import CorralError
from corral.integrations.session import AgentSession, agent_of, with_agent_args
from corral.telemetry import Journal
from tests.integrations.test_otlp_receiver import CODEX, request


def _cfg(tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    return load_config(work, home=tmp_path / "home", system=tmp_path / "etc"), work


def _bridge(port_sock: Path) -> tuple[int, threading.Thread]:
    """A one-connection loopback TCP -> unix socket relay, like the sandbox's."""
    lsock = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        conn, _ = lsock.accept()
        with conn, socket.socket(socket.AF_UNIX) as up:
            up.connect(str(port_sock))
            conn.settimeout(5)
            up.settimeout(5)

            def pump(a: socket.socket, b: socket.socket) -> None:
                try:
                    while data := a.recv(65536):
                        b.sendall(data)
                except OSError:
                    pass
                finally:
                    with contextlib.suppress(OSError):
                        b.shutdown(socket.SHUT_WR)

            t = threading.Thread(target=pump, args=(up, conn), daemon=True)
            t.start()
            pump(conn, up)
            t.join(5)
        lsock.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return lsock.getsockname()[1], t


def test_session_in_sandbox_view_reaches_api_and_receiver_through_bridges(tmp_path):
    cfg, work = _cfg(tmp_path)
    with AgentSession.open(cfg, "codex", receiver_on_socket=True) as s:
        (api_port, api_sock), (otlp_port, otlp_sock) = s.bridges()
        assert (api_port, otlp_port) == (7070, 4318)
        for sock in (api_sock, otlp_sock):
            mode = os.stat(sock).st_mode
            assert stat.S_ISSOCK(mode) and (mode & 0o777) == 0o600
        assert not str(api_sock).startswith(str(cfg.corral_home))  # the sandbox hides that
        # Hooks inside reach the API over the bridge (tcp://127.0.0.1:PORT).
        port, t = _bridge(api_sock)
        env = {**os.environ, **s.env_in_sandbox(api_port=port)}
        payload = json.dumps({"hook_event_name": "PreToolUse", "tool_name": "Bash",
                              "tool_input": {"command": "ls"}, "cwd": str(work)})
        r = subprocess.run([sys.executable, "-m", "corral.integrations.hook_main", "codex"],
                           input=payload, env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout == "", r
        t.join(5)
        # Codex inside exports to the receiver's bridge.
        port, t = _bridge(otlp_sock)
        args = s.args_in_sandbox(otlp_port=port)
        exporter = args[args.index("-c") + 1]
        assert f'endpoint = "http://127.0.0.1:{port}/v1/logs"' in exporter
        # No token on Codex's command line (ps shows it to every local user): the private
        # socket behind the bridge is the authentication.
        assert "Bearer" not in " ".join(args) and "headers" not in exporter
        resp = httpx.post(f"http://127.0.0.1:{port}/v1/logs",
                          content=request("codex_exec", CODEX[3:4]).SerializeToString(),
                          headers={"Content-Type": "application/x-protobuf"})
        assert resp.status_code == 200
        t.join(5)
        journal, sid = s.telemetry.journal_path, s.telemetry.session_id
        rundir = s.rundir
    names = [e.name for e in Journal(journal).events(session_id=sid)]
    assert names == ["agent.session.start", "agent.tool.decision", "agent.tool.decision"]
    assert not rundir.exists()


def test_session_env_args_and_agent_names(tmp_path):
    cfg, _ = _cfg(tmp_path)
    with AgentSession.open(cfg, "claude-code") as s:
        env = s.env
        assert env["CORRAL_SUPERVISOR_SOCKET"] == str(s.api.socket_path)
        assert env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] == f"{s.endpoint}/v1/logs"
        assert env["CORRAL_SESSION_ID"] == s.telemetry.session_id
        assert s.args == []
    assert agent_of("/usr/local/bin/codex") == "codex"
    assert agent_of("claude") == "claude-code" and agent_of("bash") is None
    assert with_agent_args(["codex", "exec", "x"], "codex", ["-c", "a=1"]) == [
        "codex", "-c", "a=1", "exec", "x"]
    assert agent_of("gemini") == "gemini"
    with pytest.raises(CorralError, match=r"no telemetry import for agent .aider."):
        AgentSession.open(cfg, "aider")
