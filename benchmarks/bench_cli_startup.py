"""Cold start of the `corral` command: `corral --help` and `corral config explain`.

Goal (issue 2): at most 150 ms median on a 2-core machine. Each run is a fresh process (the OS
page cache is warm, as it is for a user who ran corral before). Usage:

    .venv/bin/python benchmarks/bench_cli_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

ROOT = Path(__file__).resolve().parent.parent
CORRAL = ROOT / ".venv" / "bin" / "corral"


def measure(argv: list[str], runs: int, env: dict[str, str], cwd: str) -> list[float]:
    subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=True)  # warm the cache
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        (home / "config.toml").write_text(
            'approval_policy = "on-request"\n[profiles.ci]\napproval_policy = "never"\n'
            '[network.domains]\n"pypi.org" = "allow"\n"files.pythonhosted.org" = "allow"\n'
        )
        env = dict(os.environ, CORRAL_HOME=str(home), CORRAL_SYSTEM_DIR=str(Path(tmp) / "etc"))
        cases = {
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
            "corral --help": [str(CORRAL), "--help"],
            "corral config explain": [str(CORRAL), "config", "explain"],
        }
        print(f"{machine()}; {args.runs} runs each")
        print(f"{'command':<28} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
        for name, argv in cases.items():
            t = measure(argv, args.runs, env, tmp)
            print(f"{name:<28} {statistics.median(t):>10.1f} {min(t):>8.1f} {max(t):>8.1f}")


if __name__ == "__main__":
    main()
