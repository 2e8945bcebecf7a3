"""The background forwarder during real sessions: ``Telemetry`` in-process, and real
``corral exec`` processes (bubblewrap sandbox) with ``[server] url`` configured."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.config.model import EffectiveConfig, Requirements
from corral.telemetry import Telemetry
from corral.telemetry.journal import journal_file
from corral.telemetry.schema import TelemetryDrop
from tests.forward.conftest import TOKEN
from tests.forward.peer import Peer, Store, chain_ok


def _journal(home: Path) -> tuple[list[str], int]:
    conn = sqlite3.connect(journal_file(home))
    try:
        ids = [r[0] for r in conn.execute("SELECT id FROM events ORDER BY seq")]
        cps = conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0]
    finally:
        conn.close()
    return ids, int(cps)


def _until_forwarded(store: Store, n: int, why: str) -> None:
    deadline = time.monotonic() + 10
    while len(store.ids()) < n:  # the session is still open
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def _server_config(peer: Peer, home: Path) -> EffectiveConfig:
    return EffectiveConfig(values={"server": {"url": peer.url}}, origins={},
                           requirements=Requirements(data={}, sources=[]), corral_home=home)


def test_forwards_during_the_session_not_only_at_the_end(home: Path, peer: Peer,
                                                         store: Store) -> None:
    cfg = _server_config(peer, home)
    tel = Telemetry.open(cfg, agent="test")
    try:
        for i in range(30):
            tel.emit_event(TelemetryDrop(dropped=i, reason="queue_full", exporter="x"))
        tel.flush(10)
        _until_forwarded(store, 30, "nothing forwarded while the session ran")
    finally:
        tel.close()
    ids, cps = _journal(home)
    assert store.ids() == ids and chain_ok(store.rows())
    assert len(store.checkpoints()) == cps == 1  # the closing checkpoint went at close


def _exec_env(tmp_path: Path, home: Path) -> dict[str, str]:
    (home / "rules").mkdir(parents=True, exist_ok=True)
    return dict(os.environ, CORRAL_HOME=str(home), CORRAL_SYSTEM_DIR=str(tmp_path / "etc"),
                CORRAL_SERVER_TOKEN=TOKEN)


@pytest.mark.slow
def test_corral_exec_sessions_forward_in_the_background(tmp_path: Path, home: Path, peer: Peer,
                                                        store: Store) -> None:
    env = _exec_env(tmp_path, home)
    (home / "config.toml").write_text(f'[server]\nurl = "{peer.url}"\n')
    work = tmp_path / "work"
    work.mkdir()
    for i in range(3):
        r = subprocess.run([sys.executable, "-m", "corral", "exec", "--", "bash", "-c",
                            f"echo {i}"], cwd=work, env=env, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        ids, cps = _journal(home)
        assert store.ids() == ids  # acknowledged before the session ended: no catch-up needed
        assert len(store.checkpoints()) == cps
    assert chain_ok(store.rows())


@pytest.mark.slow
def test_server_down_does_not_hold_up_the_session(tmp_path: Path, home: Path) -> None:
    env = _exec_env(tmp_path, home)
    store = Store(tmp_path / "server.db")
    peer = Peer(store)  # bound, not serving yet: the port is ours, connections hang
    peer.server.socket.close()  # now refused
    (home / "config.toml").write_text(f'[server]\nurl = "{peer.url}"\n')
    work = tmp_path / "work"
    work.mkdir()
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "corral", "exec", "--", "true"], cwd=work,
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 8
    assert store.ids() == []
    live = Peer(store, port=peer.port).start()  # the server is back: catch up
    try:
        r = subprocess.run([sys.executable, "-m", "corral", "forward"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert store.ids() == _journal(home)[0]
    finally:
        live.close()


@pytest.mark.slow
def test_hook_session_forwards_while_the_agent_works(tmp_path: Path, home: Path, peer: Peer,
                                                      store: Store) -> None:
    """The session behind ``corral run`` and the agents' hooks (``AgentSession``): a hook call
    answered by the supervisor reaches the server while the session is still open."""
    import json

    from corral.config import load_config
    from corral.integrations.session import AgentSession

    (home / "config.toml").write_text(f'[server]\nurl = "{peer.url}"\n')
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    cfg = load_config(work, home=home, system=tmp_path / "etc")
    session = AgentSession.open(cfg, "codex", receive_telemetry=False)
    try:
        payload = json.dumps({"session_id": "s1", "turn_id": "t1", "transcript_path": None,
                              "cwd": str(work), "hook_event_name": "PreToolUse", "model": "m",
                              "permission_mode": "default", "tool_name": "Bash",
                              "tool_input": {"command": "ls -la"}, "tool_use_id": "tu-1"})
        r = subprocess.run([sys.executable, "-I", "-m", "corral.integrations.hook_main",
                            "codex"], input=payload, capture_output=True, text=True,
                           env={**os.environ, **session.env}, cwd=work, timeout=30)
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 10
        while "agent.tool.decision" not in [row[1] for row in store.rows()]:
            assert time.monotonic() < deadline, "the hook's decision was not forwarded"
            time.sleep(0.05)
    finally:
        session.close()
    ids, cps = _journal(home)
    assert store.ids() == ids and len(store.checkpoints()) == cps


@pytest.mark.slow
def test_a_hanging_server_does_not_hold_up_the_session(tmp_path: Path, home: Path) -> None:
    """A server that accepts and never answers: the session still ends about CLOSE_SECONDS
    after its command, not when the forwarder's HTTP timeout (10 s) runs out."""
    import socket

    env = _exec_env(tmp_path, home)
    with socket.create_server(("127.0.0.1", 0), backlog=16) as hang:  # never accepts
        (home / "config.toml").write_text(
            f'[server]\nurl = "http://127.0.0.1:{hang.getsockname()[1]}"\n')
        work = tmp_path / "work"
        work.mkdir()
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "corral", "exec", "--", "true"], cwd=work,
                           env=env, capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert elapsed < 8.0, elapsed  # with a pool worker thread for the POST: 12 s


def test_forwarding_waits_until_the_caller_is_on_with_its_action(
        home: Path, peer: Peer, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The forwarder sleeps while the session decides (its imports and work would compete
    with the decision for the interpreter) and starts once a waited-for commit lets the
    caller go on with its action; everything is still acknowledged by the end."""
    from corral.forward import background

    monkeypatch.setattr(background, "START_SECONDS", 60.0)  # only resume or close start it
    cfg = _server_config(peer, home)
    tel = Telemetry.open(cfg, agent="test")
    try:
        for i in range(5):
            tel.emit_event(TelemetryDrop(dropped=i, reason="queue_full", exporter="x"))
        time.sleep(0.5)
        assert store.ids() == []  # committed, not yet forwarded: nobody waited for a commit
        tel.emit_event(TelemetryDrop(dropped=5, reason="queue_full", exporter="x"), wait=True)
        _until_forwarded(store, 6, "a waited-for commit did not start forwarding")
    finally:
        tel.close()
    ids, cps = _journal(home)
    assert store.ids() == ids and len(store.checkpoints()) == cps


def test_the_server_settings_never_show_the_token() -> None:
    from corral.forward.settings import ServerSettings

    s = ServerSettings("https://logs.example", "sekrit-token", "environment")
    assert "sekrit" not in repr(s) and "sekrit" not in str(s)
    assert s == ServerSettings("https://logs.example", "sekrit-token", "environment", None)
