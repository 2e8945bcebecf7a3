"""Hook call latency and OTLP import throughput (issue 8).

Measures (median of --runs rounds, each round --calls calls):
* one hook call end to end, as the agent pays it: a new process running
  ``python -I -m corral.integrations.hook_main codex`` with a PreToolUse payload on stdin, against a
  live session supervisor (real pipeline, rules, journal). Scenarios: an allowed command, a
  forbidden one, a PostToolUse result event. Goal: < 100 ms per call.
* the same through the CLI (``python -m corral hook codex``: Typer and the command table).
* the floor: ``python -c pass`` with the same interpreter.
* ``hooks.handle`` in process (the supervisor round trip without interpreter start).
* OTLP receiver: codex.tool_result records per second posted as 512-record protobuf batches
  over HTTP, mapped and committed to the journal.

``--compare-src DIR`` adds the hook of another source tree (e.g. ``git archive`` of an older
commit), run the same way against the same supervisor, interleaved with this tree's.

Usage: .venv/bin/python benchmarks/bench_hooks.py [--runs 5] [--calls 20] [--compare-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from corral.config import load_config  # noqa: E402
from corral.integrations.hooks import handle  # noqa: E402
from corral.integrations.otlp_receiver import Receiver  # noqa: E402
from corral.integrations.session import make_pipeline  # noqa: E402
from corral.supervisor.api import SessionAPI  # noqa: E402
from corral.telemetry import Telemetry  # noqa: E402

RULES = 'prefix_rule(pattern=["rm", "-rf"], decision="forbidden", justification="no")\n'


def payload(event: str, command: str, cwd: Path) -> bytes:
    doc = {"session_id": "s", "turn_id": "t", "transcript_path": None, "cwd": str(cwd),
           "hook_event_name": event, "model": "m", "permission_mode": "default",
           "tool_name": "Bash", "tool_input": {"command": command}, "tool_use_id": "tu"}
    if event == "PostToolUse":
        doc["tool_response"] = "ok\n" * 50
    return json.dumps(doc).encode()


def gemini_payload(command: str, cwd: Path) -> bytes:
    """Gemini CLI's BeforeTool for its shell tool (as 0.61 sends it)."""
    return json.dumps({"session_id": "s", "transcript_path": "/tmp/t.jsonl", "cwd": str(cwd),
                       "hook_event_name": "BeforeTool", "timestamp": "2026-12-02T00:00:00Z",
                       "tool_name": "run_shell_command",
                       "tool_input": {"command": command, "description": "d"}}).encode()


CPU_MS: dict[str, list[float]] = {}  # per scenario: the process's own user + system CPU


def time_process(argv: list[str], data: bytes, env: dict[str, str], cwd: Path,
                 calls: int, key: str = "") -> float:
    """Median wall time (ms) of ``calls`` runs of ``argv`` with ``data`` on stdin (and each
    run's CPU in ``CPU_MS``: steadier than wall time on a loaded machine)."""
    samples = []
    for _ in range(calls):
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        r = subprocess.run(argv, input=data, env=env, cwd=cwd, capture_output=True)
        samples.append((time.perf_counter() - t0) * 1000)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        CPU_MS.setdefault(key, []).append(
            (c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime) * 1000)
        if r.returncode != 0:
            raise SystemExit(f"{argv} failed: {r.stderr.decode()}")
    return statistics.median(samples)


def bench_receiver(tel: Telemetry, batches: int) -> float:
    import httpx
    from tests.integrations.test_otlp_receiver import CODEX, request

    rec = CODEX[5]
    body = request("codex_exec", [rec] * 512).SerializeToString()
    with Receiver(tel) as rx, httpx.Client() as client:
        headers = {"Content-Type": "application/x-protobuf",
                   "Authorization": f"Bearer {rx.token}"}
        t0 = time.perf_counter()
        for _ in range(batches):
            r = client.post(f"{rx.endpoint}/v1/logs", content=body, headers=headers)
            r.raise_for_status()
        elapsed = time.perf_counter() - t0
    return batches * 512 / elapsed


def _src_of(tree: Path) -> Path:
    src = tree / "src"
    if not (src / "corral").is_dir() and not (tree / "corral").is_dir():
        raise SystemExit(f"--compare-src {tree}: no corral package in it (or in its src/)")
    return src if (src / "corral").is_dir() else tree


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--compare-src", type=Path, default=None,
                    help="also run the hook of this source tree (its src/ or the tree itself)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    tmp = Path(tempfile.mkdtemp(prefix="corral-bench-hooks-"))
    home, work = tmp / "home", tmp / "work"
    (home / "rules").mkdir(parents=True)
    (home / "rules" / "bench.rules").write_text(RULES)
    work.mkdir()
    cfg = load_config(work, home=home, system=tmp / "etc")
    tel = Telemetry.open(cfg, agent="codex")
    api = SessionAPI(make_pipeline(cfg, tel, "on-request", None, None), tmp / "run" / "s.sock")
    api.start()
    env = {**os.environ, **api.env}
    py = sys.executable
    hook = [py, "-I", "-m", "corral.integrations.hook_main", "codex"]  # as installed
    cli = [py, "-m", "corral", "hook", "codex"]
    rows: dict[str, list[float]] = {}
    scenarios = [
        ("python -c pass (floor)", [py, "-c", "pass"], b""),
        ("hook_main PreToolUse, allowed (`ls -la`)", hook, payload("PreToolUse", "ls -la", work)),
        ("hook_main PreToolUse, forbidden (`rm -rf build`)", hook,
         payload("PreToolUse", "rm -rf build", work)),
        ("hook_main PostToolUse (result event)", hook, payload("PostToolUse", "ls", work)),
        ("`corral hook codex` (CLI), allowed", cli, payload("PreToolUse", "ls -la", work)),
        ("hook_main gemini BeforeTool, allowed (`ls -la`)", [*hook[:-1], "gemini"],
         gemini_payload("ls -la", work)),
        ("hook_main gemini BeforeTool, forbidden (`rm -rf build`)", [*hook[:-1], "gemini"],
         gemini_payload("rm -rf build", work)),
    ]
    if args.compare_src is not None:
        # -I ignores PYTHONPATH: each tree goes first on sys.path, then -m's own runner
        for label, tree in (("this tree", ROOT / "src"), (str(args.compare_src),
                                                          _src_of(args.compare_src))):
            run = (f"import sys, runpy; sys.path.insert(0, {str(tree)!r}); "
                   "sys.argv = ['hook_main', 'codex']; "
                   "runpy.run_module('corral.integrations.hook_main', run_name='__main__')")
            scenarios.append((f"hook_main from {label}, allowed", [py, "-I", "-c", run],
                              payload("PreToolUse", "ls -la", work)))
    for _ in range(args.runs):
        for name, argv, data in scenarios:
            rows.setdefault(name, []).append(time_process(argv, data, env, work, args.calls,
                                                          name))
        os.environ.update(api.env)
        doc = json.loads(payload("PreToolUse", "ls -la", work))
        samples = []
        for _ in range(args.calls * 5):
            t0 = time.perf_counter()
            handle("codex", doc)
            samples.append((time.perf_counter() - t0) * 1000)
        rows.setdefault("handle() in process, allowed (socket round trip + decide)", []).append(
            statistics.median(samples))
    rate = statistics.median(bench_receiver(tel, args.batches) for _ in range(args.runs))
    api.stop()
    tel.close()
    print(machine())
    print(f"# bench_hooks: {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {args.runs} runs x {args.calls} calls (median of medians)")
    print("| scenario | median ms | hook process CPU ms |")
    print("|---|---:|---:|")
    for name, vals in rows.items():
        cpu = CPU_MS.get(name)
        print(f"| {name} | {statistics.median(vals):.1f} | "
              f"{statistics.median(cpu) if cpu else float('nan'):.1f} |")
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"\nOTLP receiver: {rate:,.0f} codex.tool_result records/s "
          f"(512-record protobuf batches over HTTP, mapped + journaled)")


if __name__ == "__main__":
    main()
