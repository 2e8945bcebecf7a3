"""Approvals benchmarks (issue 7): what a grant lookup costs on every action, and how long a
queued or remote answer takes to reach the waiting side.

1. ``GrantStore.find`` with 10,000 grants in the store (spread over 300 programs, sessions and
   projects): a miss (no grant: the common case), a hit on a session grant, and claiming a
   once-grant (the only write). Median of several runs of many calls each, per call.
2. ``GrantStore.add`` persistent (database row + locked rules-file rewrite + fsync).
3. Queue round trip: ``PendingQueue.ask`` in one thread, answered by another process's store
   as soon as it appears; time from answer to the asker waking. The asker polls every 50 ms
   and this answer lands just after a poll, so it shows the worst case (random: ~25 ms).
4. ``mint_token`` + ``redeem_token`` (Ed25519 sign + verify + one transaction).

Run: .venv/bin/python benchmarks/bench_approvals.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import machine  # noqa: E402

from corral.approvals import Choice, GrantStore, Kind, PendingQueue, Question  # noqa: E402
from corral.approvals.tokens import mint_token, redeem_token  # noqa: E402


def per_call_us(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def populate(store: GrantStore, n: int) -> None:
    for i in range(n):
        prog = f"tool{i % 300}"
        if i % 3 == 0:
            store.add("shell", "session", [prog, "sub", str(i)], session_id=f"s{i % 50}")
        elif i % 3 == 1:
            store.add("shell", "project", [prog, "sub", str(i)], project=f"/p/{i % 20}")
        else:
            store.add("network", "session", [f"h{i}.example.com", "*", "https"],
                      session_id=f"s{i % 50}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--grants", type=int, default=10_000)
    args = ap.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as d:
        store = GrantStore(Path(d) / "state" / "grants.db")
        populate(store, args.grants)
        store.add("shell", "session", ["make", "test"], session_id="bench")
        miss = [per_call_us(lambda: store.find("shell", ["tool7", "sub", "nope"],
                                                session_id="s1", project="/p/1"), 2000)
                for _ in range(args.runs)]
        hit = [per_call_us(lambda: store.find("shell", ["make", "test", "-j2"],
                                               session_id="bench"), 2000)
               for _ in range(args.runs)]
        claims = []
        for _ in range(args.runs):
            for _ in range(200):
                store.add("shell", "once", ["deploy", "now"], session_id="bench")
            claims.append(per_call_us(lambda: store.find("shell", ["deploy", "now"],
                                                          session_id="bench"), 200))
        adds = []
        for r in range(args.runs):
            i = iter(range(100))
            adds.append(per_call_us(lambda r=r, i=i: store.add(
                "shell", "persistent", ["bench", str(r), str(next(i))]), 100))
        rows += [
            (f"`find` miss, {args.grants:,} grants in store", f"{statistics.median(miss):.1f} µs"),
            ("`find` hit (session grant)", f"{statistics.median(hit):.1f} µs"),
            ("`find` claiming a once-grant (write transaction)",
             f"{statistics.median(claims):.1f} µs"),
            ("`add` persistent (row + locked rules-file rewrite + fsync)",
             f"{statistics.median(adds) / 1000:.2f} ms"),
        ]

        queue = PendingQueue(store)
        lat = []
        for _ in range(args.runs):
            answered_at: list[float] = []

            def answer(answered_at: list[float] = answered_at) -> None:
                other = GrantStore(store.path)
                oq = PendingQueue(other)
                while True:
                    items = oq.pending()
                    if items:
                        answered_at.append(time.perf_counter())
                        oq.answer(items[0].id, Choice.ONCE)
                        break
                    time.sleep(0.005)
                other.close()

            th = threading.Thread(target=answer)
            th.start()
            q = Question(kind=Kind.SHELL, argv=("make", "deploy"), reason="bench")
            queue.submit(q, timeout=30)
            woke = time.perf_counter()
            th.join()
            lat.append((woke - answered_at[0]) * 1000)
        rows.append(("queue: answer -> asker wakes (poll 50 ms)",
                     f"{statistics.median(lat):.0f} ms"))

        tok = []
        for _ in range(args.runs):
            pid = queue.post(Question(kind=Kind.SHELL, argv=("make", "x"), reason="t"), 600)
            t0 = time.perf_counter()
            redeem_token(queue, mint_token(queue, pid, Choice.ONCE))
            tok.append((time.perf_counter() - t0) * 1000)
        rows.append(("`mint_token` + `redeem_token`", f"{statistics.median(tok):.2f} ms"))
        store.close()

    print(machine())
    print(f"median of {args.runs} runs")
    print("| measure | result (median) |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
