"""corral server benchmarks (issue 12), load generator in the same run on the same machine.

1. Sustained OTLP/HTTP protobuf ingest: batches of 512 realistic forwarded journal records
   (tool decisions with a 200-character command line, ~900 bytes each), sent over 4 keep-alive
   connections to a real ``corral server run``; a request counts when its 200 came back, i.e.
   committed with chain, tree and (SQLite) fsync. SQLite with one server process and with two
   on the same file, then PostgreSQL 15 (fsync on) with one and two servers on one database.
2. ``corral server verify`` over a store of 1,000,000 forwarded records (wall clock of the CLI).
3. An inclusion proof at tree size 1,000,000: in-process, and over HTTP (GET
   /v1/proofs/inclusion, medians of 300 random leaves).

Run: .venv/bin/python benchmarks/bench_server.py [--runs 3] [--batches 120]
     [--verify-events 1000000] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from common import machine  # noqa: E402
from tests.server.helpers import (  # noqa: E402
    ServerProc,
    event,
    forward_request,
    free_port,
    init_server,
    journal,
    token,
)

from corral.server import config as sconfig  # noqa: E402
from corral.server.store.base import Incoming, JournalLink  # noqa: E402
from corral.telemetry.journal import GENESIS, canonical, chain_hash  # noqa: E402

BATCH = 512
CONNS = 4


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CPU: list[float] = []  # events per server-process CPU second, per run


def ingest_run(data: Path, bodies: list[bytes], servers: int, database: str | None) -> float:
    tok = token(data, "ingest", database)
    procs = [ServerProc(data, database) for _ in range(servers)]
    cpu0 = sum(cpu_seconds(p.proc.pid) for p in procs)
    try:
        lock = threading.Lock()
        queue = list(range(len(bodies)))

        def client(k: int) -> None:
            url = procs[k % servers].url
            with httpx.Client(base_url=url, timeout=60, headers={
                    "Authorization": f"Bearer {tok}",
                    "Content-Type": "application/x-protobuf"}) as c:
                while True:
                    with lock:
                        if not queue:
                            return
                        i = queue.pop(0)
                    r = c.post("/v1/logs", content=bodies[i])
                    while r.status_code in (429, 503):
                        time.sleep(float(r.headers.get("retry-after", "1")))
                        r = c.post("/v1/logs", content=bodies[i])
                    assert r.status_code == 200, r.text

        threads = [threading.Thread(target=client, args=(k,)) for k in range(CONNS)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        CPU.append(len(bodies) * BATCH / (sum(cpu_seconds(p.proc.pid) for p in procs) - cpu0))
        size = httpx.get(procs[0].url + "/healthz").json()["size"]
        assert size == len(bodies) * BATCH, size
    finally:
        for p in procs:
            p.stop()
    return len(bodies) * BATCH / elapsed


def make_bodies(tmp: Path, batches: int) -> list[bytes]:
    # one journal per 20 batches (several machines), checkpoints off so a batch is 512 records
    out: list[bytes] = []
    per = 20
    for m in range(0, batches, per):
        n = min(per, batches - m)
        j = journal(tmp, n * BATCH, session=f"m{m}", checkpoint_every=10**9)
        out += [forward_request(j, i * BATCH + 1, (i + 1) * BATCH) for i in range(n)]
    return out


def build_million(data: Path, n: int) -> None:
    """A store of n forwarded records, appended in-process (the HTTP path is measured above)."""
    cfg = sconfig.load(data)
    store = sconfig.open_store(cfg)
    prev = GENESIS
    pub = "ab" * 32
    items: list[Incoming] = []
    for i in range(1, n + 1):
        ev = event(i, "big")
        body = canonical(ev.to_record(i))
        h = chain_hash(prev, body)
        items.append(Incoming(ev.id, ev.name, ev.time_unix_nano, "big-device", "forward",
                              body.decode(), "record",
                              journal=JournalLink("big-journal", pub, i, h, prev)))
        prev = h
        if len(items) == 20_000:
            store.append(items, time.time_ns())
            items = []
    if items:
        store.append(items, time.time_ns())
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batches", type=int, default=120)
    ap.add_argument("--verify-events", type=int, default=1_000_000)
    ap.add_argument("--skip-postgres", action="store_true")
    args = ap.parse_args()
    print(machine())
    tmp = Path(tempfile.mkdtemp(prefix="corral-bench-server-", dir="/var/tmp"))
    bodies = make_bodies(tmp, args.batches)
    print(f"ingest: {args.batches} batches x {BATCH} events, {len(bodies[0]) // BATCH} bytes "
          f"per event on the wire, {CONNS} connections, median of {args.runs} runs")

    for servers in (1, 2):  # 2: two processes on one SQLite file (BEGIN IMMEDIATE)
        rates = []
        for r in range(args.runs):
            data = tmp / f"sqlite{servers}{r}"
            init_server(data, interval=5)
            rates.append(ingest_run(data, bodies, servers, None))
        print(f"  SQLite, {servers} server(s):         {statistics.median(rates):9,.0f} events/s  "
              f"(runs: {', '.join(f'{x:,.0f}' for x in rates)}); "
              f"{statistics.median(CPU[-args.runs:]):,.0f} events per server CPU-second")

    if not args.skip_postgres:
        import psycopg
        from tests.server.pg import postgres

        with postgres(free_port(), fsync=True) as url:
            for servers in (1, 2):
                rates = []
                for r in range(args.runs):
                    db = f"b{servers}_{r}"
                    with psycopg.connect(url, autocommit=True) as conn:
                        conn.execute(f"CREATE DATABASE {db}")
                    dburl = url.rsplit("/", 1)[0] + "/" + db
                    data = tmp / f"pg{servers}{r}"
                    init_server(data, dburl, interval=5)
                    rates.append(ingest_run(data, bodies, servers, dburl))
                print(f"  PostgreSQL 15, {servers} server(s):  "
                      f"{statistics.median(rates):9,.0f} events/s  "
                      f"(runs: {', '.join(f'{x:,.0f}' for x in rates)}); "
                      f"{statistics.median(CPU[-args.runs:]):,.0f} events per server CPU-second"
                      " (PostgreSQL's own CPU not counted)")

    n = args.verify_events
    data = tmp / "big"
    init_server(data, interval=3600)
    t0 = time.perf_counter()
    build_million(data, n)
    print(f"verify: built a store of {n:,} forwarded records in {time.perf_counter() - t0:.0f} s "
          f"({(data / 'store' / 'log.db').stat().st_size / 1e6:,.0f} MB)")
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "corral", "server", "verify", "--data",
                              str(data)], capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        assert res.returncode == 0, res.stdout + res.stderr
    print(f"  corral server verify, {n:,} events: {statistics.median(times):.2f} s  "
          f"(runs: {', '.join(f'{x:.2f}' for x in times)})")

    store = sconfig.open_store(sconfig.load(data))
    tree = store.tree()
    rnd = random.Random(1)
    samples = []
    for _ in range(300):
        i = rnd.randrange(n)
        t0 = time.perf_counter()
        tree.inclusion(i, n)
        samples.append(time.perf_counter() - t0)
    store.close()
    print(f"  inclusion proof at size {n:,}, in-process: "
          f"{statistics.median(samples) * 1e3:.3f} ms median, "
          f"p99 {sorted(samples)[int(len(samples) * 0.99)] * 1e3:.3f} ms")
    rd = token(data, "read")
    srv = ServerProc(data)
    try:
        samples = []
        with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {rd}"}) as c:
            for _ in range(300):
                i = rnd.randrange(1, n + 1)
                t0 = time.perf_counter()
                r = c.get(f"/v1/proofs/inclusion?seq={i}&tree_size={n}")
                samples.append(time.perf_counter() - t0)
                assert r.status_code == 200
    finally:
        srv.stop()
    print(f"  inclusion proof over HTTP (request to response): "
          f"{statistics.median(samples) * 1e3:.3f} ms median, "
          f"p99 {sorted(samples)[int(len(samples) * 0.99)] * 1e3:.3f} ms")
    subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    main()
