"""Approvals: policies, grants, and the channels that ask a person.

Public surface::

    ApprovalPolicy.from_config(value) -> ApprovalPolicy; .may_prompt(category); .name
    GrantStore(path=None)            .add(kind, scope, pattern, ...) -> Grant
                                     .find(kind, argv, session_id=, project=) -> Grant | None
                                     .list(active_only=True) -> list[Grant]; .revoke(id, by)
                                     .record_choice(question, choice, granted_by=) -> Grant | None
    Grant.event() / Grant.revoke_event(reason) -> dict   # agent.approval.grant / .revoke attrs
    ask_terminal(question, timeout=None) -> Choice | None   (ask_terminal_reply: + expiry)
    PendingQueue(store).submit(question, timeout) -> Choice | None   (.ask -> PendingAnswer)
    mint_token(queue, pending_id, choice, ttl=) -> str
    redeem_token(queue, token) -> PendingAnswer
    why_too_broad(pattern) -> str | None; parse_expiry(text) -> float
    request(question, policy=, store=, category=, terminal=, queue_timeout=) -> Verdict

Names are imported lazily so command modules stay cheap to import.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:
    from typing import Any

    from corral.approvals.broad import why_too_broad as why_too_broad
    from corral.approvals.flow import Verdict as Verdict
    from corral.approvals.flow import request as request
    from corral.approvals.model import Choice as Choice
    from corral.approvals.model import Grant as Grant
    from corral.approvals.model import Kind as Kind
    from corral.approvals.model import Question as Question
    from corral.approvals.model import Scope as Scope
    from corral.approvals.model import parse_expiry as parse_expiry
    from corral.approvals.policy import ApprovalPolicy as ApprovalPolicy
    from corral.approvals.prompt import TerminalReply as TerminalReply
    from corral.approvals.prompt import ask_terminal as ask_terminal
    from corral.approvals.prompt import ask_terminal_reply as ask_terminal_reply
    from corral.approvals.prompt import offered_choices as offered_choices
    from corral.approvals.queue import PendingAnswer as PendingAnswer
    from corral.approvals.queue import PendingItem as PendingItem
    from corral.approvals.queue import PendingQueue as PendingQueue
    from corral.approvals.store import GrantStore as GrantStore
    from corral.approvals.tokens import mint_token as mint_token
    from corral.approvals.tokens import redeem_token as redeem_token

_WHERE = {
    "why_too_broad": "broad", "Choice": "model", "Grant": "model", "Kind": "model",
    "Question": "model", "Scope": "model", "parse_expiry": "model", "ApprovalPolicy": "policy",
    "ask_terminal": "prompt", "ask_terminal_reply": "prompt", "TerminalReply": "prompt",
    "offered_choices": "prompt", "PendingAnswer": "queue",
    "PendingItem": "queue", "PendingQueue": "queue", "GrantStore": "store",
    "mint_token": "tokens", "redeem_token": "tokens", "Verdict": "flow", "request": "flow",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'corral.approvals' has no attribute {name!r}")
    return getattr(importlib.import_module(f"corral.approvals.{module}"), name)
