"""Faults with real parts: a full disk under the store, the server killed with SIGKILL in the
middle of a stream. After each: events at the source == events at the server, once each, and
`corral server verify` passes."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.helpers import (
    Journal,
    ServerProc,
    corral,
    forward_request,
    init_server,
    journal,
    post,
    token,
)


def _stored_ids(data: Path) -> list[str]:
    c = sqlite3.connect(data / "store" / "log.db")
    try:
        return [r[0] for r in c.execute("SELECT event_id FROM events WHERE kind = 'record'")]
    finally:
        c.close()


def _ship(url: str, tok: str, j: Journal, n: int, step: int) -> tuple[int, list[int]]:
    """A forwarder: send batches in order, advance only on 200; returns (cursor, statuses)."""
    cursor, statuses = 0, []
    while cursor < n:
        r = post(url, forward_request(j, cursor + 1, min(n, cursor + step)), tok)
        statuses.append(r.status_code)
        if r.status_code != 200:
            if r.status_code == 503:
                assert r.headers.get("retry-after")
            break
        cursor = min(n, cursor + step)
    return cursor, statuses


@contextlib.contextmanager
def _small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs for the server's data, unmounted afterwards."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave: int) -> Path:
    """Fill ``mnt`` up to ``leave`` free bytes (all of it: dd ends on ENOSPC); the filler."""
    filler = mnt / "filler"
    vfs = os.statvfs(mnt)
    count = (vfs.f_bavail * vfs.f_frsize - leave) // 4096
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k", f"count={count}"],
                   capture_output=True, check=leave > 0)
    return filler


@pytest.mark.slow
def test_disk_full_refuses_with_503_and_loses_nothing(tmp_path: Path) -> None:
    srv = None
    with _small_disk(tmp_path) as mnt:
        try:
            data = mnt / "srv"
            init_server(data, interval=3600)
            tok = token(data, "ingest")
            srv = ServerProc(data)
            j = journal(tmp_path, 3000)
            filler = _fill(mnt, leave=700 * 1024)
            cursor, statuses = _ship(srv.url, tok, j, 3000, 100)
            assert statuses[-1] == 503, statuses  # the disk filled up before the end
            assert 0 < cursor < 3000
            assert srv.proc.poll() is None
            assert httpx.get(srv.url + "/healthz").status_code == 200
            ids = _stored_ids(data)
            assert len(ids) == len(set(ids)) == cursor  # nothing half-stored past the cursor
            filler.unlink()
            resumed, statuses = _ship(srv.url, tok, j, 3000, 100)
            assert resumed == 3000 and set(statuses) == {200}
            # the forwarder's cursor was kept; the resend from 1 above also proves idempotency
            ids = _stored_ids(data)
            assert sorted(ids) == sorted(r[1] for r in j.rows())
            srv.stop()
            res = corral("server", "verify", "--data", str(data), check=False)
            assert res.returncode == 0, res.stdout
        finally:
            if srv:
                srv.stop()


@pytest.mark.slow
def test_server_killed_mid_stream_then_restarted(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    init_server(data)
    tok = token(data, "ingest")
    j = journal(tmp_path, 4000)
    srv = ServerProc(data)
    acked = [0]
    stop = threading.Event()

    def forwarder() -> None:
        while acked[0] < 4000 and not stop.is_set():
            try:
                r = post(srv.url, forward_request(j, acked[0] + 1, acked[0] + 200), tok,
                         timeout=5)
            except httpx.HTTPError:
                return
            if r.status_code == 200:
                acked[0] += 200

    t = threading.Thread(target=forwarder)
    t.start()
    while acked[0] < 1000:
        threading.Event().wait(0.01)
    srv.stop(kill=True)  # SIGKILL, most likely mid-batch
    t.join()
    killed_at = acked[0]
    assert killed_at < 4000
    srv = ServerProc(data)  # same store
    try:
        cursor, statuses = _ship(srv.url, tok, j, 4000, 200)
        # resend from the persisted cursor, and once more from 1 (lost acks)
        cursor2, _ = _ship(srv.url, tok, j, 4000, 500)
        assert cursor == cursor2 == 4000 and set(statuses) == {200}
        health = httpx.get(srv.url + "/healthz").json()
    finally:
        srv.stop()
    ids = _stored_ids(data)
    assert len(ids) == len(set(ids)) == 4000
    assert set(ids) == {r[1] for r in j.rows()}
    assert health["size"] == 4004  # and the journal's 4 signed checkpoints
    res = corral("server", "verify", "--data", str(data), check=False)
    assert res.returncode == 0, res.stdout
    assert json.loads(corral("server", "status", "--data", str(data), "--json").stdout)[
        "events"] == 4004


def test_overload_gets_429_with_retry_after_then_everything_lands(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    init_server(data)
    cfg = data / "config.toml"
    cfg.write_text(cfg.read_text() + "max_queue_events = 600\n")
    tok = token(data, "ingest")
    journals = [journal(tmp_path, 512, session=f"m{i}") for i in range(6)]
    srv = ServerProc(data)
    seen: list[int] = []
    try:
        barrier = threading.Barrier(6)

        def machine(j: Journal) -> None:
            body = forward_request(j)
            barrier.wait()
            while True:
                r = post(srv.url, body, tok)
                seen.append(r.status_code)
                if r.status_code == 200:
                    return
                assert r.status_code == 429 and r.headers["retry-after"] == "1"
                threading.Event().wait(0.2)

        threads = [threading.Thread(target=machine, args=(j,)) for j in journals]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        srv.stop()
    assert 429 in seen and seen.count(200) == 6
    ids = _stored_ids(data)
    assert len(ids) == len(set(ids)) == 6 * 512


def test_two_servers_on_one_sqlite_directory_keep_one_chain(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    init_server(data)
    tok = token(data, "ingest")
    servers = [ServerProc(data), ServerProc(data)]
    journals = [journal(tmp_path, 400, session=f"m{i}") for i in range(4)]
    statuses: list[int] = []
    try:
        def machine(i: int) -> None:
            for k, first in enumerate(range(1, 401, 50)):
                r = post(servers[(i + k) % 2].url, forward_request(journals[i], first,
                                                                   first + 49), tok)
                statuses.append(r.status_code)

        threads = [threading.Thread(target=machine, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for s in servers:
            s.stop()
    assert statuses == [200] * 32
    ids = _stored_ids(data)
    assert len(ids) == len(set(ids)) == 1600
    res = corral("server", "verify", "--data", str(data), check=False)
    assert res.returncode == 0, res.stdout
    assert "4 machine journals continuous" in res.stdout


@pytest.mark.slow
def test_an_erasure_on_a_full_disk_is_refused_in_one_line_and_touches_nothing(
        tmp_path: Path) -> None:
    """Before, the erasure ran first and the store's error became a 500 with a traceback in the
    server's log; now the request is recorded before anything is applied, and when the disk
    is full that record (or else the erasure) fails: 503 in one line, nothing erased, and the
    same request succeeds once there is room."""
    srv = None
    with _small_disk(tmp_path) as mnt:
        try:
            data = mnt / "srv"
            init_server(data, interval=3600)
            ing, adm = token(data, "ingest"), token(data, "admin")
            srv = ServerProc(data)
            j = journal(tmp_path, 40)
            assert post(srv.url, forward_request(j, 1, 40), ing).status_code == 200
            filler = _fill(mnt, leave=0)
            body = {"user": "dev", "reason": "GDPR request 17"}
            hdr = {"Authorization": f"Bearer {adm}"}
            r = httpx.post(srv.url + "/v1/erasures", json=body, headers=hdr, timeout=30)
            assert r.status_code == 503 and r.text.count("\n") == 1, r.text
            assert r.text.startswith("corral: server: ") and r.headers.get("retry-after")
            assert srv.proc.poll() is None
            filler.unlink()
            r = httpx.post(srv.url + "/v1/erasures", json=body, headers=hdr, timeout=30)
            assert r.status_code == 200 and r.json()["count"] == 40, r.text
            srv.stop()
            res = corral("server", "verify", "--data", str(data), check=False)
            assert res.returncode == 0, res.stdout
            assert any("events of user dev erased" in ln for ln in res.stdout.splitlines())
        finally:
            if srv:
                srv.stop()
