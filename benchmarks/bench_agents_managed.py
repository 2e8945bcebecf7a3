"""What `corral agents apply` / `corral agents check` cost (issue 16 item 4).

1. In process: rendering the four managed files from an effective config with 200 prefix
   rules (each with an alternative), and `check` against files already applied.
2. Whole process: `corral agents check` and `corral agents apply` with nothing to change
   (the idempotent re-run a timer or configuration management makes), under a scratch --root.

Usage:  .venv/bin/python benchmarks/bench_agents_managed.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from corral.agents_managed import apply as apply_files
from corral.agents_managed import check, inputs_from_config, plan, render
from corral.config import load_config
from corral.integrations.install import hook_command, merge_hooks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

RULES = "".join(f'[[rules.prefix_rules]]\npattern = ["tool{i}", ["-a", "--all"]]\n'
                f'decision = "forbidden"\njustification = "rule {i}"\n' for i in range(200))
REQUIREMENTS = ('allowed_approval_policies = ["untrusted", "on-request"]\n'
                'allowed_permission_profiles = [":read-only", ":workspace"]\n' + RULES)


def median_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "etc").mkdir()
        (base / "etc" / "requirements.toml").write_text(REQUIREMENTS)
        (base / "home").mkdir()
        root = base / "root"
        cfg = load_config(base, home=base / "home", system=base / "etc")
        hooks = {a: merge_hooks({}, a, hook_command(a)) for a in ("codex", "claude-code",
                                                                   "gemini")}
        inputs = inputs_from_config(cfg, hooks, "helper")
        files = render(inputs)
        apply_files(root, plan(root, files), inputs.sources)
        print(f"in process, 200 rules: render {median_ms(lambda: render(inputs), args.runs):.2f}"
              f" ms, check {median_ms(lambda: check(root, files), args.runs):.2f} ms (median "
              f"of {args.runs})")
        env = {**os.environ, "CORRAL_HOME": str(base / "home"),
               "CORRAL_SYSTEM_DIR": str(base / "etc")}
        for what in ("check", "apply"):
            def run(what: str = what) -> None:
                subprocess.run([sys.executable, "-m", "corral", "agents", what, "--root",
                                str(root)], env=env, check=True, capture_output=True)
            print(f"corral agents {what} (nothing to change): "
                  f"{median_ms(run, args.runs):.0f} ms (median of {args.runs})")


if __name__ == "__main__":
    main()
