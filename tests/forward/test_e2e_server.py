"""End to end with the real thing: ``corral exec`` sessions and ``corral forward`` shipping to a
real ``corral server run`` over HTTP, with the server killed mid-stream and a token revoked.
At the end: the events of the journal are the events at the server, each id exactly once, no
record flagged (the server saw one unbroken chain), and ``corral server verify`` passes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.telemetry.journal import journal_file
from tests.server.helpers import ServerProc, corral, init_server, token

pytestmark = pytest.mark.slow


def _server_events(data: Path) -> tuple[list[str], list[str], list[str]]:
    """(record ids, checkpoint ids, flags) in the server's store."""
    c = sqlite3.connect(data / "store" / "log.db")
    try:
        rows = list(c.execute("SELECT event_id, kind, flag FROM events ORDER BY seq"))
    finally:
        c.close()
    return ([r[0] for r in rows if r[1] == "record"],
            [r[0] for r in rows if r[1] != "record"], [r[2] for r in rows if r[2]])


def _journal(home: Path) -> tuple[list[str], int]:
    c = sqlite3.connect(journal_file(home))
    try:
        ids = [r[0] for r in c.execute("SELECT id FROM events ORDER BY seq")]
        cps = int(c.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0])
    finally:
        c.close()
    return ids, cps


def _env(tmp_path: Path, home: Path, tok: str) -> dict[str, str]:
    (home / "rules").mkdir(parents=True, exist_ok=True)
    return dict(os.environ, CORRAL_HOME=str(home), CORRAL_SYSTEM_DIR=str(tmp_path / "etc"),
                CORRAL_SERVER_TOKEN=tok)


def _all_there(data: Path, home: Path) -> None:
    ids, cps = _journal(home)
    records, checkpoints, flags = _server_events(data)
    assert sorted(records) == sorted(ids) and len(set(records)) == len(records)
    assert len(checkpoints) == cps
    assert flags == []
    corral("server", "verify", "--data", str(data))


def test_exec_sessions_forward_to_a_real_server(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    init_server(data)
    tok = token(data, "ingest")
    srv = ServerProc(data)
    try:
        home = tmp_path / "home"
        home.mkdir()
        (home / "config.toml").write_text(f'[server]\nurl = "{srv.url}"\n')
        env = _env(tmp_path, home, tok)
        work = tmp_path / "work"
        work.mkdir()
        for i in range(3):
            r = subprocess.run([sys.executable, "-m", "corral", "exec", "--", "bash", "-c",
                                f"echo {i}"], cwd=work, env=env, capture_output=True,
                               text=True, timeout=60)
            assert r.returncode == 0, r.stderr
        _all_there(data, home)  # the background forwarder did it all, during the sessions
        r = subprocess.run([sys.executable, "-m", "corral", "forward"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.startswith("forwarded 0 records"), r.stderr
    finally:
        srv.stop()


def _fill(home: Path, n: int) -> None:
    from tests.forward.conftest import fill

    fill(home, n, checkpoint_every=500)


def test_server_killed_mid_stream_then_restarted(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    init_server(data)
    tok = token(data, "ingest")
    home = tmp_path / "home"
    home.mkdir()
    _fill(home, 4000)
    srv = ServerProc(data)
    env = _env(tmp_path, home, tok)
    proc = subprocess.Popen([sys.executable, "-m", "corral", "forward", "--server", srv.url,
                             "--retry-for", "60"], env=env, cwd=home, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(_server_events(data)[0]) < 500:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    srv.proc.send_signal(signal.SIGKILL)
    srv.stop()
    assert len(_server_events(data)[0]) < 4000, "too late: nothing was in flight"
    time.sleep(1)  # the forwarder meets refused connections meanwhile
    assert proc.poll() is None
    restarted = subprocess.Popen([sys.executable, "-m", "corral", "server", "run", "--data",
                                  str(data), "--listen", f"127.0.0.1:{srv.port}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        _all_there(data, home)
    finally:
        restarted.terminate()
        restarted.wait(30)
        if proc.poll() is None:
            proc.kill()


def test_token_revoked_mid_stream(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    init_server(data)
    tok = token(data, "ingest")
    token_id = corral("server", "token", "list", "--data", str(data)).stdout.split()[0]
    home = tmp_path / "home"
    home.mkdir()
    _fill(home, 12000)
    srv = ServerProc(data)
    try:
        env = _env(tmp_path, home, tok)
        proc = subprocess.Popen([sys.executable, "-m", "corral", "forward", "--server",
                                 srv.url], env=env, cwd=home, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(_server_events(data)[0]) < 500:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        # Freeze the forwarder mid-stream while the token is revoked (the CLI takes about a
        # second to start, longer than the rest of the stream takes), then let it go on.
        proc.send_signal(signal.SIGSTOP)
        try:
            corral("server", "token", "revoke", "--data", str(data), token_id)
        finally:
            proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        assert len(err.splitlines()) == 1
        assert err.startswith(f"corral: forward: server {srv.url} refused the token (HTTP 401")
        assert len(_server_events(data)[0]) < 12000
        new = token(data, "ingest")
        r = subprocess.run([sys.executable, "-m", "corral", "forward", "--server", srv.url],
                           env={**env, "CORRAL_SERVER_TOKEN": new}, cwd=home,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        _all_there(data, home)
    finally:
        srv.stop()


def test_kill_9_of_a_session_then_corral_forward(tmp_path: Path) -> None:
    """The supervisor (a `corral exec` session, forwarder thread and all) is SIGKILLed while its
    command runs; `corral forward` afterwards completes the server's copy."""
    data = tmp_path / "srv"
    init_server(data)
    tok = token(data, "ingest")
    srv = ServerProc(data)
    try:
        home = tmp_path / "home"
        home.mkdir()
        _fill(home, 3000)  # a backlog from before, for the session's forwarder to work on
        (home / "config.toml").write_text(f'[server]\nurl = "{srv.url}"\n')
        env = _env(tmp_path, home, tok)
        work = tmp_path / "work"
        work.mkdir()
        proc = subprocess.Popen([sys.executable, "-m", "corral", "exec", "--", "sleep", "60"],
                                cwd=work, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while len(_server_events(data)[0]) < 500:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        r = subprocess.run([sys.executable, "-m", "corral", "forward"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        _all_there(data, home)
    finally:
        srv.stop()
