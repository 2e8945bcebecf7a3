"""The PostgreSQL store on a real PostgreSQL 15: the same log as SQLite, two servers appending
to one chain and tree under concurrent load, an insert-only ingest role."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest

from corral.server import config as sconfig
from tests.server.helpers import (
    ServerProc,
    corral,
    forward_request,
    init_server,
    journal,
    post,
    token,
)


def test_store_round_trip_and_append_only(tmp_path: Path, pg_url: str) -> None:
    data = tmp_path / "srv"
    init_server(data, pg_url)
    from corral.server.ingest import decode, parse

    j = journal(tmp_path, 20, checkpoint_every=7)
    items = decode(parse(forward_request(j), "application/x-protobuf")).items
    store = sconfig.open_store(sconfig.load(data))
    try:
        assert store.append(items, 1).stored == 22
        assert store.append(items, 2).duplicates == 22
        assert store.head()[0] == 22
        assert store.tree().inclusion(4, 22)
        pool = store.pool  # type: ignore[attr-defined]
        with pool.connection() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM events WHERE seq = 1")
    finally:
        store.close()
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.RaiseException,
                                                        match="append-only"):
        conn.execute("UPDATE events SET flag = 'x' WHERE seq = 1")
    res = corral("server", "verify", "--data", str(data), check=False)
    assert res.returncode == 0, res.stdout
    assert res.stdout.startswith("ok: 22 events")


@pytest.mark.slow
def test_two_servers_one_chain_under_load(tmp_path: Path, pg_url: str) -> None:
    data = tmp_path / "srv"
    init_server(data, pg_url)
    tok = token(data, "ingest")
    servers = [ServerProc(data), ServerProc(data)]
    try:
        journals = [journal(tmp_path, 600, session=f"m{i}", checkpoint_every=100)
                    for i in range(4)]
        errors: list[str] = []

        def machine(i: int) -> None:
            j = journals[i]
            for k, first in enumerate(range(1, 601, 60)):
                srv = servers[(i + k) % 2]  # a load balancer spreads batches over both
                r = post(srv.url, forward_request(j, first, first + 59), tok)
                if r.status_code != 200:
                    errors.append(f"{r.status_code} {r.text}")
                if k % 3 == 0:  # and some retries land on the other replica
                    post(servers[(i + k + 1) % 2].url, forward_request(j, first, first + 59),
                         tok)

        threads = [threading.Thread(target=machine, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
    finally:
        for s in servers:
            s.stop()
    with psycopg.connect(pg_url) as conn:
        ids = [r[0] for r in conn.execute("SELECT event_id FROM events ORDER BY seq")]
        seqs = [r[0] for r in conn.execute("SELECT seq FROM events ORDER BY seq")]
    expected = {r[1] for j in journals for r in j.rows()}
    assert len(ids) == len(set(ids)) == 4 * 606  # 600 records + 6 checkpoints each
    assert expected <= set(ids)
    assert seqs == list(range(1, len(seqs) + 1))
    res = corral("server", "verify", "--data", str(data), check=False)
    assert res.returncode == 0, res.stdout
    assert "4 machine journals continuous" in res.stdout
    status = json.loads(corral("server", "status", "--data", str(data), "--json").stdout)
    assert status["engine"] == "postgresql" and status["events"] == 4 * 606
