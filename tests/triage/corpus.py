"""Generate the labelled triage corpus from real corral sessions.

    python -m tests.triage.corpus OUT_DIR [--only ID ... | --heldout]

Each scenario drives a real ``corral exec`` (one command) or ``corral run`` with a plain
script agent (it reports the user's prompt through the session API, runs commands through
``exec``, and reaches the network through the managed proxy), all into one journal, as on one
developer machine. Then it writes what an EDR would have sent, in the scenario's input form
(corral, OCSF 2004/1007 or Falco), and the label. ``OUT_DIR/labels.json`` lists the scenarios.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.triage.scenarios import SCENARIOS, H, Scenario, W

ROOT = Path(__file__).resolve().parents[2]

AGENT = r'''#!/usr/bin/env python3
import json, os, sys, urllib.request
sys.path.insert(0, os.environ["CORRAL_SRC"])
from corral.supervisor.api import call
plan = json.loads(os.environ["TRIAGE_PLAN"])
if plan.get("prompt"):
    call("event", name="agent.user_prompt", attributes={}, content={"prompt": plan["prompt"]})
for argv in plan.get("exec", []):
    r = call("exec", argv=argv, cwd=os.getcwd())
for rep in plan.get("report", []):
    call("event", name="agent.tool.result", attributes=rep, call_id="r1")
for k in ("NO_PROXY", "no_proxy"):
    os.environ.pop(k, None)
opener = urllib.request.build_opener(urllib.request.ProxyHandler(
    {"http": os.environ["HTTP_PROXY"], "https": os.environ["HTTP_PROXY"]}))
for url in plan.get("urls", []):
    try:
        opener.open(url, timeout=5).read(10)
    except Exception:
        pass
'''


@dataclass
class Run:
    scenario: Scenario
    session_id: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)


def _env(out: Path) -> dict[str, str]:
    return dict(os.environ, HOME=str(out / "userhome"), CORRAL_HOME=str(out / "home"),
                CORRAL_SYSTEM_DIR=str(out / "etc"), CORRAL_SRC=str(ROOT / "src"),
                PYTHONPATH=str(ROOT / "src"))


def _setup(out: Path) -> None:
    home = out / "userhome"
    for rel, text in ((".aws/credentials", "[default]\naws_access_key_id = AKIAEXAMPLE\n"),
                      (".ssh/id_rsa", "not a real key\n"), (".netrc", "machine x\n"),
                      (".bashrc", "# rc\n"), (".bash_history", "ls\n"),
                      (".codex/config.toml", 'model = "m"\n')):
        p = home / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (out / "etc").mkdir(exist_ok=True)


def _workspace(out: Path, s: Scenario) -> Path:
    ws = out / "ws" / s.repo
    if not ws.exists():
        ws.mkdir(parents=True)
        subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
        (ws / "README.md").write_text(s.readme or "# project\n")
        (ws / "app.py").write_text("print('hi')\n")
        (ws / ".env").write_text("DB_URL=postgres://localhost/dev\n")
    if s.readme:
        (ws / "README.md").write_text(s.readme)
    return ws


def drive(out: Path, s: Scenario) -> None:
    """Run the scenario's session (nothing for alerts with no agent behind them)."""
    if s.driver == "none":
        return
    env = _env(out)
    ws = _workspace(out, s)
    steps = [[a.replace(H, str(out / "userhome")).replace(W, str(ws)) for a in argv]
             for argv in s.exec]
    conf = ["-c", f"telemetry.content_tier={s.tier}"]
    if s.driver == "exec":
        cmd = [sys.executable, "-m", "corral", *conf, "exec", "--approval-policy", "never",
               "--", *steps[0]]
    else:
        agent = out / "bin" / "agent"
        agent.parent.mkdir(exist_ok=True)
        if not agent.exists():
            agent.write_text(AGENT)
            agent.chmod(0o755)
        env["TRIAGE_PLAN"] = json.dumps({"prompt": s.prompt, "exec": steps, "urls": s.urls,
                                         "report": s.report})
        cmd = [sys.executable, "-m", "corral", *conf, "run", "--approval-policy", "never",
               *[a for d in s.allow for a in ("--allow-domain", d)], "--", str(agent)]
    subprocess.run(cmd, cwd=ws, env=env, capture_output=True, timeout=120,
                   stdin=subprocess.DEVNULL, check=False)


def _journal_events(out: Path) -> list[dict[str, Any]]:
    from corral.telemetry import Journal, journal_file

    path = journal_file(out / "home")
    return [ev.to_record() for ev in Journal(path).events()] if path.exists() else []


def main(argv: list[str]) -> int:
    out = Path(argv[0]).absolute()
    only = set(argv[2:]) if len(argv) > 1 and argv[1] == "--only" else None
    scenarios = SCENARIOS
    if len(argv) > 1 and argv[1] == "--heldout":
        from tests.triage.heldout import HELDOUT

        scenarios = HELDOUT
    out.mkdir(parents=True, exist_ok=True)
    _setup(out)
    chosen = [s for s in scenarios if only is None or s.id in only]
    seen: set[str] = set()
    runs: list[tuple[Scenario, list[dict[str, Any]]]] = []
    for s in chosen:
        drive(out, s)
        events = _journal_events(out) if s.driver != "none" else []
        new = [e for e in events if e["session_id"] not in seen]
        seen |= {e["session_id"] for e in events}
        runs.append((s, new))
    all_events = _journal_events(out) if any(s.driver != "none" for s in chosen) else []
    t_last = max((e["time_unix_nano"] for e in all_events), default=time.time_ns())
    (out / "alerts").mkdir(exist_ok=True)
    labels = []
    for s, new in runs:
        alert = s.alert_for(new, t_last, out)
        (out / "alerts" / f"{s.id}.json").write_text(json.dumps(alert, indent=1))
        labels.append({"id": s.id, "label": s.label, "malicious": s.malicious,
                       "form": s.form, "driver": s.driver, "about": s.about})
    (out / "labels.json").write_text(json.dumps(labels, indent=1))
    print(f"{len(labels)} scenarios in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
