"""Test helpers: a real journal, contract requests built from it, a real server process."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from corral.telemetry.journal import GENESIS, JournalWriter
from corral.telemetry.keys import public_hex
from corral.telemetry.schema import Event

PROTOBUF = "application/x-protobuf"


def event(i: int, session: str = "s1", size: int = 200) -> Event:
    return Event(id=f"ev-{session}-{i:08d}", name="agent.tool.decision",
                 time_unix_nano=1_700_000_000_000_000_000 + i, session_id=session,
                 turn_id="t1", call_id=f"call-{i}", user="dev", host="laptop",
                 agent_name="codex", agent_version="0.50", corral_version="0.1.0", tier=1,
                 attributes={"gen_ai.tool.name": "shell", "agent.decision": "approved",
                             "agent.decision.source": "rule",
                             "process.command_line": "x" * size})


@dataclass
class Journal:
    writer: JournalWriter
    key: Ed25519PrivateKey
    path: Path

    @property
    def id(self) -> str:
        return self.writer.journal_id

    def rows(self) -> list[tuple[int, str, str, int, bytes, str]]:
        c = self.writer._conn
        return [tuple(r) for r in c.execute(  # type: ignore[misc]
            "SELECT seq, id, name, time_unix_nano, body, hash FROM events ORDER BY seq")]

    def checkpoints(self) -> list[tuple[Any, ...]]:
        return list(self.writer._conn.execute(
            "SELECT seq, head_hash, prev_checkpoint, time_unix_nano, public_key, signature "
            "FROM checkpoints ORDER BY seq"))


def journal(tmp: Path, n: int, session: str = "s1", checkpoint_every: int = 1000) -> Journal:
    key = Ed25519PrivateKey.generate()
    path = tmp / f"journal-{session}.db"
    w = JournalWriter(path, key, checkpoint_every=checkpoint_every)
    if n:
        w.append([event(i, session) for i in range(n)])
    return Journal(w, key, path)


def _kv(k: str, v: str | int) -> KeyValue:
    return KeyValue(key=k, value=AnyValue(int_value=v) if isinstance(v, int)
                    else AnyValue(string_value=v))


def forward_request(j: Journal, first: int = 1, last: int | None = None,
                    with_checkpoints: bool = True) -> bytes:
    """The contract's request for journal records first..last (and checkpoints in range)."""
    rows = [r for r in j.rows() if r[0] >= first and (last is None or r[0] <= last)]
    prev = GENESIS
    if first > 1:
        prev = next(r[5] for r in j.rows() if r[0] == first - 1)
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    for k, v in (("service.name", "corral"), ("host.name", "laptop"),
                 ("corral.device.id", j.id), ("corral.journal.id", j.id),
                 ("corral.journal.public_key", public_hex(j.key.public_key()))):
        rl.resource.attributes.append(_kv(k, v))
    sl = rl.scope_logs.add()
    sl.scope.name = "corral.forward"
    cps = {c[0]: c for c in j.checkpoints()} if with_checkpoints else {}
    for seq, eid, name, t, body, h in rows:
        lr = sl.log_records.add(time_unix_nano=t, event_name=name)
        lr.body.string_value = body.decode()
        lr.attributes.extend([_kv("event.name", name), _kv("event.id", eid),
                              _kv("corral.journal.seq", seq), _kv("corral.journal.hash", h),
                              _kv("corral.journal.prev_hash", prev)])
        prev = h
        if seq in cps:
            c = cps[seq]
            cp = sl.log_records.add(time_unix_nano=c[3], event_name="agent.journal.checkpoint")
            cp.attributes.extend([
                _kv("event.name", "agent.journal.checkpoint"),
                _kv("event.id", f"cp-{j.id}-{c[0]}"), _kv("corral.journal.id", j.id),
                _kv("corral.journal.checkpoint.seq", c[0]),
                _kv("corral.journal.checkpoint.head_hash", c[1]),
                _kv("corral.journal.checkpoint.prev_seq", c[2]),
                _kv("corral.journal.checkpoint.time_unix_nano", c[3]),
                _kv("corral.journal.checkpoint.public_key", c[4]),
                _kv("corral.journal.checkpoint.signature", c[5])])
    return bytes(req.SerializeToString())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def corral(*args: str, check: bool = True, env: dict[str, str] | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-m", "corral", *args], capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check and res.returncode != 0:
        raise AssertionError(f"corral {' '.join(args)} -> {res.returncode}\n{res.stdout}"
                             f"\n{res.stderr}")
    return res


def init_server(data: Path, database: str | None = None, interval: float = 0.3) -> None:
    args = ["server", "init", "--data", str(data)]
    if database:
        args += ["--database", database]
    corral(*args)
    cfg = data / "config.toml"
    cfg.write_text(cfg.read_text().replace("checkpoint_interval = 30.0",
                                           f"checkpoint_interval = {interval}"))


def token(data: Path, scope: str, database: str | None = None) -> str:
    args = ["server", "token", "create", "--data", str(data), "--scope", scope]
    if database:
        args += ["--database", database]
    out = corral(*args).stdout.strip()
    assert "\n" not in out
    return out


class ServerProc:
    """``corral server run`` on a free loopback port, once /healthz answers. ``tls``: (cert
    file, key file) to serve https, checked with ``verify`` (an ssl context trusting them)."""

    def __init__(self, data: Path, database: str | None = None,
                 tls: tuple[Path, Path] | None = None, verify: Any = True) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "corral", "server", "run", "--data", str(data),
                "--listen", f"127.0.0.1:{self.port}"]
        if database:
            args += ["--database", database]
        if tls:
            args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1,
                             verify=verify).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                _, err = self.proc.communicate(timeout=5)
                raise AssertionError(f"server did not start: {err.decode()}")
            time.sleep(0.05)

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(timeout=30)
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


def post(url: str, body: bytes, tok: str, ctype: str = PROTOBUF, gz: bool = False,
         timeout: float = 30) -> httpx.Response:
    headers = {"Content-Type": ctype, "Authorization": f"Bearer {tok}"}
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return httpx.post(url + "/v1/logs", content=body, headers=headers, timeout=timeout)


def running(data: Path, database: str | None = None) -> Iterator[ServerProc]:
    srv = ServerProc(data, database)
    try:
        yield srv
    finally:
        srv.stop()
