"""Telemetry journal throughput and verification time.

Measures (median of --runs runs each):
* emit overhead on the agent's path: wall time of one ``Telemetry.emit`` call (validate, tier,
  envelope, hand-off to the writer thread) while the writer is running. Goal: <= 20 us median.
* sustained journal write rate with the hash chain: ``JournalWriter.append`` in 512-event
  transactions (canonical JSON + SHA-256 chain + SQLite WAL insert + checkpoints every 1000).
  Goal: >= 20,000 events/s.
* end-to-end rate through ``Telemetry.emit`` + ``flush`` (both threads sharing the GIL).
* ``Journal.verify`` (what ``corral log verify`` runs) over --verify-records records.
  Goal: 1,000,000 records in < 10 s.

Usage: .venv/bin/python benchmarks/bench_journal.py [--runs 5] [--events 100000]
       [--verify-records 100000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from corral.telemetry import (  # noqa: E402
    Journal,
    Telemetry,
    ToolDecision,
    ToolResult,
    journal_file,
)
from corral.telemetry.journal import JournalWriter  # noqa: E402
from corral.telemetry.keys import load_or_create_signing_key, load_public_key  # noqa: E402
from corral.telemetry.schema import EventBody  # noqa: E402

DECISION = ToolDecision(tool_name="shell", decision="approved", source="rule",
                        rule="/home/dev/.corral/rules/default.rules:12",
                        command_line="git status --porcelain")


RESULT = ToolResult(tool_name="shell", tool_kind="shell", exit_code=0, duration_ms=812.0,
                    success=True, output="PASS src/app.test.ts (4 tests)\n" * 128,
                    command_line="cd /home/dev/projects/webapp && npm test -- --runInBand "
                                 "--coverage src/components/Button.test.tsx")


def _events(tel: Telemetry, n: int) -> list:  # type: ignore[type-arg]
    """Pre-built events (so the write benchmark measures only the journal)."""
    return [tel._make_event(DECISION.NAME, DECISION.attributes(), f"call-{i}", "turn-1", None)
            for i in range(n)]


def bench_emit(home: Path, n: int, body: EventBody = DECISION) -> tuple[float, float]:
    tel = Telemetry.open(None, "bench-emit", home=home, journal_path=home / "emit.db")
    attrs = body.attributes()
    content = body.content() or None
    samples = []
    pc = time.perf_counter_ns
    for i in range(n):
        t0 = pc()
        tel.emit(body.NAME, attrs, call_id="c", turn_id="t", content=content)
        samples.append(pc() - t0)
        if i % 1000 == 999:
            tel.flush()  # keep the queue short, as a real session would
    tel.close()
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


def bench_write(home: Path, n: int, run: int) -> float:
    key = load_or_create_signing_key(home)
    tel = Telemetry.open(None, "bench-build", home=home, journal_path=home / "scratch.db")
    evs = _events(tel, n)
    tel.close()
    w = JournalWriter(home / f"write-{run}.db", key, 1000)
    t0 = time.perf_counter()
    for i in range(0, n, 512):
        w.append(evs[i:i + 512])
    dt = time.perf_counter() - t0
    w.close()
    return n / dt


def bench_end_to_end(home: Path, n: int, run: int) -> float:
    tel = Telemetry.open(None, "bench-e2e", home=home, journal_path=home / f"e2e-{run}.db")
    attrs = DECISION.attributes()
    t0 = time.perf_counter()
    for _ in range(n):
        tel.emit(DECISION.NAME, attrs, call_id="c", turn_id="t")
    tel.flush()
    dt = time.perf_counter() - t0
    tel.close()
    return n / dt


def build_for_verify(home: Path, n: int) -> Path:
    key = load_or_create_signing_key(home)
    tel = Telemetry.open(None, "bench-build", home=home, journal_path=home / "scratch2.db")
    chunk = _events(tel, 512)
    tel.close()
    path = journal_file(home)
    w = JournalWriter(path, key, 1000)
    for i in range(0, n, 512):
        w.append(chunk[: min(512, n - i)])
    w.checkpoint()
    w.close()
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--emits", type=int, default=20_000)
    ap.add_argument("--verify-records", type=int, default=100_000)
    args = ap.parse_args()
    print(machine())
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for label, body in (("decision, short command", DECISION),
                            ("result, long command + 4 KB output at tier 1", RESULT)):
            emit = [bench_emit(home, args.emits, body) for _ in range(args.runs)]
            print(f"emit overhead ({label}): median "
                  f"{statistics.median(m for m, _ in emit):.1f} us, "
                  f"p99 {statistics.median(p for _, p in emit):.1f} us "
                  f"({args.emits} emits x {args.runs} runs)")
        rates = [bench_write(home, args.events, r) for r in range(args.runs)]
        print(f"journal write (chain, 512/txn): median {statistics.median(rates):,.0f} events/s "
              f"({args.events} events x {args.runs} runs)")
        e2e = [bench_end_to_end(home, args.events // 2, r) for r in range(args.runs)]
        print(f"emit -> journal end to end: median {statistics.median(e2e):,.0f} events/s")
        path = build_for_verify(home, args.verify_records)
        pub = load_public_key(home)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            res = Journal(path).verify(pub)
            times.append(time.perf_counter() - t0)
            assert res.ok and res.records == args.verify_records, res.problems[:3]
        print(f"verify {args.verify_records:,} records: median {statistics.median(times):.2f} s "
              f"({args.verify_records / statistics.median(times):,.0f} records/s, "
              f"{path.stat().st_size / 1e6:.0f} MB)")


if __name__ == "__main__":
    main()
