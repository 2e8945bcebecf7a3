"""Stop a turn whose actions keep being denied: the agent is stuck or working against policy.

Codex's rule: 3 consecutive denials, or 10 denials among the last 50 reviews, interrupt the
turn. A failed review (timeout, garbage) counts as a denial: it did not let the action run.
Once tripped, the supervisor lets only a person decide (see ``Pipeline._after_breaker``).
"""

from __future__ import annotations

from collections import deque

from corral.review.model import Review


class CircuitBreaker:
    def __init__(self, max_consecutive: int = 3, window: int = 50, max_in_window: int = 10
                 ) -> None:
        if max_consecutive < 1 or window < 1 or max_in_window < 1:
            raise ValueError("circuit breaker limits must be at least 1")
        self.max_consecutive = max_consecutive
        self.max_in_window = max_in_window
        self._recent: deque[bool] = deque(maxlen=window)
        self._consecutive = 0
        self.tripped: str | None = None

    def record(self, review: Review) -> str | None:
        """Count one review; a one-line reason when the turn must stop (and from then on)."""
        denied = not review.allowed
        self._recent.append(denied)
        self._consecutive = self._consecutive + 1 if denied else 0
        if self.tripped is None:
            if self._consecutive >= self.max_consecutive:
                self.tripped = (f"auto-review denied {self._consecutive} actions in a row; "
                                "the turn is stopped (a person must step in)")
            elif sum(self._recent) >= self.max_in_window:
                self.tripped = (f"auto-review denied {sum(self._recent)} of the last "
                                f"{len(self._recent)} actions; the turn is stopped (a person "
                                "must step in)")
        return self.tripped

    def reset(self) -> None:
        """A clean slate, when a person stepped in: an answer given just now at the terminal or
        through `corral approve`, or a new request corral itself took from the user. Never for
        a prompt the agent reports (hooks, session API, import): the agent could forge it."""
        self._recent.clear()
        self._consecutive = 0
        self.tripped = None
