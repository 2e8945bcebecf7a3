"""Auto-review: a second opinion on actions the rules sent to "prompt".

Public surface::

    ReviewRequest(argv, cwd, kind, rule_reason, intent, recent, details)   # what is judged
    ContextItem(role, content, name)                                       # untrusted context
    Review(outcome, risk_level, user_authorization, rationale, reviewer, failed).to_json()
    Reviewer                      # Protocol: review(req) -> Review
    DeterministicReviewer()       # the default: no network, < 1 ms, explainable
    LlmReviewer(model, base_url, api_key, policy_text=None, timeout=90.0, max_retries=2)
    CircuitBreaker(max_consecutive=3, window=50, max_in_window=10).record(review) -> str | None
    reviewer_from_config(cfg) -> Reviewer

Names are imported lazily so importing the package does not load the openai SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from corral.review.breaker import CircuitBreaker as CircuitBreaker
    from corral.review.config import api_key_from as api_key_from
    from corral.review.config import breaker_from_config as breaker_from_config
    from corral.review.config import reviewer_from_config as reviewer_from_config
    from corral.review.deterministic import DeterministicReviewer as DeterministicReviewer
    from corral.review.llm import LlmReviewer as LlmReviewer
    from corral.review.model import ContextItem as ContextItem
    from corral.review.model import Review as Review
    from corral.review.model import Reviewer as Reviewer
    from corral.review.model import ReviewRequest as ReviewRequest

_WHERE = {
    "CircuitBreaker": "breaker", "api_key_from": "config", "breaker_from_config": "config",
    "reviewer_from_config": "config", "DeterministicReviewer": "deterministic",
    "LlmReviewer": "llm", "ContextItem": "model", "Review": "model", "Reviewer": "model",
    "ReviewRequest": "model",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'corral.review' has no attribute {name!r}")
    return getattr(importlib.import_module(f"corral.review.{module}"), name)
