"""Sandbox spawn cost, all in the same run (issue 4).

1. Warm process: spawning ``true`` through ``Sandbox(plan).spawn()`` versus running bubblewrap
   directly with the very same arguments and seccomp filter. Goal: at most 3 ms overhead.
2. Whole process: ``corral sandbox -- true`` versus ``codex sandbox -- true`` (the native
   binary from @openai/codex) and ``srt -c true`` (@anthropic-ai/sandbox-runtime), and
   ``corral exec -- true`` (the whole pipeline around the same sandbox).
   Goals: faster than srt, no slower than codex; exec at most 2x corral sandbox.

Runs are interleaved (A, B, C, A, B, C, ...) so background load hits every case alike; the
median of ``--runs`` (>= 10) is reported. ``--compare-src DIR`` adds ``corral sandbox`` and
``corral exec`` from another source tree (e.g. ``git archive`` of an older commit) to the same
interleaved run, both trees started the way the console script starts them. Usage:

    .venv/bin/python benchmarks/bench_sandbox.py [--runs 30] [--compare-src DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORRAL = ROOT / ".venv" / "bin" / "corral"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine as common_machine  # noqa: E402
from common import require_peer  # noqa: E402

NODE_BIN = ROOT / ".tools" / "node" / "node_modules" / ".bin"
CODEX_NATIVE = (ROOT / ".tools" / "node" / "node_modules" / "@openai" / "codex-linux-x64" /
                "vendor" / "x86_64-unknown-linux-musl" / "bin" / "codex")


def machine() -> str:
    return common_machine().removeprefix("machine: ")


CPU_MS: dict[str, list[float]] = {}  # user + system CPU of each child run (whole-process cases)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (ru.ru_utime + ru.ru_stime) * 1000


def interleaved(cases: dict[str, Callable[[], object]], runs: int) -> dict[str, list[float]]:
    for fn in cases.values():
        fn()  # warm caches (page cache, .pyc, BPF cache, probe cache)
    out: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(runs):
        for name, fn in cases.items():
            c0 = _children_cpu()
            t0 = time.perf_counter()
            fn()
            out[name].append((time.perf_counter() - t0) * 1000)
            CPU_MS.setdefault(name, []).append(_children_cpu() - c0)
    return out


def report(title: str, res: dict[str, list[float]], cpu: bool = False) -> None:
    """Medians; ``cpu``: also the children's median user + system CPU (steadier under load,
    but only for processes: a warm-process case runs in this one)."""
    print(f"\n{title}")
    extra = f" {'cpu ms':>7} |" if cpu else ""
    w = max(44, *(len(name) for name in res))
    print(f"| {'case':<{w}} | {'median ms':>9} | {'min ms':>7} | {'max ms':>7} |{extra}")
    print(f"|{'-' * (w + 2)}|{'-' * 11}|{'-' * 9}|{'-' * 9}|" + ("-" * 9 + "|" if cpu else ""))
    for name, t in res.items():
        c = f" {statistics.median(CPU_MS[name]):>7.2f} |" if cpu else ""
        print(f"| {name:<{w}} | {statistics.median(t):>9.2f} | {min(t):>7.2f} | {max(t):>7.2f} |{c}")


def warm_process(ws: Path, runs: int) -> dict[str, list[float]]:
    from corral.sandbox import Sandbox, build_plan
    from corral.sandbox.seccomp import bpf_fd

    sb = Sandbox(build_plan(":workspace", ws))
    assert sb._bpf is not None
    bpf = sb._bpf
    cmd, lay = sb.command(["true"], ws)  # placeholders exist while the direct runs go
    direct = [cmd[0], "--seccomp", "{fd}", *cmd[1:]]
    env = dict(os.environ)

    def run_direct() -> None:
        fd = bpf_fd(bpf)
        argv = [a.replace("{fd}", str(fd)) for a in direct]
        subprocess.run(argv, pass_fds=(fd,), env=env, check=True)
        os.close(fd)

    def run_api() -> None:
        if sb.spawn(["true"], ws).wait() != 0:
            raise SystemExit("sandboxed true failed")

    try:
        return interleaved({"bwrap directly (same args + seccomp)": run_direct,
                            "Sandbox(plan).spawn(['true']).wait()": run_api}, runs)
    finally:
        assert lay is not None
        sb._cleanup(lay)


CODEX_WRITE = "codex sandbox -c sandbox_mode=workspace-write -- true (native)"
CORRAL_READ = "corral sandbox -P :read-only -- true"

# what bin/corral (the installed ``corral`` command) runs
_ENTRY = "import sys; from corral.cli.entry import main; sys.argv[0] = 'corral'; " \
         "sys.exit(main())"


def whole_process(ws: Path, home: Path, runs: int, peers: bool = True,
                  compare: Path | None = None) -> dict[str, list[float]]:
    env = dict(os.environ, CORRAL_HOME=str(home / "corral"), CORRAL_SYSTEM_DIR=str(home / "etc"),
               CODEX_HOME=str(home / "codex"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure what a user gets: with .pyc files
    (home / "codex").mkdir()
    srt = NODE_BIN / "srt"
    cases: dict[str, list[str]] = {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "corral sandbox -- true": [str(CORRAL), "sandbox", "--", "true"],
        # the whole pipeline: config, rules, journal (hash chain, signed checkpoint), sandbox
        "corral exec --approval-policy never -- true": [
            str(CORRAL), "exec", "--approval-policy", "never", "--", "true"],
    }
    if peers:
        codex = require_peer("codex", CODEX_NATIVE)
        cases["codex sandbox -- true (native)"] = [codex, "sandbox", "--", "true"]
        # The defaults differ: codex's is read-only (nothing writable, so no protected
        # paths to mount in a writable root), corral's writes the workspace. Each mode is
        # also measured against the other tool in the same mode.
        cases[CODEX_WRITE] = [codex, "sandbox", "-c", 'sandbox_mode="workspace-write"',
                              "--", "true"]
        cases[CORRAL_READ] = [str(CORRAL), "sandbox", "-P", ":read-only", "--", "true"]
        require_peer("rg (for srt)", shutil.which("rg"), "apt-get install ripgrep")
        require_peer("socat (for srt)", shutil.which("socat"), "apt-get install socat")
        cases["srt -c true"] = [require_peer("srt", srt), "-c", "true"]

    envs = {k: env for k in cases}
    if compare is not None:
        src = compare / "src" if (compare / "src" / "corral").is_dir() else compare
        if not (src / "corral").is_dir():
            raise SystemExit(f"--compare-src {compare}: no corral package in it (or its src/)")
        for label, tree in (("this tree", ROOT / "src"), (str(compare), src)):
            for what, args in (("sandbox", ["sandbox", "--", "true"]),
                               ("exec", ["exec", "--approval-policy", "never", "--", "true"])):
                name = f"corral {what} ({label})"
                cases[name] = [sys.executable, "-c", _ENTRY, *args]
                envs[name] = dict(env, PYTHONPATH=str(tree))

    def runner(name: str, argv: list[str]) -> Callable[[], object]:
        return lambda: subprocess.run(argv, env=envs[name], cwd=ws, check=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return interleaved({k: runner(k, v) for k, v in cases.items()}, runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--no-peers", action="store_true", help="measure corral alone")
    ap.add_argument("--compare-src", type=Path, default=None,
                    help="also run corral sandbox/exec from this source tree")
    args = ap.parse_args()
    if args.runs < 10:
        ap.error("--runs must be at least 10")
    print(f"machine: {machine()}; {args.runs} interleaved runs per case")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        ws, home = Path(tmp) / "ws", Path(tmp) / "home"
        ws.mkdir()
        home.mkdir()
        subprocess.run(["git", "init", "-q", str(ws)], check=True)
        os.environ["CORRAL_HOME"] = str(home / "corral")
        warm = warm_process(ws, args.runs)
        report("Warm process (spawn + wait for `true`)", warm)
        over = (statistics.median(warm["Sandbox(plan).spawn(['true']).wait()"])
                - statistics.median(warm["bwrap directly (same args + seccomp)"]))
        print(f"API overhead over bwrap: {over:.2f} ms (goal <= 3 ms)")
        whole = whole_process(ws, home, args.runs, peers=not args.no_peers,
                              compare=args.compare_src)
        report("Whole process (fresh process each run)", whole, cpu=True)
        med = {k: statistics.median(v) for k, v in whole.items()}
        pipeline = med["corral exec --approval-policy never -- true"]
        print(f"corral exec / corral sandbox: {pipeline / med['corral sandbox -- true']:.2f}x "
              f"(goal <= 2x)")
        if args.compare_src is not None:
            for label in ("this tree", str(args.compare_src)):
                sbx, exe = med[f"corral sandbox ({label})"], med[f"corral exec ({label})"]
                codex = med.get("codex sandbox -- true (native)")
                cs, ce = (statistics.median(CPU_MS[f"corral {w} ({label})"])
                          for w in ("sandbox", "exec"))
                cc = statistics.median(CPU_MS["codex sandbox -- true (native)"]) if codex else 0
                print(f"{label}: exec / sandbox {exe / sbx:.2f}x (CPU {ce / cs:.2f}x)" +
                      (f", sandbox / codex {sbx / codex:.2f}x (CPU {cs / cc:.2f}x)"
                       if codex else ""))
        # (the installed command is the typer-free path; sandbox_fast.main called by itself,
        # without the entry point's exit and GC settings, is no longer measured apart)
        for label in ("corral sandbox -- true",):
            ours = med[label]
            if "codex sandbox -- true (native)" in med:
                print(f"{label} / codex: {ours / med['codex sandbox -- true (native)']:.2f}x "
                      f"(goal <= 1.0x)")
            if CODEX_WRITE in med:
                print(f"same mode, workspace-write: {label} / codex: "
                      f"{ours / med[CODEX_WRITE]:.2f}x; read-only: {CORRAL_READ} / codex: "
                      f"{med[CORRAL_READ] / med['codex sandbox -- true (native)']:.2f}x")
            if "srt -c true" in med:
                print(f"{label} / srt: {ours / med['srt -c true']:.2f}x (goal < 1.0x)")
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
