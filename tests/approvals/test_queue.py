"""The pending queue, answered from a real second process running `corral approve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from corral.approvals import Choice, GrantStore, Kind, PendingQueue, Question
from corral.errors import CorralError

ASKER = r"""
import json, sys
from corral.approvals import GrantStore, Kind, PendingQueue, Question
store = GrantStore()
q = Question(kind=Kind.SHELL, argv=("make", "deploy", "--prod"), reason=sys.argv[1],
             cwd="/work/p", session_id="sess-1", project="/work/p",
             reviewer_view="medium risk: deploys to production", pattern=("make", "deploy"))
ans = PendingQueue(store).ask(q, timeout=float(sys.argv[2]))
g = None
if ans is not None:
    g = store.record_choice(q, ans.choice, granted_by=ans.answered_by,
                            expires_at=ans.grant_expires)
print(json.dumps({"choice": None if ans is None else ans.choice.value,
                  "by": None if ans is None else ans.answered_by,
                  "grant": None if g is None else g.id}))
"""


def _start_asker(home: Path, reason: str, timeout: float) -> subprocess.Popen[str]:
    env = dict(os.environ, CORRAL_HOME=str(home))
    return subprocess.Popen([sys.executable, "-c", ASKER, reason, str(timeout)], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_pending(corral, reason: str) -> dict:
    deadline = time.time() + 20
    while time.time() < deadline:
        r = corral("approve", "--json")
        assert r.returncode == 0, r.stderr
        items = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        for item in items:
            if item["reason"] == reason:
                return item
        time.sleep(0.1)
    raise AssertionError(f"question {reason!r} never appeared in `corral approve`")


@pytest.mark.slow
def test_queue_answered_by_corral_approve_in_another_process(home: Path, corral) -> None:
    asker = _start_asker(home, "rule prompts for make deploy", 30)
    item = _wait_pending(corral, "rule prompts for make deploy")
    assert item["action"]["argv"] == ["make", "deploy", "--prod"]
    assert item["reviewer_view"] == "medium risk: deploys to production"
    human = corral("approve")
    assert item["id"] in human.stdout and "make deploy --prod" in human.stdout
    assert "reviewer: medium risk" in human.stdout
    r = corral("approve", item["id"], "--session")
    assert r.returncode == 0, r.stderr
    assert f"answered {item['id']}: session" in r.stdout
    out, err = asker.communicate(timeout=30)
    assert asker.returncode == 0, err
    result = json.loads(out)
    assert result["choice"] == "session" and result["by"] == "user"
    # the answer became a session grant for the proposed prefix
    listed = corral("grants", "list", "--json")
    grants = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(g["id"], g["scope"], g["pattern"], g["session_id"]) for g in grants] == [
        (result["grant"], "session", ["make", "deploy"], "sess-1")]
    # answered questions are no longer listed; a second answer is refused
    assert corral("approve").stdout.strip() == "no pending questions"
    again = corral("approve", item["id"], "--deny")
    assert again.returncode == 2
    assert again.stderr.strip() == (f"corral: approvals: pending question {item['id']} was "
                                    "already answered (session)")


@pytest.mark.slow
def test_answer_with_expiry_from_another_process(home: Path, corral) -> None:
    asker = _start_asker(home, "expiring", 30)
    item = _wait_pending(corral, "expiring")
    r = corral("approve", item["id"], "--persistent", "--expires", "1h")
    assert r.returncode == 2 and "persistent grants live in rules files" in r.stderr
    r = corral("approve", "--expires", "1h")
    assert r.returncode == 2 and "--expires goes with an answer" in r.stderr
    before = time.time()
    r = corral("approve", item["id"], "--project", "--expires", "1h")
    assert r.returncode == 0, r.stderr
    assert "until 20" in r.stdout
    out, err = asker.communicate(timeout=30)
    assert asker.returncode == 0, err
    gid = json.loads(out)["grant"]
    store = GrantStore()
    g = store.get(gid)
    assert g is not None and g.scope.value == "project" and g.expires_at is not None
    assert before + 3500 < g.expires_at < time.time() + 3700
    store.close()


@pytest.mark.slow
def test_queue_deny_from_another_process(home: Path, corral) -> None:
    asker = _start_asker(home, "deny me", 30)
    item = _wait_pending(corral, "deny me")
    assert corral("approve", item["id"], "--deny").returncode == 0
    out, _ = asker.communicate(timeout=30)
    assert json.loads(out) == {"choice": "deny", "by": "user", "grant": None}


def test_question_expires_and_late_answer_is_refused(store: GrantStore) -> None:
    queue = PendingQueue(store)
    q = Question(kind=Kind.SHELL, argv=("rm", "-rf", "dist"), reason="r")
    t0 = time.monotonic()
    assert queue.submit(q, timeout=0.3) is None
    assert 0.25 < time.monotonic() - t0 < 3
    rows = store._db.execute("SELECT id, answered FROM pending").fetchall()
    assert len(rows) == 1 and rows[0][1] == "expired"
    with pytest.raises(CorralError, match="is already expired"):
        queue.answer(rows[0][0], Choice.ONCE)
    assert queue.pending() == []


def test_answer_validation(store: GrantStore) -> None:
    queue = PendingQueue(store)
    with pytest.raises(CorralError, match="no pending question 'p-x'"):
        queue.answer("p-x", "once")
    pid = queue.post(Question(kind=Kind.SHELL, argv=("ls",), reason="r"), timeout=60)
    with pytest.raises(CorralError, match="unknown answer 'maybe'"):
        queue.answer(pid, "maybe")
    with pytest.raises(CorralError, match="applies to session and project answers, not once"):
        queue.answer(pid, "once", grant_expires=time.time() + 60)
    queue.answer(pid, "once")
    assert queue.wait(pid) is not None


def test_in_process_answer_from_a_thread(store: GrantStore, home: Path) -> None:
    queue = PendingQueue(store)
    q = Question(kind=Kind.NETWORK, argv=("api.example.com", "443", "https"), reason="net",
                 session_id="s")

    def answer_later() -> None:
        other = GrantStore()
        oq = PendingQueue(other)
        deadline = time.time() + 10
        while time.time() < deadline:
            items = oq.pending()
            if items:
                oq.answer(items[0].id, Choice.ONCE)
                break
            time.sleep(0.02)
        other.close()

    t = threading.Thread(target=answer_later)
    t.start()
    assert queue.submit(q, timeout=10) is Choice.ONCE
    t.join()


def test_cli_refusals(corral) -> None:
    r = corral("approve", "p-123")
    assert r.returncode == 2 and "say how to answer p-123" in r.stderr
    r = corral("approve", "--once")
    assert r.returncode == 2 and "give the pending question's id" in r.stderr
    r = corral("approve", "p-1", "--once", "--deny")
    assert r.returncode == 2 and "give one answer" in r.stderr
    r = corral("approve", "p-1", "--once")
    assert r.returncode == 2
    assert r.stderr.strip() == ("corral: approvals: no pending question 'p-1' (run `corral "
                                "approve` to list them)")
    r = corral("approve", "-i")
    assert r.returncode == 0 and "no pending questions" in r.stdout
