"""Compliance API benchmarks (issue 13), client in the same run on the same machine.

1. A store of 1,000,000 forwarded records (three event types, received over 30 days) is built
   in-process, and its compliance log files (hourly windows) cut in-process.
2. Against a real ``corral server run`` on it (SQLite, then the same on PostgreSQL 15 started by
   the benchmark with initdb in a temp dir, fsync on; ``--skip-postgres`` leaves it out):
   - one page of 1,000 events (``GET /v1/events?after=<random cursor>&limit=1000``), request to
     parsed response, with a content-tier token and a metadata-only (redacting) token;
   - a full cursor read of the whole store, 1,000 a page, as a SIEM would (events/s);
   - listing 30 days of compliance files (``GET /v1/compliance/logs`` until has_more is false);
   - one compliance file download.
   The first page measure runs right after the server starts, while it folds its state and the
   analytics rollups over the whole store in the background; the rest after those folds (the
   script waits until the server process is idle). On PostgreSQL the bulk load is followed by
   VACUUM ANALYZE.
   The store keeps everything while these run (``[retention] default = "forever"``: the oldest
   day of the 30 would otherwise expire under the default 30 days in the middle of a read).
3. One retention round (in-process, SQLite): the first day's files expired under signed
   tombstones with a one-day policy at a clock 30 days on, then ``corral server verify`` of the
   store with the tombstones.
4. Paging through 100,000 events with httpx while they are being ingested over HTTP (the test
   suite does 20,000): none lost, none duplicated.

Every read is also an append (the ``server.access`` record), included in the timings.

Run: .venv/bin/python benchmarks/bench_compliance.py [--events 1000000] [--runs 3]
     [--page-samples 200] [--live-events 100000] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from common import machine  # noqa: E402
from tests.server.compliance_helpers import (  # noqa: E402
    mixed,
    mixed_journal,
    read_token,
    server_with,
)
from tests.server.helpers import (  # noqa: E402
    ServerProc,
    corral,
    forward_request,
    free_port,
    init_server,
    post,
    token,
)
from tests.server.pg import postgres  # noqa: E402

from corral.server import compliance, retention  # noqa: E402
from corral.server import config as sconfig  # noqa: E402
from corral.server.store.base import Incoming, JournalLink  # noqa: E402
from corral.telemetry.journal import GENESIS, canonical, chain_hash  # noqa: E402

HOUR = 3600 * 10**9


def build(data: Path, n: int, start_ns: int) -> None:
    """n forwarded records over 720 hours (30 days) of receive time."""
    store = sconfig.open_store(sconfig.load(data))
    prev = GENESIS
    per_hour = max(1, n // 720)
    items: list[Incoming] = []
    hour = 0
    for i in range(1, n + 1):
        ev = mixed(i, "big")
        body = canonical(ev.to_record(i))
        h = chain_hash(prev, body)
        items.append(Incoming(ev.id, ev.name, ev.time_unix_nano, "big-device", "forward",
                              body.decode(), "record",
                              journal=JournalLink("big-journal", "ab" * 32, i, h, prev)))
        prev = h
        if len(items) == per_hour:
            store.append(items, start_ns + hour * HOUR + 1)
            items = []
            hour += 1
    if items:
        store.append(items, start_ns + hour * HOUR + 1)
    store.close()


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * p))]


def ms(x: float) -> str:
    return f"{x * 1e3:.1f} ms"


def page_bench(c: httpx.Client, n: int, samples: int) -> tuple[list[float], list[float]]:
    """(request to the last byte of the response, request to the parsed JSON)."""
    rnd = random.Random(7)
    resp, parsed = [], []
    for _ in range(samples):
        after = rnd.randrange(0, n - 1000)
        t0 = time.perf_counter()
        r = c.get("/v1/events", params={"after": f"c{after}", "limit": 1000})
        t1 = time.perf_counter()
        doc = r.json()
        parsed.append(time.perf_counter() - t0)
        resp.append(t1 - t0)
        assert r.status_code == 200 and len(doc["data"]) == 1000, r.text[:200]
    return resp, parsed


def full_read(c: httpx.Client, n: int) -> float:
    t0 = time.perf_counter()
    cur, got = "c0", 0
    while True:
        doc = c.get("/v1/events", params={"after": cur, "limit": 1000}).json()
        got += sum(1 for e in doc["data"] if e["name"] != "server.access")
        cur = doc["next_cursor"]
        if not doc["has_more"]:
            break
    el = time.perf_counter() - t0
    assert got == n, (got, n)
    return n / el


def full_read_pipelined(c: httpx.Client, n: int) -> float:
    """The same read, every page decoded, but the next page asked for (from the
    ``Corral-Next-Cursor`` header) before this one is decoded: the server's work and the
    transfer overlap the client's JSON decoding."""
    from concurrent.futures import ThreadPoolExecutor

    def fetch(cur: str) -> httpx.Response:
        return c.get("/v1/events", params={"after": cur, "limit": 1000})

    t0 = time.perf_counter()
    got = 0
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(fetch, "c0")
        while True:
            r = fut.result()
            more = r.headers["corral-has-more"] == "true"
            if more:
                fut = ex.submit(fetch, r.headers["corral-next-cursor"])
            doc = r.json()
            assert doc["next_cursor"] == r.headers["corral-next-cursor"]
            got += sum(1 for e in doc["data"] if e["name"] != "server.access")
            if not more:
                break
    el = time.perf_counter() - t0
    assert got == n, (got, n)
    return n / el


def full_read_raw(c: httpx.Client, n: int) -> float:
    """The same read without decoding the events (cursor taken from the body's tail): what
    the server delivers, apart from the client's JSON parsing."""
    t0 = time.perf_counter()
    cur, got = "c0", 0
    while True:
        body = c.get("/v1/events", params={"after": cur, "limit": 1000}).content
        tail = body[body.rindex(b'"next_cursor"'):]
        got += body.count(b'"source":"forward"')
        cur = tail.split(b'"')[3].decode()
        if tail.endswith(b"false}"):
            break
    el = time.perf_counter() - t0
    assert got == n, (got, n)
    return n / el


def listing(c: httpx.Client) -> tuple[float, int]:
    t0 = time.perf_counter()
    after, files = None, 0
    while True:
        params: dict[str, object] = {"limit": 1000}
        if after:
            params["after"] = after
        doc = c.get("/v1/compliance/logs", params=params).json()
        files += len(doc["data"])
        if not doc["has_more"]:
            break
        after = doc["last_end_time"]
    return time.perf_counter() - t0, files


def batches(j: Any, n: int) -> list[bytes]:
    """forward_request per 1,000 records, reading the journal once (forward_request alone
    rereads all of it per call)."""
    rows = j.rows()
    orig = j.rows
    out = []
    try:
        for f in range(1, n + 1, 1000):
            part = rows[f - 1:f + 999]
            prev = rows[f - 2][5] if f > 1 else None
            j.rows = lambda part=part, prev=prev, f=f: ([(f - 1, "", "", 0, b"", prev)]
                                                        if prev else []) + part
            out.append(forward_request(j, f, min(n, f + 999), with_checkpoints=False))
    finally:
        j.rows = orig
    return out


def live(tmp: Path, n: int) -> str:
    data = tmp / "live"
    server_with(data, read_rate=100_000.0, read_burst=100_000)
    ing, rd = token(data, "ingest"), read_token(data, "--content")
    (tmp / "lj").mkdir()
    j = mixed_journal(tmp / "lj", n)
    bodies = batches(j, n)
    srv = ServerProc(data)
    try:
        post(srv.url, bodies[0], ing)
        done = threading.Event()

        def feed() -> None:
            for b in bodies[1:]:
                assert post(srv.url, b, ing).status_code == 200
            done.set()

        t = threading.Thread(target=feed)
        t.start()
        seen: list[str] = []
        cur, pages = "c0", 0
        with httpx.Client(base_url=srv.url, timeout=60,
                          headers={"Authorization": f"Bearer {rd}"}) as c:
            while True:
                fin = done.is_set()
                doc = c.get("/v1/events", params={"after": cur, "limit": 1000}).json()
                pages += 1
                seen += [e["id"] for e in doc["data"] if e["name"] != "server.access"]
                cur = doc["next_cursor"]
                if fin and not doc["has_more"]:
                    break
                if not doc["data"]:
                    time.sleep(0.02)
        t.join()
    finally:
        srv.stop()
    ok = len(seen) == len(set(seen)) == n and set(seen) == {r[1] for r in j.rows()}
    return (f"paged {len(seen):,} events in {pages} pages while they were ingested: "
            f"{'none lost, none duplicated' if ok else 'MISMATCH'}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (load on the box does not inflate it)."""
    import os

    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, limit: float = 900.0) -> float:
    """Seconds until the server process is idle (under 5% of a CPU for 3 s in a row): after a
    start it folds its state and the analytics rollups over the whole store in the
    background."""
    t0 = time.perf_counter()
    quiet, last = 0, cpu_seconds(pid)
    while quiet < 3 and time.perf_counter() - t0 < limit:
        time.sleep(1.0)
        now = cpu_seconds(pid)
        quiet = quiet + 1 if now - last < 0.05 else 0
        last = now
    return time.perf_counter() - t0 - 3


def setup(data: Path, database: str | None) -> None:
    """A server for the read measures: no rate limit in the way, nothing expiring."""
    init_server(data, database)
    with open(data / "config.toml", "a") as fh:
        fh.write("read_rate = 100000.0\nread_burst = 100000\ncompliance_grace = 1.0\n"
                 '[retention]\ndefault = "forever"\n')


def reads(label: str, data: Path, args: argparse.Namespace) -> None:
    """Page latency, full cursor read, listing and one file, against a real server."""
    rd_full = read_token(data, "--content")
    rd_meta = read_token(data, name="meta")
    srv = ServerProc(data)
    try:
        with httpx.Client(base_url=srv.url, timeout=120,
                          headers={"Authorization": f"Bearer {rd_full}"}) as c, \
                httpx.Client(base_url=srv.url, timeout=120,
                             headers={"Authorization": f"Bearer {rd_meta}"}) as m:
            s, sp = page_bench(c, args.events, args.page_samples)
            print(f"[{label}] page of 1,000 events, content token, right after the start while "
                  f"the server folds its state and rollups in the background: p95 "
                  f"{ms(pct(s, 0.95))} to the response (median {ms(statistics.median(s))}), "
                  f"p95 {ms(pct(sp, 0.95))} to the parsed JSON")
            print(f"[{label}] the server's start-up folds finished "
                  f"{settle(srv.proc.pid):.0f} s later; the rest is measured after them "
                  f"(load {Path('/proc/loadavg').read_text().split()[0]})")
            for who, client in (("content token", c), ("metadata token (redacting)", m)):
                p95r, p95p, p50r = [], [], []
                for _ in range(args.runs):
                    s, sp = page_bench(client, args.events, args.page_samples)
                    p50r.append(statistics.median(s))
                    p95r.append(pct(s, 0.95))
                    p95p.append(pct(sp, 0.95))
                print(f"[{label}] page of 1,000 events, {who}: p95 "
                      f"{ms(statistics.median(p95r))} to the response (runs "
                      f"{', '.join(ms(x) for x in p95r)}; median {ms(statistics.median(p50r))}), "
                      f"p95 {ms(statistics.median(p95p))} to the parsed JSON  "
                      f"[{args.page_samples} random cursors a run]")
            rates = [full_read(c, args.events) for _ in range(args.runs)]
            print(f"[{label}] full cursor read of {args.events:,} events: "
                  f"{statistics.median(rates):,.0f} events/s "
                  f"(runs {', '.join(f'{x:,.0f}' for x in rates)})")
            piped = [full_read_pipelined(c, args.events) for _ in range(args.runs)]
            print(f"[{label}] same, each page decoded, the next one asked for before decoding "
                  f"(Corral-Next-Cursor header): {statistics.median(piped):,.0f} events/s "
                  f"(runs {', '.join(f'{x:,.0f}' for x in piped)})")
            cpu0 = cpu_seconds(srv.proc.pid)
            raw = [full_read_raw(c, args.events) for _ in range(args.runs)]
            per_page = (cpu_seconds(srv.proc.pid) - cpu0) / (args.runs * args.events / 1000)
            print(f"[{label}] same, without decoding the events on the client: "
                  f"{statistics.median(raw):,.0f} events/s "
                  f"(runs {', '.join(f'{x:,.0f}' for x in raw)}); the server process used "
                  f"{per_page * 1e3:.2f} ms of CPU per 1,000-event page "
                  f"({1000 / per_page:,.0f} events per server CPU-second, the database's own "
                  "CPU not counted)")
            lt = [listing(c) for _ in range(max(args.runs, 5))]
            print(f"[{label}] listing 30 days of compliance files ({lt[0][1]:,} files): "
                  f"{ms(statistics.median(x[0] for x in lt))} "
                  f"(runs {', '.join(ms(x[0]) for x in lt)})")
            f0 = c.get("/v1/compliance/logs", params={"limit": 1}).json()["data"][0]
            dl = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                r = c.get(f"/v1/compliance/logs/{f0['id']}")
                dl.append(time.perf_counter() - t0)
                assert r.status_code == 200
            print(f"[{label}] one compliance file ({f0['count']:,} events, "
                  f"{len(r.content) / 1e6:.1f} MB): {ms(statistics.median(dl))}")
    finally:
        srv.stop()


def build_and_cut(label: str, data: Path, n: int, start_ns: int) -> None:
    t0 = time.perf_counter()
    build(data, n, start_ns)
    print(f"[{label}] built a store of {n:,} forwarded records over 30 days in "
          f"{time.perf_counter() - t0:.0f} s")
    cfg = sconfig.load(data)
    store = sconfig.open_store(cfg)
    t0 = time.perf_counter()
    files = compliance.cut(store, time.time_ns(), cfg.compliance_window, cfg.compliance_grace)
    store.close()
    print(f"[{label}] cut {files:,} compliance files (hourly, per type) in "
          f"{time.perf_counter() - t0:.1f} s")


def vacuum(url: str) -> None:
    """VACUUM ANALYZE after the bulk load, as after any bulk load: otherwise autovacuum works
    through the million new rows (and the planner has no statistics) while the reads are
    measured; a store that grew by ingest has had both all along."""
    import psycopg

    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    print(f"[PostgreSQL] VACUUM ANALYZE after the bulk load: {time.perf_counter() - t0:.1f} s")


def expire_day(data: Path, start_ns: int) -> None:
    """One retention round with a one-day policy, the clock at the first day's end plus a day:
    the first day's files (24 windows x 3 types) expire; then verify the whole store."""
    cfg = sconfig.load(data)
    name, _ = sconfig.verifier(cfg)
    store = sconfig.open_store(cfg)
    try:
        t0 = time.perf_counter()
        out = retention.run(store, retention.Policy(86400), retention.Signer(
            name, sconfig.signing_key(cfg)), start_ns + 48 * HOUR)
        el = time.perf_counter() - t0
    finally:
        store.close()
    n = sum(f.count for f, _ in out.expired)
    print(f"retention round: {len(out.expired)} files ({n:,} events) expired under signed "
          f"tombstones in {el:.2f} s ({n / el:,.0f} events/s)")
    t0 = time.perf_counter()
    res = corral("server", "verify", "--data", str(data), timeout=3600)
    last = res.stdout.strip().splitlines()[-1]
    print(f"corral server verify after it: {time.perf_counter() - t0:.1f} s: {last[:120]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--page-samples", type=int, default=200)
    ap.add_argument("--live-events", type=int, default=100_000)
    ap.add_argument("--skip-postgres", action="store_true")
    args = ap.parse_args()
    print(machine())
    tmp = Path(tempfile.mkdtemp(prefix="corral-bench-compliance-"))
    start_ns = (time.time_ns() // HOUR - 24 * 31) * HOUR
    data = tmp / "srv"
    setup(data, None)
    build_and_cut("SQLite", data, args.events, start_ns)
    print(f"[SQLite] store {(data / 'store' / 'log.db').stat().st_size / 1e6:,.0f} MB")
    reads("SQLite", data, args)
    expire_day(data, start_ns)
    print(machine())
    if not args.skip_postgres:
        with postgres(free_port(), fsync=True) as url:
            pdata = tmp / "pg"
            setup(pdata, url)
            build_and_cut("PostgreSQL", pdata, args.events, start_ns)
            vacuum(url)
            reads("PostgreSQL", pdata, args)
        print(machine())
    print(live(tmp, args.live_events))
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
