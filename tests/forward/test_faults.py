"""Fault tests with real processes: the peer killed mid-batch and restarted, connections
refused for a while, ``kill -9`` of ``corral forward`` mid-stream, a token revoked mid-stream.
At the end of each: the events at the source equal the events at the server, each id once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.forward import cursor as cursors
from corral.telemetry.journal import journal_file
from tests.forward.conftest import TOKEN, PeerProcess, corral, fill
from tests.forward.peer import chain_ok

pytestmark = pytest.mark.slow


def _forward_proc(home: Path, url: str, *args: str, token: str = TOKEN
                  ) -> subprocess.Popen[str]:
    env = {**os.environ, "CORRAL_HOME": str(home), "CORRAL_SERVER_TOKEN": token}
    return subprocess.Popen([sys.executable, "-m", "corral", "forward", "--server", url, *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=home)


def _exactly_once(peer: PeerProcess, ids: list[str]) -> None:
    rows = peer.store.rows()
    assert [r[0] for r in rows] == ids
    assert chain_ok(rows)


def _wait(cond: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_server_killed_mid_batch_then_restarted(home: Path, peer_proc: PeerProcess) -> None:
    ids = fill(home, 2000, checkpoint_every=300)
    peer_proc.set(tokens=[TOKEN], mode="die")
    peer_proc.start()
    (home / "config.toml").write_text(f'[server]\nurl = "{peer_proc.url}"\n')
    env = {**os.environ, "CORRAL_HOME": str(home), "CORRAL_SERVER_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "corral", "forward", "--retry-for", "30"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=home)
    peer_proc.wait_dead()  # it stored half of the first batch and died without answering
    half = len(peer_proc.store.ids())
    assert 0 < half < 512
    peer_proc.set(tokens=[TOKEN], mode="ok")
    peer_proc.start()  # same port, same store
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip().startswith("forwarded 2000 records and 6 checkpoints")
    _exactly_once(peer_proc, ids)
    assert len(peer_proc.store.checkpoints()) == 6


def test_connections_refused_for_a_while(home: Path, peer_proc: PeerProcess) -> None:
    ids = fill(home, 700)
    peer_proc.port = _free_port()
    proc = _forward_proc(home, peer_proc.url, "--retry-for", "30")
    time.sleep(1.5)  # nothing listens: connections are refused, the forwarder backs off
    assert proc.poll() is None
    peer_proc.start()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    _exactly_once(peer_proc, ids)


def test_kill_9_of_the_forwarder_mid_stream(home: Path, peer_proc: PeerProcess) -> None:
    ids = fill(home, 6000, checkpoint_every=1000)
    peer_proc.set(tokens=[TOKEN], mode="slow", delay=0.15)
    peer_proc.start()
    proc = _forward_proc(home, peer_proc.url)
    _wait(lambda: peer_proc.store.received() >= 1500)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    got = peer_proc.store.ids()
    assert 0 < len(got) < 6000
    cur = json.loads(cursors.cursor_file(journal_file(home), peer_proc.url).read_text())
    assert cur["seq"] <= len(got)  # the cursor never runs ahead of what the server stored
    peer_proc.set(tokens=[TOKEN], mode="ok")
    lag = corral(home, "forward", "--server", peer_proc.url, "--status")
    assert lag.stdout.strip() == (f"{peer_proc.url}: acknowledged through seq {cur['seq']} of "
                                  f"6000 ({6000 - cur['seq']} records behind)")
    done = corral(home, "forward", "--server", peer_proc.url)
    assert done.returncode == 0, done.stderr
    _exactly_once(peer_proc, ids)
    # at most the batch in flight when it died was sent twice
    assert peer_proc.store.received() - (6000 + 6) <= 512


def test_token_revoked_mid_stream(home: Path, peer_proc: PeerProcess) -> None:
    ids = fill(home, 4000)
    peer_proc.set(tokens=[TOKEN], mode="slow", delay=0.1)
    peer_proc.start()
    proc = _forward_proc(home, peer_proc.url)
    _wait(lambda: peer_proc.store.received() >= 1000)
    peer_proc.set(tokens=["new-token"], mode="slow", delay=0.1)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.splitlines() == [err.strip()]  # one line
    assert err.startswith(f"corral: forward: server {peer_proc.url} refused the token (HTTP 401")
    assert 0 < len(peer_proc.store.ids()) < 4000
    done = corral(home, "forward", "--server", peer_proc.url, token="new-token")
    assert done.returncode == 0, done.stderr
    _exactly_once(peer_proc, ids)


def test_unreachable_and_unconfigured_are_one_line(home: Path) -> None:
    fill(home, 5)
    port = _free_port()
    r = corral(home, "forward", "--server", f"http://127.0.0.1:{port}", "--retry-for", "1")
    assert r.returncode == 1
    assert r.stderr.startswith(f"corral: forward: server http://127.0.0.1:{port} unreachable")
    assert len(r.stderr.splitlines()) == 1
    r = corral(home, "forward")
    assert (r.returncode, r.stderr.splitlines()) == (1, [
        'corral: forward: no server configured (set [server] url = "https://..." in '
        "config.toml)"])
    r = corral(home, "forward", "--server", "http://127.0.0.1:1", token=None)
    assert r.returncode == 1 and r.stderr.startswith("corral: forward: no token for")
