"""`corral exec --approval-policy never -- true` of two source trees, interleaved (issue 20).

On a shared machine a load change between two sequential hyperfine runs is larger than the
difference measured; here every round runs each variant once (in rotating order), so both see
the same load. Wall time and CPU time (user + system, the process and its children) per run;
medians. Usage (``git archive REV src | tar -x -C DIR`` makes a tree of a commit):

    .venv/bin/python benchmarks/bench_exec_ab.py --base /tmp/execbase/src --new src [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

ENTRY = "import sys; from corral.cli.entry import main; sys.argv[0]='corral'; sys.exit(main())"
COMMANDS = {"exec": ["exec", "--approval-policy", "never", "--", "true"],
            "sandbox": ["sandbox", "--", "true"]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="src directory of the tree to compare with")
    ap.add_argument("--new", default=str(Path(__file__).resolve().parent.parent / "src"))
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    variants = [(f"{cmd} {name}", src, argv) for cmd, argv in COMMANDS.items()
                for name, src in (("base", args.base), ("new", args.new))]
    with tempfile.TemporaryDirectory(prefix="corral-bench-exec-") as tmp:
        work = Path(tmp) / "ws"
        work.mkdir()
        subprocess.run(["git", "init", "-q", str(work)], check=True)
        env = dict(os.environ, CORRAL_HOME=str(Path(tmp) / "h"),
                   CORRAL_SYSTEM_DIR=str(Path(tmp) / "etc"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        wall: dict[str, list[float]] = {v[0]: [] for v in variants}
        cpu: dict[str, list[float]] = {v[0]: [] for v in variants}

        def once(src: str, argv: list[str]) -> tuple[float, float]:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", ENTRY, *argv], cwd=work, check=True,
                           env=dict(env, PYTHONPATH=src))
            ms = (time.perf_counter() - t0) * 1000
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            return ms, (after.ru_utime - before.ru_utime + after.ru_stime
                        - before.ru_stime) * 1000

        for _name, src, argv in variants * 3:  # warm-up: the key, the journal, bytecode
            once(src, argv)
        print(machine())
        print("load average before:", " ".join(Path("/proc/loadavg").read_text().split()[:3]))
        for i in range(args.runs):
            k = i % len(variants)
            for name, src, argv in variants[k:] + variants[:k]:
                ms, c = once(src, argv)
                wall[name].append(ms)
                cpu[name].append(c)
        print("load average after: ", " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    for name, _src, _argv in variants:
        w = sorted(wall[name])
        print(f"{name:13} wall median {statistics.median(w):6.1f} ms (p25 {w[len(w) // 4]:.1f}, "
              f"p75 {w[3 * len(w) // 4]:.1f})  cpu median {statistics.median(cpu[name]):6.1f} ms"
              f"  n={len(w)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
