"""Triage and analytics over a real `corral server` store of 1,000,000 events (issues 14, 15).

The journal-side scripts (bench_triage.py, bench_stats.py) measure the engines over a machine's
journal; this one measures them where the fleet reads them: a `corral server` SQLite store.

1. Build: bench_stats.py's fleet (400 users in 20 teams, sessions of ~120 events over 30 days)
   appended through the store's own append (``Store.append``, batches of 20,000) as forwarded
   journal records, one hash-chained journal per team, received a few seconds after they
   happened (so the receive-time index the triage window uses is realistic).
2. Triage, ``--model none``: correlation + evidence + rules for five kinds of alert (stamped with
   session and call, unstamped command in the window, unrelated process, destination, no time),
   in-process over ``StoreSource`` and over HTTP (POST /v1/triage?model=none with an
   investigator token; the server also records the verdict and the access). Goal: p95 <= 1 s.
3. Analytics: ``corral server run`` folds ``DATA/analytics/rollup.db`` in the background; the
   first fold's time (in-process, the same ``Analyst.refold`` path, then the server's own), then
   GET /analytics/api/stats (whole range, ``by=team``, one team) over HTTP and ``compute`` on the
   server's rollup file in-process. Goal: <= 500 ms.
4. The dashboard's first load at /analytics/ in headless chromium (Debian's, through
   Playwright): page, API calls, four charts drawn. Goal: <= 2 s.

Usage: .venv/bin/python benchmarks/bench_server_analyst.py [--events 1000000] [--runs 30]
       [--keep DIR] [--no-browser]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from bench_stats import BASE, HOUR, TEAMS, _session  # noqa: E402
from common import machine  # noqa: E402
from tests.server.helpers import ServerProc, init_server, token  # noqa: E402

from corral.server import config as sconfig  # noqa: E402
from corral.server.source import StoreSource  # noqa: E402
from corral.server.state import State  # noqa: E402
from corral.server.store.base import Incoming, JournalLink  # noqa: E402
from corral.telemetry.journal import GENESIS, canonical, chain_hash  # noqa: E402
from corral.telemetry.schema import Event  # noqa: E402

TEAM_OF = {u: t for t, us in TEAMS.items() for u in us}


def build(data: Path, n: int) -> None:
    store = sconfig.open_store(sconfig.load(data))
    rng = random.Random(1)
    prev: dict[str, str] = {}
    jseq: dict[str, int] = {}
    span = 30 * 24 * HOUR
    written, k = 0, 0
    while written < n:
        batch: list[Event] = []
        while len(batch) < 20_000 and written + len(batch) < n:
            batch += _session(rng, BASE + (written + len(batch)) * span // n + k)
            k += 1
        batch = batch[: n - written]
        batch.sort(key=lambda e: e.time_unix_nano)
        items = []
        for ev in batch:
            jid = "journal-" + TEAM_OF[ev.user]
            seq = jseq.get(jid, 0) + 1
            jseq[jid] = seq
            body = canonical(ev.to_record(seq))
            p = prev.get(jid, GENESIS)
            h = chain_hash(p, body)
            prev[jid] = h
            items.append(Incoming(ev.id, ev.name, ev.time_unix_nano, jid.removeprefix(
                "journal-"), "forward", body.decode(), "record",
                journal=JournalLink(jid, "ab" * 32, seq, h, p)))
        store.append(items, batch[-1].time_unix_nano + 3 * 10**9)
        written += len(batch)
    store.close()


def stats_of(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    return f"{statistics.median(xs) * 1000:.1f} ms | {p95 * 1000:.1f} ms"


def alerts(src: StoreSource) -> dict[str, dict[str, Any]]:
    head = src.last_seq()
    evs = list(src.before(head // 2 + 400, 400))
    call = next(e for e in evs if e.name == "agent.tool.decision" and e.call_id)
    cmd = str(call.attributes["process.command_line"])
    t = call.time_unix_nano
    dest = next(e for e in evs if e.name == "agent.network.decision")
    old = next(e for e in src.before(1000, 900) if e.name == "agent.tool.decision")
    return {
        "stamped (session + call in env)": {"time": t, "host": call.host, "process": {
            "command_line": cmd, "env": {"CORRAL_SESSION_ID": call.session_id,
                                         "CORRAL_CALL_ID": call.call_id or ""}}},
        "unstamped, command in the window": {"time": t, "host": call.host, "user": call.user,
                                             "process": {"command_line": cmd}},
        "unrelated process (not_agent)": {"time": t, "host": call.host,
                                          "process": {"command_line": "/usr/bin/firefox"}},
        "destination in the window": {"time": dest.time_unix_nano, "host": dest.host,
                                      "network": {"host": str(
                                          dest.attributes["server.address"])}},
        "unstamped, first hour of the store (window scanned to the head)": {
            "time": old.time_unix_nano, "host": old.host, "user": old.user,
            "process": {"command_line": str(old.attributes["process.command_line"])}},
        "destination, no time (nothing to search)": {
            "host": dest.host, "network": {"host": str(dest.attributes["server.address"])}},
    }


def triage_inprocess(data: Path, runs: int) -> dict[str, dict[str, Any]]:
    from corral.triage.alerts import parse_alert
    from corral.triage.verdict import triage

    cfg = sconfig.load(data)
    store = sconfig.open_store(cfg, readonly=True)
    state = State(sconfig.open_store(cfg, readonly=True))
    t0 = time.perf_counter()
    state.refresh()
    print(f"  the server's state fold (sessions -> seqs), once per process: "
          f"{time.perf_counter() - t0:.1f} s")

    def seqs(sid: str) -> list[int] | None:
        state.refresh()
        got = state.session(sid)
        return None if got is None else list(got[1])

    src = StoreSource(store, cfg.origin, seqs)
    cases = alerts(src)
    print("in-process, triage(alert, StoreSource) with no model:")
    print("| alert | median | p95 | verdict |")
    print("|---|---|---|---|")
    for name, doc in cases.items():
        alert = parse_alert(doc)
        xs, verdict = [], ""
        for _ in range(runs):
            t0 = time.perf_counter()
            verdict = triage(alert, src).verdict
            xs.append(time.perf_counter() - t0)
        print(f"| {name} | {stats_of(xs)} | {verdict} |")
    store.close()
    return cases


def triage_http(url: str, tok: str, cases: dict[str, dict[str, Any]], runs: int) -> None:
    print("over HTTP, POST /v1/triage?model=none (investigator token; verdict and access "
          "recorded):")
    print("| alert | median | p95 | verdict |")
    print("|---|---|---|---|")
    with httpx.Client(base_url=url, timeout=120,
                      headers={"Authorization": f"Bearer {tok}"}) as c:
        t0 = time.perf_counter()
        r = c.post("/v1/triage?model=none",
                   content=json.dumps(cases["stamped (session + call in env)"]))
        assert r.status_code == 200, r.text
        print(f"  first call (the server folds its state, sessions -> seqs, over the store): "
              f"{time.perf_counter() - t0:.1f} s")
        for name, doc in cases.items():
            body = json.dumps(doc)
            xs, verdict = [], ""
            for _ in range(runs):
                t0 = time.perf_counter()
                r = c.post("/v1/triage?model=none", content=body)
                xs.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
                verdict = r.json()["verdict"]
            print(f"| {name} | {stats_of(xs)} | {verdict} |")


def first_fold(data: Path) -> None:
    from corral.analytics import RollupStore, Settings

    cfg = sconfig.load(data)
    store = sconfig.open_store(cfg, readonly=True)
    path = Path(tempfile.mkdtemp(prefix="corral-bench-fold-", dir=data)) / "rollup.db"
    rollup = RollupStore.open(path)
    t0 = time.perf_counter()
    rollup.refresh(StoreSource(store, cfg.origin, lambda sid: None),
                   Settings.from_table(cfg.analytics))
    took = time.perf_counter() - t0
    n = store.head()[0]
    print(f"first fold of the rollups from the store, in-process (Analyst.refold's path): "
          f"{took:.1f} s ({n / took:,.0f} events/s)")
    rollup.close()
    store.close()


def wait_folded(data: Path, url: str) -> float:
    """Seconds from the server's start until its background fold has reached the head."""
    import sqlite3

    head = httpx.get(url + "/healthz").json()["size"]
    path = data / "analytics" / "rollup.db"
    t0 = time.perf_counter()
    while True:
        if path.exists():
            try:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                got = conn.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
                conn.close()
            except sqlite3.Error:
                got = None
            if got and int(got[0]) >= head - 100:
                return time.perf_counter() - t0
        time.sleep(0.5)
        if time.perf_counter() - t0 > 1800:
            raise SystemExit("benchmark: the server's background fold did not finish in 30 min")


def analytics_http(url: str, tok: str, runs: int) -> None:
    print("GET /analytics/api/stats over HTTP (analyst token; rollups folded; each read "
          "recorded as server.access):")
    print("| query | median | p95 |")
    print("|---|---|---|")
    with httpx.Client(base_url=url, timeout=120,
                      headers={"Authorization": f"Bearer {tok}"}) as c:
        for label, params in (("whole range", {}), ("by=team", {"by": "team"}),
                              ("one team", {"team": "team03"})):
            xs = []
            for _ in range(runs):
                t0 = time.perf_counter()
                r = c.get("/analytics/api/stats", params=params)
                xs.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
            print(f"| {label} | {stats_of(xs)} |")


def analytics_inprocess(data: Path, runs: int) -> None:
    from corral.analytics import Query, RollupStore, Settings, compute

    cfg = sconfig.load(data)
    settings = Settings.from_table(cfg.analytics)
    rollup = RollupStore.open(data / "analytics" / "rollup.db")
    print("compute() on the server's rollup.db, in-process:")
    print("| query | median | p95 |")
    print("|---|---|---|")
    for label, q in (("whole range", Query()), ("by=team", Query(by="team")),
                     ("one team", Query(team="team03"))):
        xs = []
        for _ in range(runs):
            t0 = time.perf_counter()
            compute(rollup, q, settings)
            xs.append(time.perf_counter() - t0)
        print(f"| {label} | {stats_of(xs)} |")
    rollup.close()


def browser_first_load(url: str, tok: str, runs: int) -> None:
    from tests.analytics.dashboard_helpers import browser, timed_first_load

    page = url + "/analytics/#token=" + tok
    with browser() as b:
        timed_first_load(b, page)
        xs = [timed_first_load(b, page) for _ in range(runs)]
    print(f"dashboard first load at /analytics/ in headless chromium (page, API calls, 4 charts):"
          f" median {statistics.median(xs) * 1000:.0f} ms ({min(xs) * 1000:.0f}-"
          f"{max(xs) * 1000:.0f}), goal <= 2000 ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--keep", type=Path, default=None)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    print(machine())
    data = args.keep or Path(tempfile.mkdtemp(prefix="corral-bench-analyst-", dir="/var/tmp"))
    if not (data / "config.toml").exists():
        init_server(data, interval=3600)
        with (data / "config.toml").open("a") as fh:
            fh.write("\n[analytics.teams]\n" + "".join(f"{t} = {json.dumps(us)}\n"
                                                     for t, us in TEAMS.items()))
        t0 = time.perf_counter()
        build(data, args.events)
        print(f"built a store of {args.events:,} forwarded records in "
              f"{time.perf_counter() - t0:.0f} s "
              f"({(data / 'store' / 'log.db').stat().st_size / 1e6:,.0f} MB) at {data}")
    (data / "analytics" / "rollup.db").unlink(missing_ok=True)
    cases = triage_inprocess(data, args.runs)
    first_fold(data)
    print(machine())
    inv, ana = token(data, "investigator"), token(data, "analyst")
    srv = ServerProc(data)
    try:
        folded = wait_folded(data, srv.url)
        print(f"the server's background fold reached the head {folded:.1f} s after start")
        print(machine())
        triage_http(srv.url, inv, cases, args.runs)
        print(machine())
        analytics_http(srv.url, ana, max(5, args.runs // 3))
        analytics_inprocess(data, max(5, args.runs // 3))
        if not args.no_browser:
            print(machine())
            browser_first_load(srv.url, ana, max(5, args.runs // 6))
    finally:
        srv.stop()
    print(machine())
    print(f"load average (1/5/15 min) at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
