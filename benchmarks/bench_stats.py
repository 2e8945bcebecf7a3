"""`corral stats` and `corral dashboard` over a large journal (issue 15 item 4).

Builds a journal of --events realistic events (default 1,000,000: 400 users in 20 teams, 2
agents, 30 repositories, sessions of ~120 events over 30 days: decisions of every kind, network
decisions, sandbox outcomes, results, grants, MCP calls, prompts, agent claims) through the real
``JournalWriter``, then measures (median of --runs runs each):

* folding the whole journal into the rollups from scratch (once per run, a fresh rollup file);
* an incremental refresh after 1,000 new events;
* ``compute`` (every number of `corral stats --json`): the whole range, a window with partial
  hours at both ends, and ``--by team``. Goal: <= 500 ms;
* the dashboard's first load in headless chromium (page, stats, series, options, four charts
  drawn). Goal: <= 2 s;
* the engine question: the same GROUP BY over the 1M-row fact table (no rollups) in SQLite and
  in DuckDB (loaded from the same rows), to choose by measurement.

Usage: .venv/bin/python benchmarks/bench_stats.py [--runs 5] [--events 1000000] [--no-browser]
       [--no-duckdb]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from corral.analytics import (  # noqa: E402
    JournalSource,
    Query,
    RollupStore,
    Settings,
    compute,
    rollup_path,
)
from corral.telemetry.journal import JournalWriter  # noqa: E402
from corral.telemetry.keys import load_or_create_signing_key  # noqa: E402
from corral.telemetry.schema import Event  # noqa: E402
from corral.telemetry.ulid import new_ulid  # noqa: E402

HOUR = 3600 * 10**9
BASE = 1_793_577_600 * 10**9
USERS = [f"dev{i:03d}" for i in range(400)]
TEAMS = {f"team{t:02d}": USERS[t * 20:(t + 1) * 20] for t in range(20)}
DECISIONS = [("auto_approved", "rule", "git status"), ("auto_approved", "heuristic", "ls -la"),
             ("forbidden", "rule", "rm -rf /"), ("approved", "user", "git push origin main"),
             ("approved_for_session", "user", "npm install"), ("denied", "user", "curl x | sh"),
             ("auto_approved", "automated_reviewer", "pip install requests"),
             ("denied", "automated_reviewer", "chmod 777 /etc"), ("timed_out", "user", "make")]
DOMAINS = [f"host{i}.example.com" for i in range(300)]


def _ev(name: str, t: int, sid: str, user: str, agent: tuple[str, str],
        attrs: dict[str, Any], origin: str = "pipeline", call: str | None = None) -> Event:
    return Event(id=new_ulid(), name=name, time_unix_nano=t, session_id=sid, turn_id="t1",
                 call_id=call, user=user, host="h-" + user, agent_name=agent[0],
                 agent_version=agent[1], corral_version="0.1.0", tier=1,
                 attributes={**attrs, "corral.origin": origin})


def _session(rng: random.Random, t: int) -> list[Event]:
    user = rng.choice(USERS)
    agent = rng.choice([("codex", "0.169.0"), ("claude-code", "2.1.0")])
    sid = new_ulid()
    out = [_ev("agent.session.start", t, sid, user, agent, {
        "agent.policy.approval": "on-request", "agent.policy.sandbox": ":workspace",
        "process.working_directory": f"/home/{user}/src/repo{rng.randrange(30)}"})]
    while len(out) < 120:
        t += rng.randrange(1, 30) * 10**9
        r = rng.random()
        if r < 0.35:
            d = DECISIONS[rng.randrange(len(DECISIONS))]
            out.append(_ev("agent.tool.decision", t, sid, user, agent, {
                "gen_ai.tool.name": "shell", "agent.decision": d[0],
                "agent.decision.source": d[1], "process.command_line": d[2]},
                call=f"call-{len(out)}"))
        elif r < 0.55:
            out.append(_ev("agent.tool.result", t, sid, user, agent, {
                "gen_ai.tool.name": "shell", "gen_ai.tool.type": "shell",
                "agent.tool.success": rng.random() < 0.9, "process.exit.code": 0}))
        elif r < 0.75:
            out.append(_ev("agent.sandbox.outcome", t, sid, user, agent, {
                "gen_ai.tool.name": "shell",
                "agent.sandbox.outcome": rng.choice(["success", "failure", "sandbox_denied"])}))
        elif r < 0.88:
            out.append(_ev("agent.network.decision", t, sid, user, agent, {
                "network.policy.decision": rng.choice(["allow", "deny"]),
                "server.address": rng.choice(DOMAINS),
                "network.policy.source": rng.choice(["rule", "user", "default"])}))
        elif r < 0.92:
            out.append(_ev("agent.mcp.call", t, sid, user, agent, {
                "mcp.server.name": rng.choice(["github", "postgres", "jira"]),
                "gen_ai.tool.name": "search", "mcp.method.name": "tools/call"}))
        elif r < 0.95:
            out.append(_ev("agent.user_prompt", t, sid, user, agent,
                           {"prompt.length": 12}, origin="session_api"))
        else:
            out.append(_ev("agent.tool.result", t, sid, user, agent, {
                "gen_ai.tool.name": "shell", "gen_ai.tool.type": "shell"}, origin="import"))
    return out


def build(home: Path, n: int) -> Path:
    rng = random.Random(1)
    path = home / "journal" / "journal.db"
    w = JournalWriter(path, load_or_create_signing_key(home), 1000)
    written, k = 0, 0
    span = 30 * 24 * HOUR
    while written < n:
        batch: list[Event] = []
        while len(batch) < 50_000 and written + len(batch) < n:
            t = BASE + (written + len(batch)) * span // n
            batch += _session(rng, t + k)
            k += 1
        batch = batch[: n - written]
        batch.sort(key=lambda e: e.time_unix_nano)
        for i in range(0, len(batch), 512):
            w.append(batch[i:i + 512])
        written += len(batch)
    w.close()
    return path


def _median_ms(fn: Any, runs: int) -> tuple[float, float, float]:
    xs = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(xs), min(xs), max(xs)


def engines(store: RollupStore, runs: int) -> None:
    sql = ("SELECT metric, k1, k2, count(*) FROM facts WHERE metric IN ('decision', 'net', "
           "'sandbox') GROUP BY metric, k1, k2")
    med, lo, hi = _median_ms(lambda: store.conn.execute(sql).fetchall(), runs)
    print(f"  no rollups, SQLite GROUP BY over the fact table: {med:.0f} ms ({lo:.0f}-{hi:.0f})")
    try:
        import duckdb
    except ImportError:
        print("  DuckDB: not installed (pip install duckdb); comparison skipped")
        return
    import csv

    t0 = time.perf_counter()
    with tempfile.NamedTemporaryFile("w", suffix=".csv", newline="", delete=False) as fh:
        out = csv.writer(fh)
        out.writerow(["metric", "k1", "k2", "k3", "k4", "hour", "user"])
        out.writerows(store.conn.execute("SELECT metric, k1, k2, k3, k4, hour, user FROM facts"))
    db = duckdb.connect()
    db.execute("CREATE TABLE facts AS SELECT * FROM read_csv(?, header = true, delim = ',', "
               "quote = '\"', escape = '\"', auto_detect = false, columns = {'metric': "
               "'VARCHAR', 'k1': 'VARCHAR', 'k2': 'VARCHAR', 'k3': 'VARCHAR', 'k4': 'VARCHAR', "
               "'hour': 'BIGINT', 'user': 'VARCHAR'})", [fh.name])
    Path(fh.name).unlink()
    rows = db.execute("SELECT count(*) FROM facts").fetchall()[0]
    load = time.perf_counter() - t0
    med, lo, hi = _median_ms(lambda: db.execute(sql).fetchall(), runs)
    print(f"  no rollups, DuckDB {duckdb.__version__} same GROUP BY: {med:.0f} ms "
          f"({lo:.0f}-{hi:.0f}); loading the {rows[0]:,} rows into it (CSV): {load:.1f} s")


def browser_first_load(journal: Path, home: Path, runs: int) -> None:
    from tests.analytics.dashboard_helpers import browser, dashboard, timed_first_load

    with dashboard(journal, home) as url, browser() as b:
        timed_first_load(b, url)  # warm: rollups current, pages cached by nothing else
        xs = [timed_first_load(b, url) * 1000 for _ in range(runs)]
    print(f"dashboard first load in headless chromium (page, 3 API calls, 4 charts): "
          f"median {statistics.median(xs):.0f} ms ({min(xs):.0f}-{max(xs):.0f}), goal <= 2000 ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--no-duckdb", action="store_true")
    args = ap.parse_args()
    print(machine())
    settings = Settings(teams={u: t for t, us in TEAMS.items() for u in us})
    with tempfile.TemporaryDirectory(prefix="corral-bench-stats-") as d:
        home = Path(d)
        t0 = time.perf_counter()
        journal = build(home, args.events)
        print(f"journal: {args.events:,} events built in {time.perf_counter() - t0:.0f} s "
              f"({journal.stat().st_size / 1e6:.0f} MB)")
        folds = []
        for run in range(args.runs):
            p = home / f"fold-{run}.db"
            store = RollupStore.open(p)
            t0 = time.perf_counter()
            store.refresh(JournalSource(journal), settings)
            folds.append(time.perf_counter() - t0)
            store.close()
            if run < args.runs - 1:
                for f in home.glob(f"fold-{run}.db*"):
                    f.unlink()
        med = statistics.median(folds)
        print(f"fold from scratch: median {med:.1f} s ({args.events / med:,.0f} events/s), "
              f"rollup file {(home / f'fold-{args.runs - 1}.db').stat().st_size / 1e6:.0f} MB")
        store = RollupStore.open(home / f"fold-{args.runs - 1}.db")
        rolls = store.conn.execute("SELECT count(*) FROM roll").fetchone()[0]
        print(f"rollup rows: {rolls:,}")
        src = JournalSource(journal)
        full = Query()
        edges = Query(since_ns=BASE + 3 * 24 * HOUR + 17 * 60 * 10**9,
                      until_ns=BASE + 27 * 24 * HOUR + 41 * 60 * 10**9)
        for label, q in (("whole range", full), ("partial hours at both ends", edges),
                         ("--by team", Query(by="team")),
                         ("one team", Query(team="team03"))):
            med_ms, lo, hi = _median_ms(lambda q=q: compute(store, q, settings), args.runs)
            print(f"stats ({label}): median {med_ms:.0f} ms ({lo:.0f}-{hi:.0f}), "
                  f"goal <= 500 ms")
        incs = []
        w = JournalWriter(journal, load_or_create_signing_key(home), 1000)
        rng = random.Random(2)
        for _ in range(args.runs):
            evs = []
            while len(evs) < 1000:
                evs += _session(rng, BASE + 31 * 24 * HOUR)
            w.append(evs[:1000])
            t0 = time.perf_counter()
            store.refresh(src, settings)
            incs.append((time.perf_counter() - t0) * 1000)
        w.close()
        print(f"incremental refresh after 1,000 new events: median "
              f"{statistics.median(incs):.0f} ms ({min(incs):.0f}-{max(incs):.0f})")
        if not args.no_duckdb:
            print("engine comparison (the question the rollups answer):")
            engines(store, args.runs)
        store.close()
        (home / "analytics.db").unlink(missing_ok=True)
        if not args.no_browser:
            target = rollup_path(journal)
            for suffix in ("", "-wal", "-shm"):
                src_f = Path(str(home / f"fold-{args.runs - 1}.db") + suffix)
                if src_f.exists():
                    subprocess.run(["cp", str(src_f), str(target) + suffix], check=True)
            browser_first_load(journal, home, args.runs)


if __name__ == "__main__":
    main()
