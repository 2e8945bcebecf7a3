"""Rules engine benchmarks (issue 3).

1. In-process decisions/second for 3-command ``bash -lc`` scripts against a 1,000-rule policy,
   single thread: *cold* (every script new: full tree-sitter parse) and *warm* (scripts repeat,
   as an agent's do: parse cache hits), and *cold_inline* (one command hidden in ``python3 -c``,
   ``perl -e``, ``node -e``, awk, ``GIT_PAGER`` or ``npx``, issue 19). Median of several runs.
2. Whole-process ``corral policy check`` against the native ``codex execpolicy check`` on the same
   1,000-rule file, median wall time of >= 10 runs each (hyperfine when installed).

3. With ``--compare-src DIR``: only the cache-hit hot paths and the in-process decisions, for
   this tree and for the tree in DIR (e.g. ``git archive BASE src benchmarks | tar -x -C DIR``),
   in alternating processes, medians: before/after numbers for a change, same run.

Run: .venv/bin/python benchmarks/bench_rules.py [--runs N] [--compare-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, require_peer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ.get("BENCH_RULES_SRC") or str(ROOT / "src"))  # --compare-src

from corral.rules import analysis, decide  # noqa: E402
from corral.rules.sources import load_policy  # noqa: E402

NATIVE = (ROOT / ".tools/node/node_modules/@openai/codex-linux-x64/vendor/"
          "x86_64-unknown-linux-musl/bin/codex")
PROGRAMS = [f"tool{i}" for i in range(300)] + ["git", "npm", "cargo", "rm", "curl", "python3"]
ARGS = ["build", "test", "run", "push", "status", "-rf", "--force", "install", "check", "x"]


def clear_parse_cache() -> None:
    """Empty the parse cache (older trees, as run by --compare-src, kept it in a dict)."""
    clear = getattr(analysis, "clear_parse_cache", None)
    if clear is None:
        analysis._script_cache.clear()  # type: ignore[attr-defined]
    else:
        clear()


def make_rules(path: Path, n: int = 1000, seed: int = 1) -> None:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        prog = rng.choice(PROGRAMS)
        pat = [prog] + [rng.choice(ARGS) if rng.random() < 0.7 else rng.sample(ARGS, 2)
                        for _ in range(rng.randint(0, 2))]
        dec = rng.choice(["allow", "allow", "prompt", "forbidden"])
        lines.append(f"prefix_rule(pattern={json.dumps(pat)}, decision={json.dumps(dec)}, "
                     f"justification={json.dumps(f'rule {i}')})")
    path.write_text("\n".join(lines) + "\n")


def scripts(n: int, seed: int, quoted: bool = False) -> list[list[str]]:
    rng = random.Random(seed)
    out = []
    q = "'" if quoted else ""
    tail = " 2>/dev/null" if quoted else ""  # a redirection forces the full tree-sitter parse
    for i in range(n):
        cmds = [f"{rng.choice(PROGRAMS)} {rng.choice(ARGS)} {q}{rng.choice(ARGS)}{q} f{i}_{k}{tail}"
                for k in range(3)]
        sep = rng.choice([" && ", " | ", "; "])
        out.append(["bash", "-lc", sep.join(cmds)])
    return out


def inline_scripts(n: int, seed: int) -> list[list[str]]:
    """Commands hidden in inline code (issue 19): python -c, perl -e, node -e, awk, a
    variable that names a program, npx; every one distinct."""
    rng = random.Random(seed)
    forms = [
        "python3 -c 'import subprocess; subprocess.run([\"{p}\", \"{a}\", \"f{i}\"])'",
        "python3 -c 'import os; os.system(\"{p} {a} f{i}\")'",
        "perl -e 'system(\"{p}\", \"{a}\", \"f{i}\")'",
        "node -e 'require(\"child_process\").execSync(\"{p} {a} f{i}\")'",
        "awk 'BEGIN {{ system(\"{p} {a} f{i}\") }}'",
        "GIT_PAGER='{p} {a} f{i}' git log",
        "npx {p} {a} f{i}",
    ]
    return [["bash", "-lc", forms[i % len(forms)].format(p=rng.choice(PROGRAMS),
                                                         a=rng.choice(ARGS), i=i)]
            for i in range(n)]


def bench_inprocess(rules: Path, runs: int) -> dict[str, float]:
    policy = load_policy(None, [rules], include_configured=False)
    assert policy.rule_count >= 1000 and not policy.load_errors
    results: dict[str, list[float]] = {"cold": [], "cold_quoted": [], "cold_inline": [],
                                       "warm": []}
    for r in range(runs):
        for kind, quoted in (("cold", False), ("cold_quoted", True), ("cold_inline", None)):
            # all distinct: nothing cached
            batch = (inline_scripts(3000, seed=100 + r) if quoted is None
                     else scripts(3000, seed=100 + r, quoted=quoted))
            clear_parse_cache()
            t = time.process_time()  # CPU time of this thread: "on one core", whatever else runs
            for argv in batch:
                decide(argv, policy)
            results[kind].append(len(batch) / (time.process_time() - t))
        pool = scripts(200, seed=7)
        for argv in pool:
            decide(argv, policy)
        t = time.process_time()
        for i in range(20000):
            decide(pool[i % 200], policy)
        results["warm"].append(20000 / (time.process_time() - t))
    return {k: statistics.median(v) for k, v in results.items()}


def bench_bad_input(runs: int) -> list[tuple[str, float]]:
    """Median wall time of one decision for each hostile input of tests/rules/test_bad_input.py
    (goal: every one within 50 ms). Caches are cleared so each run does the full work."""
    from corral.rules import Policy, runtime

    sys.path.insert(0, str(ROOT))
    from tests.rules.test_bad_input import BAD
    from tests.rules.test_hidden_fuzz import HOSTILE

    out = []
    for name, argv in [*BAD.items(), *((f"inline:{k}", v) for k, v in HOSTILE.items())]:
        samples = []
        for _ in range(runs):
            policy = Policy()  # a fresh policy: no decision-cache hit
            clear_parse_cache()
            t = time.perf_counter()
            runtime.decide(argv, policy)
            samples.append(time.perf_counter() - t)
        out.append((name, statistics.median(samples)))
    return sorted(out, key=lambda x: -x[1])


def _time_cmd(cmd: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def bench_process(rules: Path, runs: int) -> dict[str, float]:
    args = ["-r", str(rules), "--", "git", "push", "--force"]
    cmds = {
        "corral": [str(ROOT / ".venv/bin/corral"), "policy", "check", *args],
        "fast": [str(ROOT / ".venv/bin/python"), "-m", "corral.rules.check_fast", *args],
        "codex": [str(NATIVE), "execpolicy", "check", *args],
        "codex_npm": [str(ROOT / ".tools/node/node_modules/.bin/codex"), "execpolicy", "check",
                      *args],
    }
    want = subprocess.run(cmds["codex"], capture_output=True, text=True).stdout
    for name, cmd in cmds.items():
        assert subprocess.run(cmd, capture_output=True, text=True).stdout == want, name
    if shutil.which("hyperfine"):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run(["hyperfine", "-N", "-w", "2", "-r", str(runs), "--export-json",
                            f.name, *(" ".join(c) for c in cmds.values())],
                           check=True, capture_output=True)
            data = json.loads(Path(f.name).read_text())["results"]
            out = {name: d["median"] for name, d in zip(cmds, data, strict=True)}
            return {**out, "tool": 1.0}
    out = {}
    for name, cmd in cmds.items():
        _time_cmd(cmd, 2)  # warm the page cache and the rules cache
        out[name] = _time_cmd(cmd, runs)
    return {**out, "tool": 0.0}


def bench_hot(rules: Path) -> dict[str, float]:
    """ns per call on cache hits: a repeated decision, and a repeated script's parse."""
    policy = load_policy(None, [rules], include_configured=False)
    pool = scripts(200, seed=7, quoted=True)
    texts = [argv[2] for argv in pool]
    for argv in pool:
        decide(argv, policy)
    def per_call(fn: Callable[[int], object]) -> float:
        rounds = []
        for _ in range(9):
            t = time.process_time()
            for i in range(100_000):
                fn(i % 200)
            rounds.append((time.process_time() - t) / 100_000 * 1e9)
        return statistics.median(rounds)

    out = {"decide_hit_ns": per_call(lambda i: decide(pool[i], policy)),
           "parse_hit_ns": per_call(lambda i: analysis._cached_parse(texts[i]))}
    return out


def compare(src: Path, runs: int) -> None:
    """This tree and ``src``'s in alternating child processes; medians of ``runs`` each."""
    trees = {"this tree": ROOT / "src", f"{src}": src / "src"}
    res: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    for _ in range(runs):
        for name, tree in trees.items():
            env = {**os.environ, "BENCH_RULES_SRC": str(tree)}
            out = subprocess.run([sys.executable, __file__, "--hot-json"], env=env, check=True,
                                 capture_output=True, text=True).stdout
            for k, v in json.loads(out).items():
                res[name].setdefault(k, []).append(v)
    print(f"cache-hit hot paths and in-process decisions, median of {runs} processes each:")
    keys = list(next(iter(res.values())))
    print("| tree | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, r in res.items():
        print(f"| {name} | " + " | ".join(f"{statistics.median(r[k]):,.0f}" for k in keys) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5, help="in-process runs (median)")
    ap.add_argument("--process-runs", type=int, default=15, help="whole-process runs (median)")
    ap.add_argument("--compare-src", type=Path, metavar="DIR",
                    help="only hot paths, this tree against DIR/src (before/after)")
    ap.add_argument("--hot-json", action="store_true", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.hot_json:  # one child of --compare-src
        with tempfile.TemporaryDirectory() as d:
            rules = Path(d) / "bench.rules"
            make_rules(rules)
            print(json.dumps({**bench_hot(rules), **bench_inprocess(rules, 1)}))
        return
    print(machine())
    if ns.compare_src:
        compare(ns.compare_src.resolve(), ns.runs)
        return
    require_peer("codex", NATIVE)
    with tempfile.TemporaryDirectory() as d:
        rules = Path(d) / "bench.rules"
        make_rules(rules)
        t = time.perf_counter()
        load_policy(None, [rules], include_configured=False)
        load_ms = (time.perf_counter() - t) * 1000
        ip = bench_inprocess(rules, ns.runs)
        bad = bench_bad_input(max(ns.runs, 3))
        pr = bench_process(rules, ns.process_runs)
    print(f"policy: 1000 prefix_rule calls, load {load_ms:.0f} ms")
    print("in-process decisions per CPU-second (3-command bash -lc, 1 thread, goal >= 20,000):")
    print(f"  cold, plain words (shortcut lexer)  {ip['cold']:>12,.0f}")
    print(f"  cold, redirections (tree-sitter)    {ip['cold_quoted']:>12,.0f}")
    print(f"  cold, hidden in inline code / env   {ip['cold_inline']:>12,.0f}")
    print(f"  warm (repeated scripts, cached)     {ip['warm']:>12,.0f}")
    print("hostile inputs, one decision each (goal <= 50 ms), slowest first:")
    for name, secs in bad[:5]:
        print(f"  {name:40} {secs * 1000:7.1f} ms")
    tool = "hyperfine" if pr["tool"] else "python timing loop"
    print(f"whole process, 1000-rule file ({tool}, median of {ns.process_runs}, goal <= 4x codex):")
    for name, label in (("codex", "codex execpolicy check (native binary)"),
                        ("codex_npm", "codex execpolicy check (npm wrapper)"),
                        ("corral", "corral policy check (typer CLI)"),
                        ("fast", "python -m corral.rules.check_fast")):
        print(f"  {label:40} {pr[name] * 1000:7.1f} ms  {pr[name] / pr['codex']:5.2f}x")


if __name__ == "__main__":
    main()
