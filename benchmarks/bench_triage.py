"""Triage correlation + evidence gathering on a 1,000,000-event journal (model excluded).

Builds a journal of --events events (sessions of ~100 events: start, prompt, decisions,
results, sandbox outcomes, network decisions) spread over --days days, through the journal's
own writer (hash chain, checkpoints), then times ``triage(..., model=None)`` (alert parsing is
done once; correlation, evidence pack, hard rules and the rules verdict are timed) for five
kinds of alert: stamped with the session (indexed lookup), unstamped but matching a command in
the window, unrelated (not_agent after scanning the window), a destination in the window, and
one with no time (nothing to search). Goal: p95 <=
1 s for each.

Usage: .venv/bin/python benchmarks/bench_triage.py [--events 1000000] [--runs 30]
       [--keep PATH]   (reuse or keep the built journal)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from corral.telemetry import journal_file  # noqa: E402
from corral.telemetry.journal import JournalWriter  # noqa: E402
from corral.telemetry.keys import load_or_create_signing_key  # noqa: E402
from corral.telemetry.schema import Event  # noqa: E402
from corral.telemetry.ulid import new_ulid  # noqa: E402
from corral.triage.alerts import parse_alert  # noqa: E402
from corral.triage.source import JournalSource  # noqa: E402
from corral.triage.verdict import triage  # noqa: E402

T0 = 1_790_000_000 * 10**9
CMDS = ["ls -la", "git status", "npm test", "pytest -q", "cat README.md", "make build",
        "python3 app.py", "grep -rn TODO src", "git diff", "cargo test"]
HOSTS = ["pypi.org", "registry.npmjs.org", "api.openai.com", "github.com", "unknown.example"]


def build(home: Path, total: int, days: int) -> None:
    key = load_or_create_signing_key(home)
    writer = JournalWriter(journal_file(home), key)
    rng = random.Random(7)
    span = days * 86_400 * 10**9
    step = span // total
    t = T0
    batch: list[Event] = []
    n = 0

    def ev(name: str, sid: str, attrs: dict[str, object], call: str | None = None) -> None:
        nonlocal t, n
        t += step
        n += 1
        batch.append(Event(id=new_ulid(), name=name, time_unix_nano=t, session_id=sid,
                           turn_id=None, call_id=call, user="dev", host="laptop",
                           agent_name="codex", agent_version="", corral_version="0.1.0", tier=1,
                           attributes={**attrs, "corral.origin": "pipeline"}))
        if len(batch) >= 512:
            writer.append(batch)
            batch.clear()

    s = 0
    while n < total:
        s += 1
        sid = f"s{s:07d}"
        ev("agent.session.start", sid, {"process.working_directory": f"/w/r{s % 50}",
                                        "agent.policy.sandbox": ":workspace",
                                        "process.pid": 1000 + s % 30000})
        ev("agent.user_prompt", sid, {"prompt.length": 40, "prompt.sha256": "0" * 64})
        for c in range(1, 25):
            cmd = rng.choice(CMDS) + ("" if c % 3 else f" --n {rng.randint(0, 999)}")
            call = f"call-{c}"
            ev("agent.tool.decision", sid, {"gen_ai.tool.name": "shell",
                                            "agent.decision": "auto_approved",
                                            "agent.decision.source": "heuristic",
                                            "process.command_line": cmd}, call)
            ev("agent.tool.result", sid, {"gen_ai.tool.name": "shell", "gen_ai.tool.type":
                                          "shell", "process.command_line": cmd,
                                          "process.exit.code": 0}, call)
            ev("agent.sandbox.outcome", sid, {"gen_ai.tool.name": "shell",
                                              "agent.sandbox.outcome": "success"}, call)
            if c % 6 == 0:
                ev("agent.network.decision", sid, {"network.policy.decision": "allow",
                                                   "server.address": rng.choice(HOSTS)})
            if n >= total:
                break
    if batch:
        writer.append(batch)
    writer.checkpoint()
    writer.close()


def timed(source: JournalSource, doc: dict[str, object], runs: int) -> tuple[float, float, str]:
    alert = parse_alert(doc)
    times = []
    verdict = ""
    for _ in range(runs):
        t0 = time.perf_counter()
        verdict = triage(alert, source).verdict
        times.append(time.perf_counter() - t0)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, verdict


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    print(machine())
    tmp = None
    if args.keep is None:
        tmp = tempfile.TemporaryDirectory(prefix="corral-bench-triage-")
        home = Path(tmp.name)
    else:
        home = args.keep
    path = journal_file(home)
    if not path.exists():
        t0 = time.perf_counter()
        build(home, args.events, args.days)
        print(f"built {args.events:,} events in {time.perf_counter() - t0:.1f} s ({path})")
    source = JournalSource(path)
    last = source.journal.last_seq()
    mid = last // 2
    ev = next(source.journal.events(after_seq=mid - 1, until_seq=mid + 200))
    events = list(source.journal.events(after_seq=mid - 1, until_seq=mid + 200))
    call = next(e for e in events if e.name == "agent.tool.decision")
    cmd = str(call.attributes["process.command_line"])
    t_mid = call.time_unix_nano
    cases = {
        "stamped (session + call in env)": {"time": t_mid, "host": "laptop", "process": {
            "command_line": cmd, "env": {"CORRAL_SESSION_ID": call.session_id,
                                         "CORRAL_CALL_ID": call.call_id or ""}}},
        "unstamped, command in the window": {"time": t_mid, "host": "laptop", "user": "dev",
                                             "process": {"command_line": cmd}},
        "unrelated process (not_agent)": {"time": t_mid, "host": "laptop",
                                          "process": {"command_line": "/usr/bin/firefox"}},
        "destination in the window": {"time": t_mid, "host": "laptop",
                                      "network": {"host": "unknown.example"}},
        "destination, no time (nothing to search)": {"host": "laptop",
                                                     "network": {"host": "unknown.example"}},
    }
    print(f"journal: {last:,} events; window ±600 s around seq {ev.seq}; {args.runs} runs each")
    print("| alert | median | p95 | verdict |")
    print("|---|---|---|---|")
    worst = 0.0
    for name, doc in cases.items():
        med, p95, verdict = timed(source, doc, args.runs)
        worst = max(worst, p95)
        print(f"| {name} | {med * 1000:.1f} ms | {p95 * 1000:.1f} ms | {verdict} |")
    print(f"worst p95 {worst * 1000:.1f} ms (goal <= 1000 ms): "
          f"{'met' if worst <= 1.0 else 'NOT met'}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
