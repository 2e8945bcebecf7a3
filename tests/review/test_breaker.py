"""The circuit breaker: 3 consecutive denials, or 10 in the last 50 reviews, stop the turn."""

from __future__ import annotations

import pytest

from corral.review.breaker import CircuitBreaker
from corral.review.model import Review, failed_review

ALLOW = Review("allow", "low", "unknown", "ok", "deterministic")
DENY = Review("deny", "high", "unknown", "no", "deterministic")


def test_three_consecutive_denials_trip() -> None:
    b = CircuitBreaker()
    assert b.record(DENY) is None
    assert b.record(DENY) is None
    reason = b.record(DENY)
    assert reason is not None and "3 actions in a row" in reason
    assert b.record(ALLOW) == reason  # stays tripped for the turn


def test_an_allow_resets_the_consecutive_count() -> None:
    b = CircuitBreaker()
    for r in (DENY, DENY, ALLOW, DENY, DENY, ALLOW):
        assert b.record(r) is None


def test_ten_denials_in_the_last_fifty_trip() -> None:
    b = CircuitBreaker()
    seq = [DENY, DENY, ALLOW] * 4  # 8 denials, never 3 in a row
    assert all(b.record(r) is None for r in seq)
    assert b.record(DENY) is None  # 9
    reason = b.record(ALLOW) or b.record(DENY)  # 10th denial
    assert reason is not None and "10 of the last" in reason


def test_old_denials_fall_out_of_the_window() -> None:
    b = CircuitBreaker()
    for _ in range(9):
        b.record(DENY)
        b.record(ALLOW)
    for _ in range(50):
        assert b.record(ALLOW) is None
    for _ in range(2):
        assert b.record(DENY) is None
        assert b.record(ALLOW) is None


def test_failed_reviews_count_as_denials_and_reset_clears() -> None:
    b = CircuitBreaker(max_consecutive=2)
    b.record(failed_review("llm:m", "timeout"))
    assert b.record(failed_review("llm:m", "timeout")) is not None
    b.reset()
    assert b.tripped is None and b.record(DENY) is None


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(max_consecutive=0)
