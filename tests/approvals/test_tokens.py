"""Remote approval tokens: good path, and every refusal (other action, expired, replayed,
tampered, malformed, wrong key)."""

from __future__ import annotations

import base64
import json
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.approvals import Choice, GrantStore, Kind, PendingQueue, Question
from corral.approvals.tokens import load_or_create_key, mint_token, redeem_token, sign_token
from corral.errors import CorralError

Q = Question(kind=Kind.SHELL, argv=("make", "release"), reason="publishing", session_id="s1",
             project="/work/p")
OTHER = Question(kind=Kind.SHELL, argv=("rm", "-rf", "/work/p"), reason="cleanup",
                 session_id="s1", project="/work/p")


@pytest.fixture
def queue(store: GrantStore) -> PendingQueue:
    return PendingQueue(store)


def _refused(queue: PendingQueue, token: str, needle: str, **kw: float) -> str:
    with pytest.raises(CorralError) as exc:
        redeem_token(queue, token, **kw)  # type: ignore[arg-type]
    line = exc.value.line()
    assert needle in line, line
    assert "\n" not in line and line.startswith("corral: approvals: ")
    return line


def test_good_token_answers_once_and_key_is_private(queue: PendingQueue) -> None:
    pid = queue.post(Q, timeout=600)
    token = mint_token(queue, pid, Choice.SESSION, ttl=300)
    key = queue.store.key_file
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.with_suffix(".pub").exists()
    ans = redeem_token(queue, token)
    assert (ans.pending_id, ans.choice, ans.answered_by) == (pid, Choice.SESSION, "remote")
    got = queue.wait(pid)
    assert got is not None and got.choice is Choice.SESSION and got.answered_by == "remote"
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert set(claims) == {"v", "pending_id", "action_digest", "scope", "exp", "nonce"}
    assert claims["action_digest"] == Q.digest()


def test_replayed_token_refused(queue: PendingQueue) -> None:
    pid = queue.post(Q, timeout=600)
    token = mint_token(queue, pid, Choice.ONCE)
    redeem_token(queue, token)
    _refused(queue, token, "token was already used (tokens are single-use)")


def test_token_for_a_different_action_refused(queue: PendingQueue) -> None:
    pid = queue.post(Q, timeout=600)
    key = load_or_create_key(queue.store.key_file)
    forged = sign_token(key, pid, OTHER.digest(), Choice.PERSISTENT, time.time() + 300)
    _refused(queue, forged, f"token is bound to a different action than pending question {pid}")
    assert queue.get(pid).answered is None  # type: ignore[union-attr]
    # a token minted for one question does not answer another
    pid2 = queue.post(OTHER, timeout=600)
    token2 = mint_token(queue, pid2, Choice.ONCE)
    redeem_token(queue, token2)
    assert queue.get(pid).answered is None  # type: ignore[union-attr]


def test_expired_token_refused(queue: PendingQueue) -> None:
    pid = queue.post(Q, timeout=600)
    now = time.time()
    token = mint_token(queue, pid, Choice.ONCE, ttl=60, now=now)
    _refused(queue, token, "token expired at", now=now + 61)
    # token lifetime never outlives the question
    pid2 = queue.post(Q, timeout=5)
    t2 = mint_token(queue, pid2, Choice.ONCE, ttl=3600)
    claims = json.loads(base64.urlsafe_b64decode(t2.split(".")[0] + "=="))
    assert claims["exp"] <= now + 10


def test_tampered_token_refused(queue: PendingQueue) -> None:
    pid = queue.post(Q, timeout=600)
    token = mint_token(queue, pid, Choice.ONCE)
    body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    claims["scope"] = "persistent"
    evil = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _refused(queue, f"{evil}.{sig}", "token signature does not verify")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    _refused(queue, f"{body}.{flipped}", "token signature does not verify")
    assert queue.get(pid).answered is None  # type: ignore[union-attr]
    redeem_token(queue, token)  # the untouched token still works


def test_token_from_another_key_refused(queue: PendingQueue, tmp_path: Path) -> None:
    pid = queue.post(Q, timeout=600)
    other = load_or_create_key(tmp_path / "other" / "approvals.key")
    forged = sign_token(other, pid, Q.digest(), Choice.ONCE, time.time() + 60)
    load_or_create_key(queue.store.key_file)
    _refused(queue, forged, "minted with another machine's key")


def test_token_for_answered_or_expired_question(queue: PendingQueue) -> None:
    pid = queue.post(Q, timeout=600)
    token = mint_token(queue, pid, Choice.ONCE)
    queue.answer(pid, Choice.DENY)
    _refused(queue, token, "was already answered (deny)")
    with pytest.raises(CorralError, match=r"was already answered \(deny\)"):
        mint_token(queue, pid, Choice.ONCE)
    with pytest.raises(CorralError, match="no pending question"):
        mint_token(queue, "p-none", Choice.ONCE)


@pytest.mark.parametrize("text,needle", [
    ("", "malformed"), ("abc", "malformed"), ("a.b.c", "malformed"), ("!!.??", "malformed"),
    ("e30.AAAA", "signature does not verify"), ("x" * 5000, "malformed"),
])
def test_malformed_tokens(queue: PendingQueue, text: str, needle: str) -> None:
    load_or_create_key(queue.store.key_file)
    _refused(queue, text, needle)


@settings(max_examples=200, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300) | st.binary(max_size=200).map(
    lambda b: base64.urlsafe_b64encode(b).decode() + "." + base64.urlsafe_b64encode(b).decode()))
def test_garbage_never_answers(queue: PendingQueue, text: str) -> None:
    load_or_create_key(queue.store.key_file)
    with pytest.raises(CorralError) as exc:
        redeem_token(queue, text)
    assert "\n" not in exc.value.line()


def test_no_key_refused(queue: PendingQueue) -> None:
    pid = queue.post(Q, timeout=600)
    token = mint_token(queue, pid, Choice.ONCE)
    shutil.rmtree(queue.store.key_file.parent)
    _refused(queue, token, "no approvals key on this machine")


@pytest.mark.slow
def test_cli_mint_and_redeem(home: Path, corral) -> None:
    store = GrantStore()
    queue = PendingQueue(store)
    pid = queue.post(Q, timeout=600)
    r = corral("approve", "--remote-token", pid, "--project", "--ttl", "10m")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.count(".") == 1
    r = corral("approve", "--token", token)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"answered {pid}: project (remote token)"
    got = queue.wait(pid)
    assert got is not None and got.choice is Choice.PROJECT and got.answered_by == "remote"
    r = corral("approve", "--token", token)
    assert r.returncode == 2
    assert r.stderr.strip() == "corral: approvals: token was already used (tokens are single-use)"
    store.close()


def test_loose_key_permissions_refused(queue: PendingQueue) -> None:
    pid = queue.post(Q, timeout=600)
    token = mint_token(queue, pid, Choice.ONCE)
    queue.store.key_file.chmod(0o644)
    _refused(queue, token, "is readable by others (mode 0644)")
    with pytest.raises(CorralError, match="readable by others"):
        mint_token(queue, pid, Choice.ONCE)


def test_swapped_public_key_is_ignored_while_the_private_key_is_readable(
        queue: PendingQueue, tmp_path: Path) -> None:
    pid = queue.post(Q, timeout=600)
    attacker = load_or_create_key(tmp_path / "evil" / "approvals.key")
    load_or_create_key(queue.store.key_file)
    shutil.copy(tmp_path / "evil" / "approvals.pub", queue.store.key_file.with_suffix(".pub"))
    forged = sign_token(attacker, pid, Q.digest(), Choice.ONCE, time.time() + 60)
    _refused(queue, forged, "signature does not verify")


def test_public_key_alone_verifies(queue: PendingQueue) -> None:
    pid = queue.post(Q, timeout=600)
    token = mint_token(queue, pid, Choice.ONCE)
    queue.store.key_file.unlink()  # a machine that only has approvals.pub
    assert redeem_token(queue, token).choice is Choice.ONCE
