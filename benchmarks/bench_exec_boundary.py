"""The exec boundary's cost per exec (issue 19): a loop of 1,000 ``/bin/true`` inside ``corral
run`` with ``rules.exec_boundary = "all"`` (every exec waits for the supervisor's decision)
against ``"off"``, interleaved in the same run. The loop times itself inside the sandbox, so
corral's start and the sandbox's set-up are not in the figure. With ``--compare-src DIR`` a
third run in each round is ``"all"`` with corral from another source tree (for example an
older commit: ``git archive COMMIT src | tar -x -C DIR``), so both are measured under the
same load.

    .venv/bin/python benchmarks/bench_exec_boundary.py [--runs 7] [--execs 1000]
        [--compare-src DIR]
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

_SUMMARIES: dict[str, list[dict[str, object]]] = {}
LOOP = ('s=$(date +%s%N); for i in $(seq {n}); do /bin/true; done; e=$(date +%s%N); '
        'echo "loop_ns=$((e - s))"')


def one(work: Path, env: dict[str, str], mode: str, n: int, label: str = "") -> float:
    """Seconds the loop took inside the sandbox."""
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
        found = [e["attributes"] for e in events if e["name"] == "agent.exec.summary"]
        if found:
            _SUMMARIES.setdefault(label or mode, []).append(found[-1])
    for line in r.stdout.splitlines():
        if line.startswith("loop_ns="):
            return int(line.split("=", 1)[1]) / 1e9
    raise SystemExit(f"benchmark: no timing from the loop ({mode}): {r.stdout[-500:]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--execs", type=int, default=1000)
    ap.add_argument("--compare-src", metavar="DIR",
                    help="also run mode all with corral from DIR/src (interleaved)")
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="corral-bench-exec-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=work, check=True)
        env = dict(os.environ, CORRAL_HOME=str(Path(tmp) / "home"),
                   CORRAL_SYSTEM_DIR=str(Path(tmp) / "etc"))
        runs: dict[str, tuple[str, dict[str, str]]] = {"off": ("off", env), "all": ("all", env)}
        if args.compare_src:
            other = str(Path(args.compare_src).resolve() / "src")
            runs["all@compare"] = ("all", dict(env, PYTHONPATH=other))
        one(work, env, "all", 10, "warm")  # warm: seccomp filter cache, bwrap probe
        times: dict[str, list[float]] = {label: [] for label in runs}
        for _ in range(args.runs):
            for label, (mode, run_env) in runs.items():  # interleaved: the load hits all alike
                times[label].append(one(work, run_env, mode, args.execs, label))
    med = {m: statistics.median(v) for m, v in times.items()}
    per = {m: med[m] / args.execs * 1000 for m in med}
    print(f"{args.execs} x /bin/true in bash inside corral run, median of {args.runs} "
          "interleaved runs:")
    for m in runs:
        ms = ", ".join(f"{t * 1000:.0f}" for t in times[m])
        print(f"  rules.exec_boundary={m:<11} {med[m] * 1000:8.1f} ms  ({per[m]:.3f} ms per "
              f"exec; runs ms: {ms})")
    for m in [x for x in runs if x != "off"]:
        added = per[m] - per["off"]
        pairs = sorted((a - o) / args.execs * 1000 for a, o in zip(times[m], times["off"],
                                                                    strict=True))
        print(f"added per exec ({m} - off): {added:.3f} ms median of medians; per-pair "
              f"{pairs[0]:.3f}..{pairs[-1]:.3f} ms; goal <= 1 ms: "
              f"{'met' if added <= 1.0 else 'NOT met'}")
        own = [float(str(a["agent.exec.median_us"])) for a in _SUMMARIES.get(m, [])]
        if own:
            print(f"  supervisor's own time per exec (receive -> answer, agent.exec.summary): "
                  f"median of run medians {statistics.median(own):.0f} us; runs: "
                  f"{', '.join(f'{x:.0f}' for x in own)} us")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
