"""`corral grants list|add|revoke` and `corral approve -i` through the real CLI."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.approvals import Choice, GrantStore, Kind, PendingQueue, Question
from tests.approvals.test_prompt import ANSI


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.slow
def test_grants_list_add_revoke(home: Path, corral, tmp_path: Path) -> None:
    assert corral("grants", "list").stdout.strip() == "no active grants"
    r = corral("grants", "add", "--json", "--", "git", "push")
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["scope"] == "persistent" and ev["pattern"] == "git push"
    assert ev["granted_by"] == "user" and ev["expires_unix"] is None
    proj = tmp_path / "proj"
    proj.mkdir()
    r = corral("grants", "add", "--scope", "project", "--project", str(proj), "--expires", "2h",
               "--", "make", "test")
    assert r.returncode == 0, r.stderr
    r = corral("grants", "add", "--kind", "network", "--scope", "session", "--session", "s9",
               "--", "api.example.com", "443", "https")
    assert r.returncode == 0, r.stderr

    grants = _lines(corral("grants", "list", "--json").stdout)
    assert [(g["scope"], g["kind"], g["pattern"]) for g in grants] == [
        ("persistent", "shell", ["git", "push"]), ("project", "shell", ["make", "test"]),
        ("session", "network", ["api.example.com", "443", "https"])]
    assert grants[1]["project"] == str(proj) and grants[1]["expires_at"].endswith("Z")
    table = corral("grants", "list").stdout
    for text in ("git push", "make test", "https://api.example.com:443", "never", str(proj),
                 "session s9", "granted by", "user"):
        assert text in table, text
    assert '["git", "push"]' in (home / "rules" / "default.rules").read_text()

    r = corral("grants", "revoke", "--json", ev["grant_id"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["grant_id"] == ev["grant_id"]
    assert '["git", "push"]' not in (home / "rules" / "default.rules").read_text()
    assert len(_lines(corral("grants", "list", "--json").stdout)) == 2
    everything = _lines(corral("grants", "list", "--json", "--all").stdout)
    assert len(everything) == 3 and everything[0]["revoked_by"] == "user"
    assert "revoked" in corral("grants", "list", "--all").stdout

    r = corral("grants", "revoke", ev["grant_id"])
    assert r.returncode == 2
    assert r.stderr.strip() == f"corral: approvals: grant {ev['grant_id']} was already revoked"


@pytest.mark.parametrize("args,needle", [
    (("--", "sudo", "make"), "`sudo` runs whatever command follows it"),
    (("--", "python3", "-c"), "`python3 -c` without the code itself"),
    (("--expires", "tomorrow", "--", "make", "x"), "cannot read expiry 'tomorrow'"),
    (("--scope", "project", "--", "make", "x"), "needs the project's absolute path"),
    (("--expires", "1h", "--", "make", "x"), "persistent grants live in rules files"),
])
def test_grants_add_refusals_are_one_line(corral, args: tuple[str, ...], needle: str) -> None:
    r = corral("grants", "add", *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("corral: approvals: ")
    assert needle in lines[0], lines[0]


@pytest.mark.slow
def test_approve_interactive_walks_pending_questions(home: Path) -> None:
    store = GrantStore()
    queue = PendingQueue(store)
    p1 = queue.post(Question(kind=Kind.SHELL, argv=("make", "deploy"), reason="first",
                             session_id="s", project="/p"), timeout=120)
    p2 = queue.post(Question(kind=Kind.NETWORK, argv=("pypi.org", "443", "https"),
                             reason="second", session_id="s"), timeout=120)
    master, slave = os.openpty()
    env = dict(os.environ, CORRAL_HOME=str(home))
    proc = subprocess.Popen([sys.executable, "-m", "corral", "approve", "-i"], env=env,
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    screen = ""

    def expect(needle: str) -> None:
        nonlocal screen
        deadline = time.time() + 20
        while needle not in ANSI.sub("", screen):
            assert time.time() < deadline, f"never saw {needle!r}:\n{screen}"
            if select.select([master], [], [], 0.2)[0]:
                screen += os.read(master, 4096).decode("utf-8", "replace")

    expect("first")
    expect("[d]eny")
    os.write(master, b"p\n")
    expect("second")
    expect("[d]eny")
    os.write(master, b"d\n")
    assert proc.wait(timeout=20) == 0
    os.close(master)
    assert queue.wait(p1).choice is Choice.PROJECT  # type: ignore[union-attr]
    assert queue.wait(p2).choice is Choice.DENY  # type: ignore[union-attr]
    store.close()
