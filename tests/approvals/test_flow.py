"""approvals.request: grants first, then the policy, then the person; every combination."""

from __future__ import annotations

import threading
import time

import pytest

from corral.approvals import (
    ApprovalPolicy,
    Choice,
    GrantStore,
    Kind,
    PendingQueue,
    Question,
    request,
)

POLICIES = ["untrusted", "on-request", "on-failure", "never",
            {"granular": {"rules": False, "escalation": True}},
            {"granular": {"sandbox_approval": True, "rules": True, "escalation": False}}]
ARGV = {Kind.SHELL: ("make", "deploy"), Kind.NETWORK: ("api.example.com", "443", "https"),
        Kind.MCP: ("github", "create_issue"), Kind.PATCH: ("/p/src/a.py",),
        Kind.ESCALATION: ("make", "install")}


def _q(kind: Kind) -> Question:
    return Question(kind=kind, argv=ARGV[kind], reason="needs approval", session_id="s1",
                    project="/p")


@pytest.mark.parametrize("policy_value", POLICIES, ids=str)
@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.value)
@pytest.mark.parametrize("answer", [Choice.ONCE, Choice.SESSION, Choice.DENY, None],
                         ids=lambda a: "nobody" if a is None else a.value)
def test_matrix(store: GrantStore, policy_value: object, kind: Kind,
                answer: Choice | None) -> None:
    policy = ApprovalPolicy.from_config(policy_value)
    asked: list[Question] = []

    def terminal(q: Question) -> Choice | None:
        asked.append(q)
        return answer

    q = _q(kind)
    v = request(q, policy=policy, store=store, terminal=terminal)
    category = {Kind.SHELL: "rules", Kind.NETWORK: "network", Kind.MCP: "mcp",
                Kind.PATCH: "patch", Kind.ESCALATION: "escalation"}[kind]
    if not policy.may_prompt(category):
        assert v.outcome == "refused" and not v.approved and asked == []
        assert v.message.startswith("approval required by policy")
        return
    assert asked == [q]
    if answer is None:
        assert v.outcome == "cannot_ask" and not v.approved
    elif answer is Choice.DENY:
        assert v.outcome == "denied" and not v.approved and v.who == "user"
    else:
        assert v.outcome == "approved" and v.approved and v.choice is answer
        if answer is Choice.SESSION:
            assert v.grant is not None and v.grant.kind is kind
            again = request(q, policy=policy, store=store, terminal=terminal)
            assert again.outcome == "granted" and again.grant == v.grant and len(asked) == 1
        else:
            assert v.grant is None
            assert request(q, policy=policy, store=store, terminal=terminal).outcome != "granted"


def test_grant_covers_action_without_asking_even_under_never(store: GrantStore) -> None:
    store.add("shell", "session", ["make", "deploy"], session_id="s1")
    v = request(_q(Kind.SHELL), policy=ApprovalPolicy.from_config("never"), store=store,
                terminal=lambda q: pytest.fail("asked"))  # type: ignore[arg-type,return-value]
    assert v.outcome == "granted" and v.grant is not None


def test_escalation_refused_under_never_even_with_an_escalation_grant(store: GrantStore) -> None:
    store.add("escalation", "session", ["make", "install"], session_id="s1")
    v = request(_q(Kind.ESCALATION), policy=ApprovalPolicy.from_config("never"), store=store,
                terminal=lambda q: Choice.ONCE)
    assert v.outcome == "refused"


def test_escalation_not_covered_by_a_shell_grant(store: GrantStore) -> None:
    store.add("shell", "persistent", ["make", "install"])
    asked = []
    v = request(_q(Kind.ESCALATION), policy=ApprovalPolicy.from_config("on-request"),
                store=store, terminal=lambda q: asked.append(q) or Choice.DENY)  # type: ignore[func-returns-value]
    assert asked and v.outcome == "denied"


def test_heuristic_category_follows_sandbox_approval(store: GrantStore) -> None:
    policy = ApprovalPolicy.from_config({"granular": {"sandbox_approval": False}})
    v = request(_q(Kind.SHELL), policy=policy, store=store, category="heuristic",
                terminal=lambda q: Choice.ONCE)
    assert v.outcome == "refused" and "sandbox_approval = false" in v.message
    assert request(_q(Kind.SHELL), policy=policy, store=store,
                   terminal=lambda q: Choice.ONCE).outcome == "approved"


def test_falls_back_to_the_queue(store: GrantStore, home) -> None:
    def answer_later() -> None:
        other = GrantStore()
        q = PendingQueue(other)
        deadline = time.time() + 10
        while time.time() < deadline:
            items = q.pending()
            if items:
                q.answer(items[0].id, Choice.PROJECT, grant_expires=time.time() + 600)
                break
            time.sleep(0.02)
        other.close()

    t = threading.Thread(target=answer_later)
    t.start()
    v = request(_q(Kind.SHELL), policy=ApprovalPolicy.from_config("untrusted"), store=store,
                terminal=lambda q: None, queue_timeout=10)
    t.join()
    assert v.outcome == "approved" and v.choice is Choice.PROJECT and v.grant is not None
    assert v.grant.project == "/p"
    assert v.grant.expires_at is not None and v.grant.expires_at > time.time() + 500


def test_queue_timeout_is_cannot_ask(store: GrantStore) -> None:
    v = request(_q(Kind.SHELL), policy=ApprovalPolicy.from_config("untrusted"), store=store,
                terminal=lambda q: None, queue_timeout=0.2)
    assert v.outcome == "cannot_ask"


def test_refused_standing_grant_still_approves_once(store: GrantStore) -> None:
    q = Question(kind=Kind.SHELL, argv=("make", "x"), reason="r", session_id="s1",
                 pattern=("env",))
    v = request(q, policy=ApprovalPolicy.from_config("on-request"), store=store,
                terminal=lambda q: Choice.SESSION)
    assert v.outcome == "approved" and v.choice is Choice.ONCE and v.grant is None
    assert "`env` runs whatever command follows it" in v.message
    assert store.list() == []


def test_queue_refuses_an_answer_not_on_offer(store: GrantStore) -> None:
    from corral.errors import CorralError

    queue = PendingQueue(store)
    pid = queue.post(Question(kind=Kind.SHELL, argv=("python3",), reason="r", session_id="s"),
                     timeout=60)
    with pytest.raises(CorralError, match="persistent is not offered"):
        queue.answer(pid, Choice.PERSISTENT)
    from corral.approvals import mint_token

    with pytest.raises(CorralError, match="session is not offered"):
        mint_token(queue, pid, Choice.SESSION)
    queue.answer(pid, Choice.ONCE)


def test_default_terminal_without_a_tty_cannot_ask(store: GrantStore) -> None:
    import sys

    assert not (sys.stdin.isatty() and sys.stderr.isatty())  # pytest captures both
    v = request(_q(Kind.SHELL), policy=ApprovalPolicy.from_config("untrusted"), store=store)
    assert v.outcome == "cannot_ask" and not v.approved
