"""The exec boundary's cost per exec (issue 19): a loop of 1,000 ``/bin/true`` inside ``corral
run`` with ``rules.exec_boundary = "all"`` (every exec waits for the supervisor's decision)
against ``"off"``, interleaved in the same run. The loop times itself inside the sandbox, so
corral's start and the sandbox's set-up are not in the figure.

    .venv/bin/python benchmarks/bench_exec_boundary.py [--runs 7] [--execs 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

_SUMMARIES: list[dict[str, object]] = []
LOOP = ('s=$(date +%s%N); for i in $(seq {n}); do /bin/true; done; e=$(date +%s%N); '
        'echo "loop_ns=$((e - s))"')


def one(work: Path, env: dict[str, str], mode: str, n: int) -> float:
    """Seconds the loop took inside the sandbox."""
    global _SUMMARIES
    r = subprocess.run(
        [sys.executable, "-m", "corral", "-c", f"rules.exec_boundary={mode}", "run", "--",
         "bash", "-c", LOOP.format(n=n)],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise SystemExit(f"benchmark: corral run failed ({mode}): {r.stderr[-2000:]}")
    if mode != "off":
        log = subprocess.run([sys.executable, "-m", "corral", "log", "--json"], cwd=work,
                             env=env, capture_output=True, text=True, timeout=120)
        events = [json.loads(x) for x in log.stdout.splitlines() if x.strip()]
        _SUMMARIES = [e["attributes"] for e in events if e["name"] == "agent.exec.summary"]
    for line in r.stdout.splitlines():
        if line.startswith("loop_ns="):
            return int(line.split("=", 1)[1]) / 1e9
    raise SystemExit(f"benchmark: no timing from the loop ({mode}): {r.stdout[-500:]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--execs", type=int, default=1000)
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="corral-bench-exec-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=work, check=True)
        env = dict(os.environ, CORRAL_HOME=str(Path(tmp) / "home"),
                   CORRAL_SYSTEM_DIR=str(Path(tmp) / "etc"))
        one(work, env, "all", 10)  # warm: seccomp filter cache, bwrap probe
        times: dict[str, list[float]] = {"off": [], "all": []}
        for _ in range(args.runs):
            for mode in ("off", "all"):  # interleaved: the machine's load hits both alike
                times[mode].append(one(work, env, mode, args.execs))
    med = {m: statistics.median(v) for m, v in times.items()}
    per = {m: med[m] / args.execs * 1000 for m in med}
    print(f"{args.execs} x /bin/true in bash inside corral run, median of {args.runs} "
          "interleaved runs:")
    for m in ("off", "all"):
        runs = ", ".join(f"{t * 1000:.0f}" for t in times[m])
        print(f"  rules.exec_boundary={m:<4} {med[m] * 1000:8.1f} ms  ({per[m]:.3f} ms per exec;"
              f" runs ms: {runs})")
    added = per["all"] - per["off"]
    pairs = sorted((a - o) / args.execs * 1000 for a, o in zip(times["all"], times["off"],
                                                                strict=True))
    print(f"added per exec (all - off): {added:.3f} ms median of medians; per-pair "
          f"{pairs[0]:.3f}..{pairs[-1]:.3f} ms; goal <= 1 ms: "
          f"{'met' if added <= 1.0 else 'NOT met'}")
    own = [float(str(a["agent.exec.median_us"])) for a in _SUMMARIES[-args.runs:]]
    if own:
        print(f"supervisor's own time per exec (receive -> answer, agent.exec.summary): median "
              f"of run medians {statistics.median(own):.0f} us; runs: "
              f"{', '.join(f'{x:.0f}' for x in own)} us")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
