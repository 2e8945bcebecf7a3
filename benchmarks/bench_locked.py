"""What locking missing permission files costs a spawn (issue 8, item 1).

``Sandbox(plan).spawn(['true']).wait()`` plus the placeholder cleanup (``close()``), for the
same workspace plan with a writable agent directory:

- no locked paths (as before);
- the 8 permission files of the codex and Claude Code presets locked, all *missing* (every spawn
  creates 8 placeholders, mounts them and removes them);
- the same 8 locked, all *existing* (only read-only binds).

Runs are interleaved; the median of ``--runs`` is reported. Usage:

    .venv/bin/python benchmarks/bench_locked.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sandbox import interleaved, machine

from corral.sandbox import Locked, Sandbox, build_plan

NAMES = ("config.toml", "hooks.json", "requirements.toml", "managed_config.toml", "rules",
         "settings.json", "settings.local.json", "managed-settings.json")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    runs = ap.parse_args().runs
    tmp = Path(tempfile.mkdtemp(prefix="bench-locked-"))
    os.environ["CORRAL_HOME"] = str(tmp / "corral")
    ws = tmp / "ws"
    ws.mkdir()
    boxes: dict[str, Sandbox] = {}
    for case in ("no locked paths", "8 locked, all missing", "8 locked, all existing"):
        agent = tmp / case.replace(" ", "-").replace(",", "") / ".agent"
        agent.mkdir(parents=True)
        locked = [Locked.infer(agent / n) for n in NAMES] if "8" in case else []
        if "existing" in case:
            for lk in locked:
                if lk.content is None:
                    lk.path.mkdir()
                else:
                    lk.path.write_bytes(lk.content)
        plan = build_plan(":workspace", ws, writable_roots=[agent], home=tmp,
                          exclude_slash_tmp=True, exclude_tmpdir=True, locked=locked)
        boxes[case] = Sandbox(plan, defer_cleanup=False)

    def spawn(sb: Sandbox) -> None:
        if sb.spawn(["true"], ws).wait() != 0:
            raise SystemExit("sandboxed true failed")

    res = interleaved({k: (lambda sb=sb: spawn(sb)) for k, sb in boxes.items()}, runs)
    print(machine())
    print(f"{'case':<28} {'median ms':>10} {'min ms':>8}   ({runs} runs each, interleaved)")
    base = statistics.median(res["no locked paths"])
    for name, xs in res.items():
        med = statistics.median(xs)
        print(f"{name:<28} {med:>10.2f} {min(xs):>8.2f}   (+{med - base:.2f} ms)")
    left = [p for p in tmp.rglob("*") if p.name in NAMES and "existing" not in str(p)]
    assert not left, left  # every placeholder was removed


if __name__ == "__main__":
    main()
