"""Fixtures for forwarding tests: a private CORRAL_HOME, a real journal, a real ingest peer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.telemetry.journal import JournalWriter, journal_file
from corral.telemetry.keys import load_or_create_signing_key
from corral.telemetry.schema import Event
from corral.telemetry.ulid import new_ulid
from tests.forward.peer import Peer, Store

REPO = Path(__file__).resolve().parents[2]
PEER = Path(__file__).with_name("peer.py")
TOKEN = "tok"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "corral-home"
    h.mkdir()
    monkeypatch.setenv("CORRAL_HOME", str(h))
    monkeypatch.setenv("CORRAL_SERVER_TOKEN", TOKEN)
    return h


def event(i: int, session: str = "s1") -> Event:
    return Event(id=new_ulid(), name="agent.tool.result", time_unix_nano=time.time_ns(),
                 session_id=session, turn_id=None, call_id=f"c{i}", user="u", host="h",
                 agent_name="test", agent_version="1", corral_version="0.1.0", tier=1,
                 attributes={"i": i, "text": "é ✓ " * (i % 5)})


def fill(home: Path, n: int, checkpoint_every: int = 100, batch: int = 500) -> list[str]:
    """Append n events to the journal under home (checkpoint every ``checkpoint_every``)."""
    w = JournalWriter(journal_file(home), load_or_create_signing_key(home), checkpoint_every)
    ids: list[str] = []
    try:
        for start in range(0, n, batch):
            evs = [event(i) for i in range(start, min(n, start + batch))]
            w.append(evs)
            ids.extend(e.id for e in evs)
    finally:
        w.close()
    return ids


def checkpoint_now(home: Path) -> int | None:
    w = JournalWriter(journal_file(home), load_or_create_signing_key(home))
    try:
        return w.checkpoint()
    finally:
        w.close()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "server.db")


@pytest.fixture
def peer(store: Store) -> Iterator[Peer]:
    p = Peer(store).start()
    yield p
    p.close()


@pytest.fixture
def tls_peer(store: Store, tmp_path: Path) -> Iterator[tuple[Peer, Path]]:
    """An https peer with a certificate for 127.0.0.1 from a test CA; (peer, CA file)."""
    import ssl

    import trustme

    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    p = Peer(store, tls=ctx).start()
    yield p, ca_file
    p.close()


class PeerProcess:
    """The peer as a subprocess on a fixed port: can be killed -9 and restarted on its store."""

    def __init__(self, tmp: Path) -> None:
        self.store = Store(tmp / "server.db")
        self.control = tmp / "control.json"
        self.portfile = tmp / "port"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.set(tokens=[TOKEN], mode="ok")

    def set(self, **ctl: Any) -> None:
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps(ctl))
        tmp.replace(self.control)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PeerProcess:
        self.portfile.unlink(missing_ok=True)
        args = [sys.executable, str(PEER), str(self.store.path), str(self.control),
                str(self.portfile)] + ([str(self.port)] if self.port else [])
        self.proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 20
        while not self.portfile.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("peer did not start")
            time.sleep(0.02)
        self.port = int(self.portfile.read_text())
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def wait_dead(self, timeout: float = 20) -> None:
        assert self.proc is not None
        self.proc.wait(timeout)


@pytest.fixture
def peer_proc(tmp_path: Path) -> Iterator[PeerProcess]:
    p = PeerProcess(tmp_path)
    yield p
    p.kill()


def corral(home: Path, *args: str, token: str | None = TOKEN, stdin: str | None = None,
           env: dict[str, str] | None = None, timeout: float = 120
           ) -> subprocess.CompletedProcess[str]:
    """``python -m corral ARGS`` as a real subprocess under ``home``."""
    e = {k: v for k, v in os.environ.items() if k != "CORRAL_SERVER_TOKEN"}
    e.update({"CORRAL_HOME": str(home), **(env or {})})
    if token is not None:
        e["CORRAL_SERVER_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "corral", *args], input=stdin, env=e,
                          capture_output=True, text=True, timeout=timeout, cwd=home)
