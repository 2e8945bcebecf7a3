"""Two real processes adding and consuming grants at the same time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from corral.approvals import GrantStore
from corral.rules import load_policy

WORKER = r"""
import json, sys, time
from corral.approvals import GrantStore
tag, db, n_add, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
store = GrantStore(db)
while time.time() < start:
    time.sleep(0.001)
added, consumed = [], []
for i in range(n_add):  # phase 1: both add persistent grants (rules file under lock)
    added.append(store.add("shell", "persistent", ["tool-" + tag, "step", str(i)]).id)
    store.add("shell", "persistent", ["shared", "cmd", str(i)])  # both add the same prefix
    g = store.find("shell", ["deploy", "now"], session_id="s1")
    if g is not None:
        consumed.append(g.id)
while time.time() < start + 1.5:
    time.sleep(0.001)
while True:  # phase 2: both claim once-grants as fast as they can
    g = store.find("shell", ["deploy", "now"], session_id="s1")
    if g is None:
        break
    consumed.append(g.id)
print(json.dumps({"added": added, "consumed": consumed}))
"""


def test_two_processes_add_and_consume(home: Path) -> None:
    import time

    store = GrantStore()
    once_ids = {store.add("shell", "once", ["deploy", "now"], session_id="s1").id
                for _ in range(300)}
    start = time.time() + 1.0
    env = dict(os.environ, CORRAL_HOME=str(home))
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, tag, str(store.path), "25",
                               str(start)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for tag in ("a", "b")]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    consumed = results[0]["consumed"] + results[1]["consumed"]
    # every once-grant used exactly once, none twice
    assert len(consumed) == len(set(consumed)), "a once-grant was used twice"
    assert sorted(consumed) == sorted(once_ids)
    assert results[0]["consumed"] and results[1]["consumed"]  # both really competed
    assert store.find("shell", ["deploy", "now"], session_id="s1") is None
    # every persistent grant is in the db and its line is in the rules file exactly once
    lines = store.rules_file.read_text().splitlines()
    for tag in ("a", "b"):
        for i in range(25):
            needle = f'prefix_rule(pattern=["tool-{tag}", "step", "{i}"], decision="allow")'
            assert sum(line.startswith(needle) for line in lines) == 1, needle
    for i in range(25):
        needle = f'prefix_rule(pattern=["shared", "cmd", "{i}"], decision="allow")'
        assert sum(line.startswith(needle) for line in lines) == 1, needle
    assert len(lines) == 75
    assert len(store.list()) == 100
    policy = load_policy(None, extra_files=[store.rules_file], include_configured=False)
    assert policy.load_errors == []
    assert policy.check(["tool-b", "step", "24"]).get("decision") == "allow"
    store.close()


APPENDER = r"""
import sys, time
from pathlib import Path
from corral.approvals.rulesfile import append_rule, prefix_rule_text
path, tag, start = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
for i in range(60):
    append_rule(path, prefix_rule_text(("t-" + tag, str(i))), f"corral grant x by user at t")
"""


def test_rules_file_writers_never_lose_lines(tmp_path: Path) -> None:
    """The advisory lock, without the database: writers from different stores."""
    import time

    rules = tmp_path / "rules" / "default.rules"
    start = time.time() + 1.0
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(rules), tag, str(start)],
                              stderr=subprocess.PIPE, text=True) for tag in ("a", "b", "c")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    lines = rules.read_text().splitlines()
    assert len(lines) == 180 == len(set(lines))
