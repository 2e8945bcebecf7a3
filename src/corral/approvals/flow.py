"""One call for the pipeline: standing grant? may we ask? ask (terminal, then queue), record.

    grants      a live grant of the same kind covers the action  -> approved, nobody asked
    policy      the approval policy forbids this prompt category -> refused (fail closed)
    terminal    a person at the terminal answers                 -> their choice
    queue       otherwise, `corral approve` elsewhere answers    -> their choice, or expiry
    record      session/project/persistent answers become grants (returned for the event)

Escalation is never satisfied by a grant of another kind and is refused outright under
``never``, even when an escalation grant exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from corral.approvals.model import Choice, Grant, Kind, Question
from corral.approvals.policy import ApprovalPolicy
from corral.approvals.store import GrantStore
from corral.errors import CorralError

CATEGORY_OF_KIND = {Kind.SHELL: "rules", Kind.NETWORK: "network", Kind.MCP: "mcp",
                    Kind.PATCH: "patch", Kind.ESCALATION: "escalation"}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one approval request.

    ``outcome``: ``granted`` (a standing grant covered it), ``approved``, ``denied``,
    ``refused`` (the policy may not ask) or ``cannot_ask`` (nobody answered in time)."""

    outcome: str
    who: str = ""
    choice: Choice | None = None
    grant: Grant | None = None  # the grant used (granted) or created (approved)
    message: str = ""
    # from asking (the terminal or the `corral approve` queue) to the answer, in ms; None when
    # nobody answered (a standing grant, a refusal by policy, nobody reachable)
    wait_ms: float | None = None

    @property
    def approved(self) -> bool:
        return self.outcome in ("granted", "approved")


Asker = Callable[[Question], Choice | None]


def request(question: Question, *, policy: ApprovalPolicy, store: GrantStore,
            category: str | None = None, terminal: Asker | None = None,
            queue_timeout: float | None = None, now: float | None = None,
            standing: bool = True) -> Verdict:
    """Resolve one action that needs approval. ``category`` defaults from the kind (shell ->
    rules; pass ``heuristic`` or ``sandbox`` when that is why it prompts). ``terminal`` is
    :func:`ask_terminal` by default; ``queue_timeout`` None means do not queue. ``standing``
    False: grants given before do not cover it (an MCP tool whose definition changed since)."""
    cat = category or CATEGORY_OF_KIND[question.kind]
    if question.kind is Kind.ESCALATION and not policy.may_prompt("escalation"):
        return Verdict("refused", message=policy.refusal("escalation"))
    grant = store.find(question.kind, question.argv, session_id=question.session_id,
                       project=question.project, now=now) if standing else None
    if grant is not None:
        return Verdict("granted", who=grant.granted_by, grant=grant,
                       message=f"covered by grant {grant.id} ({grant.scope.value})")
    if not policy.may_prompt(cat):
        return Verdict("refused", message=policy.refusal(cat))
    who, expires = "user", None
    asked = time.monotonic()
    if terminal is None:
        from corral.approvals.prompt import ask_terminal_reply

        reply = ask_terminal_reply(question)
        choice = None if reply is None else reply.choice
        expires = None if reply is None else reply.expires_at
    else:
        choice = terminal(question)
    if choice is None and queue_timeout is not None and queue_timeout > 0:
        from corral.approvals.queue import PendingQueue

        answer = PendingQueue(store).ask(question, queue_timeout)
        if answer is not None:
            choice, who, expires = answer.choice, answer.answered_by, answer.grant_expires
    if choice is None:
        return Verdict("cannot_ask", message="nobody could be asked (no terminal, and no "
                       "answer from `corral approve` in time)")
    wait_ms = round((time.monotonic() - asked) * 1000, 3)
    if choice is Choice.DENY:
        return Verdict("denied", who=who, choice=choice, message=f"denied by the {who}",
                       wait_ms=wait_ms)
    try:
        created = store.record_choice(question, choice, granted_by=who, expires_at=expires,
                                      now=now)
    except CorralError as exc:  # the action is approved; only the standing grant is refused
        return Verdict("approved", who=who, choice=Choice.ONCE,
                       message=f"approved once by the {who}; {exc.message}", wait_ms=wait_ms)
    return Verdict("approved", who=who, choice=choice, grant=created,
                   message=f"approved ({choice.value}) by the {who}", wait_ms=wait_ms)
