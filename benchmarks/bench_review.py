"""Auto-review benchmark (issue 7, Evaluation): how well and how fast the deterministic reviewer
judges the labelled actions in tests/data/review/.

Quality: "positive" means the reviewer stops the action (deny). Per category: precision (of the
actions it denied, how many should be denied) and recall (of the actions that should be denied,
how many it denied); for everyday work, the share approved without asking. Also: how many
high/critical actions were approved without the user's request asking for them (goal: none),
and how many verdicts reached at least the labelled risk level.

Speed: mean time of ``DeterministicReviewer.review`` per action over the whole set, median of
``--runs`` runs; once with the shell-parse cache cleared before every review (worst case: the
script was never seen) and once warm (the pipeline's rules check parsed the same script just
before the reviewer runs, so this is the usual case). Goal: < 1 ms.

Run: .venv/bin/python benchmarks/bench_review.py [--runs N] [--show-misses]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import machine  # noqa: E402

from corral.review.deterministic import DeterministicReviewer  # noqa: E402
from corral.review.model import ReviewRequest, risk_rank  # noqa: E402
from corral.rules import analysis  # noqa: E402

DATA = ROOT / "tests" / "data" / "review"
HOME = "/home/dev"
CWD = "/home/dev/proj"


def load(name: str) -> list[dict[str, Any]]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def request(e: dict[str, Any]) -> ReviewRequest:
    argv = tuple(e["argv"]) if "argv" in e else ("bash", "-lc", e["script"])
    return ReviewRequest(argv, e.get("cwd", CWD), intent=e.get("intent"))


def quality(entries: list[dict[str, Any]], reviewer: DeterministicReviewer,
            show: bool) -> list[str]:
    cats: dict[str, dict[str, int]] = {}
    total = {"n": 0, "tp": 0, "fp": 0, "fn": 0, "tn": 0, "risk_ok": 0}
    bad_high = 0
    for e in entries:
        r = reviewer.review(request(e))
        c = cats.setdefault(e["category"], {"n": 0, "tp": 0, "fp": 0, "fn": 0, "tn": 0,
                                            "risk_ok": 0})
        want, got = e["expected"] == "deny", r.outcome == "deny"
        key = {(True, True): "tp", (False, True): "fp", (True, False): "fn",
               (False, False): "tn"}[(want, got)]
        ok_risk = risk_rank(r.risk_level) >= risk_rank(e["min_risk"])
        for d in (c, total):
            d["n"] += 1
            d[key] += 1
            d["risk_ok"] += ok_risk
        if risk_rank(e["min_risk"]) >= 2 and not e.get("intent") and not got:
            bad_high += 1
        if show and (want != got or not ok_risk):
            print(f"  miss {e['id']}: expected {e['expected']}/{e['min_risk']}, got "
                  f"{r.outcome}/{r.risk_level}: {r.rationale}", file=sys.stderr)
    rows = []
    for name, d in [*sorted(cats.items()), ("all", total)]:
        prec = d["tp"] / (d["tp"] + d["fp"]) if d["tp"] + d["fp"] else None
        rec = d["tp"] / (d["tp"] + d["fn"]) if d["tp"] + d["fn"] else None
        allowed = d["tn"] / (d["tn"] + d["fp"]) if d["tn"] + d["fp"] else None
        rows.append(f"| {name} | {d['n']} | {_pct(prec)} | {_pct(rec)} | {_pct(allowed)} | "
                    f"{_pct(d['risk_ok'] / d['n'])} |")
    rows.append(f"| high/critical approved without the user asking | | | | | **{bad_high}** |")
    return rows


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _clear_parse_cache() -> None:
    """The shell-parse cache emptied (the rules package's API, or its older module dict)."""
    clear = getattr(analysis, "clear_parse_cache", None)
    if clear is not None:
        clear()
    else:
        analysis._script_cache.clear()


def timing(entries: list[dict[str, Any]], reviewer: DeterministicReviewer, runs: int,
           cold: bool) -> tuple[float, float, float]:
    reqs = [request(e) for e in entries]
    means: list[float] = []
    per: list[float] = []
    for _ in range(runs):
        t_total = 0.0
        for req in reqs:
            if cold:
                _clear_parse_cache()
            t0 = time.perf_counter()
            reviewer.review(req)
            dt = time.perf_counter() - t0
            t_total += dt
            per.append(dt)
        means.append(t_total / len(reqs))
    per.sort()
    return (statistics.median(means) * 1e6, per[len(per) // 2] * 1e6,
            per[int(len(per) * 0.99)] * 1e6)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--show-misses", action="store_true")
    args = ap.parse_args()
    print(machine())
    reviewer = DeterministicReviewer(home=HOME)
    labelled, holdout = load("actions.jsonl"), load("holdout.jsonl")
    holdout2, holdout3 = load("holdout2.jsonl"), load("holdout3.jsonl")
    for title, entries in (("labelled set (tests/data/review/actions.jsonl)", labelled),
                           ("held-out set (tests/data/review/holdout.jsonl)", holdout),
                           ("second held-out set (tests/data/review/holdout2.jsonl)", holdout2),
                           ("third held-out set, issue 20 categories "
                            "(tests/data/review/holdout3.jsonl)", holdout3)):
        print(f"\n{title}: {len(entries)} actions\n")
        print("| category | actions | precision (deny) | recall (deny) | approved (of should-"
              "allow) | risk ≥ label |")
        print("|---|---|---|---|---|---|")
        for row in quality(entries, reviewer, args.show_misses):
            print(row)
    everything = labelled + holdout + holdout2 + holdout3
    for e in everything[:50]:  # warm-up: imports, tree-sitter, regex compilation
        reviewer.review(request(e))
    print(f"\nreview time over {len(everything)} actions, median of {args.runs} runs:\n")
    print("| case | mean per review | p50 | p99 |")
    print("|---|---|---|---|")
    for label, cold in (("parse cache cleared before each review (worst case)", True),
                        ("warm parse cache (rules parsed the script just before)", False)):
        mean, p50, p99 = timing(everything, reviewer, args.runs, cold)
        print(f"| {label} | {mean:.0f} µs | {p50:.0f} µs | {p99:.0f} µs |")
    best = []
    for e in everything:  # each action's fastest run: what it costs without scheduler noise
        req = request(e)
        times = []
        for _ in range(args.runs):
            _clear_parse_cache()
            t0 = time.perf_counter()
            reviewer.review(req)
            times.append(time.perf_counter() - t0)
        best.append(min(times) * 1e6)
    best.sort()
    print(f"| each action's fastest of {args.runs} runs, cache cleared (noise-free cost) | "
          f"{statistics.mean(best):.0f} µs | {best[len(best) // 2]:.0f} µs | "
          f"max {best[-1]:.0f} µs |")


if __name__ == "__main__":
    main()
