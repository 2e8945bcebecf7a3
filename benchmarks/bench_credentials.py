"""What the credential catalogue and the secret-value check add to each sandbox spawn (issue 18).

1. In process, per spawn: ``Sandbox.layout()`` with the catalogue's deny entries versus the
   same plan without them (each spawn lstats every entry), and the environment policy with the
   value check versus without it, over this process's environment plus 13 secrets.
2. Once per ``corral sandbox`` call: the catalogue's part of building the plan.
3. Whole process: ``corral sandbox -- true`` from this tree versus the tree at ``--before``
   (``git archive``; default: the commit before the catalogue), interleaved, same run.

Usage:  .venv/bin/python benchmarks/bench_credentials.py [--runs 30] [--before REV]
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
from functools import partial
from pathlib import Path

from corral.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "DATABASE_URL": "postgres://app:Sup3rS3cretPw@db.internal:5432/app",
    "REDIS_URL": "redis://:hunter2hunter2@cache:6379/0", "DB_PASS": "Tr0ub4dor&3xyz",
    "SENTRY_DSN": "https://4f1e0c5b7d2a4e6f8a9b0c1d2e3f4a5b@o450000.ingest.sentry.io/5500000",
    "CI_JOB_JWT": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwcm9qZWN0In0.c2lnbmF0dXJl",
    "GITHUB_PAT": "ghp_" + "R8x2" * 9, "HF_HUB_LOGIN": "hf_" + "aBcD" * 9,
    "DOCKER_AUTH_CONFIG": '{"auths":{"r.example":{"auth":"dXNlcjpwYXNz"}}}',
    "AZURE_CONN": "AccountName=a;AccountKey=bXlzZWNyZXRrZXlteXNlY3JldGtleQ==;",
    "NOTIFY": "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/cCcCcCcCcCcCcCcC",
    "PUBLISH": "pypi-AgEIcHlwaS5vcmcCJGE4ZjMyYjM0LTk5YzUtNDk3Ny1hZjE0LWNmNDhkNmE2ZDEw",
    "DEPLOY_ID": "AKIAIOSFODNN7EXAMPLE", "OPENAI_API_KEY": "sk-proj-" + "Zq9" * 12,
}


def median_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def spawn_layout(sb: Sandbox) -> None:
    sb._cleanup(sb.layout())  # a spawn's layout and the removal of its placeholders


def in_process(ws: Path, home: Path, n: int) -> None:
    from corral.sandbox import build_plan
    from corral.sandbox import credentials as cr
    from corral.sandbox.envpolicy import EnvPolicy, build_env
    from corral.sandbox.profiles import Access

    hidden = {Path(p) for p, _ in cr.hidden(home, os.environ)[0]}
    # the home directory read-only (the usual case: the workspace is a project in it), then
    # writable (the workspace is the home directory: missing entries get placeholders)
    for what, kw in (("read-only home", {"exclude_slash_tmp": True}),
                     ("writable home", {"writable_roots": [home]})):
        plan = build_plan(":workspace", ws, home=home, exclude_tmpdir=True, **kw)
        bare = plan.replace(entries=tuple(e for e in plan.entries if not (
            e.access is Access.DENY and e.path in hidden)), locked=tuple(
            lk for lk in plan.locked if lk.path not in hidden))
        with_cat, without = Sandbox(plan), Sandbox(bare)

        a = median_ms(partial(spawn_layout, with_cat), n)
        b = median_ms(partial(spawn_layout, without), n)
        print(f"layout per spawn, {what}: {a:.3f} ms with the catalogue "
              f"({len(plan.entries)} entries, {len(plan.locked)} locked), {b:.3f} ms without "
              f"({len(bare.entries)}, {len(bare.locked)}): +{a - b:.3f} ms")
    env = {**os.environ, **SECRETS}
    names_only = EnvPolicy(keep_secrets=("*",))
    a = median_ms(lambda: build_env(EnvPolicy(), env), n)
    b = median_ms(lambda: build_env(names_only, env), n)
    print(f"environment policy over {len(env)} variables: {a:.3f} ms with the value check, "
          f"{b:.3f} ms without: +{a - b:.3f} ms")
    c = median_ms(lambda: cr.locks(cr.hidden(home, os.environ)[0], [ws]), n)
    print(f"plan: the catalogue's entries and locks, once per corral sandbox call: {c:.3f} ms")


def whole_process(ws: Path, home: Path, before: str, runs: int) -> None:
    old = home.parent / "before"  # inside the run's temporary directory, removed with it
    old.mkdir()
    subprocess.run(f"git -C {ROOT} archive {before} src | tar -x -C {old}", shell=True,
                   check=True)
    # byte-compiled like the tree it is compared with (PYTHONDONTWRITEBYTECODE may be set)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(old / "src")], check=True)
    env = {**os.environ, **SECRETS, "HOME": str(home), "CORRAL_HOME": str(home / ".ch")}
    cases = {"before": {**env, "PYTHONPATH": str(old / "src")},
             "now": {**env, "PYTHONPATH": str(ROOT / "src")}}
    res: dict[str, list[float]] = {k: [] for k in cases}
    argv = [sys.executable, "-m", "corral", "sandbox", "--", "true"]
    for _ in range(runs):
        for name, e in cases.items():
            t = time.perf_counter()
            subprocess.run(argv, cwd=ws, env=e, check=True)
            res[name].append((time.perf_counter() - t) * 1e3)
    b, a = (statistics.median(res[k]) for k in ("before", "now"))
    print(f"corral sandbox -- true, median of {runs}: before {b:.1f} ms, now {a:.1f} ms "
          f"(+{a - b:.1f} ms)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--before", default="8f52044^")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="corral-bench-cred-") as tmp:
        home = Path(tmp) / "home"
        ws = home / "src" / "app"
        ws.mkdir(parents=True)
        for rel in (".aws/credentials", ".config/gh/hosts.yml", ".pgpass", ".bash_history",
                    ".codex/auth.json", ".cargo/credentials.toml"):
            (home / rel).parent.mkdir(parents=True, exist_ok=True)
            (home / rel).write_text("x")
        os.environ["HOME"] = str(home)
        os.environ["CORRAL_HOME"] = str(home / ".ch")
        in_process(ws, home, max(args.runs * 10, 200))
        whole_process(ws, home, args.before, args.runs)


if __name__ == "__main__":
    main()
