"""The LLM reviewer: any OpenAI-compatible Chat Completions API through the official SDK.

Bounded in time (one overall deadline, 90 s by default, covering retries), bounded in retries
(only transient errors: 429, 5xx, connection), strict about its answer (a JSON object with
exactly the four fields and their enum values), and failing closed: anything else is a
``failed`` deny that the pipeline turns into a question for a person, or a refusal.

By default the deterministic reviewer runs too and acts as a floor: the model can add caution,
never remove it, so text injected into the context cannot talk the reviewer into allowing what
the deterministic checks deny.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from corral.review.deterministic import DeterministicReviewer
from corral.review.model import (
    AUTHORIZATIONS,
    OUTCOMES,
    RISK_LEVELS,
    Authorization,
    Outcome,
    Review,
    Reviewer,
    ReviewRequest,
    RiskLevel,
    auth_rank,
    failed_review,
    risk_rank,
)
from corral.review.prompt import SCHEMA, system_prompt, user_message

MAX_RATIONALE = 4_000
_DEFAULT_GUARD: Any = object()


class VerdictError(ValueError):
    """The model's answer is not a valid verdict."""


class _Deadline(Exception):
    pass


def parse_verdict(content: str) -> tuple[Outcome, RiskLevel, Authorization, str]:
    """Validate a model answer against the schema; raises VerdictError with the reason."""
    text = content.strip()
    try:
        data = json.loads(text)
    except ValueError:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise VerdictError("the answer is not JSON") from None
        try:
            data = json.loads(text[start:end + 1])
        except ValueError:
            raise VerdictError("the answer is not JSON") from None
    if not isinstance(data, dict):
        raise VerdictError("the answer is not a JSON object")
    expected = set(SCHEMA["required"])
    if set(data) != expected:
        missing = sorted(expected - set(data))
        extra = sorted(set(data) - expected)
        raise VerdictError(f"the answer has missing fields {missing} or unknown fields {extra}")
    outcome, risk, auth, rationale = (data["outcome"], data["risk_level"],
                                      data["user_authorization"], data["rationale"])
    if outcome not in OUTCOMES:
        raise VerdictError(f"outcome {outcome!r} is not allow|deny")
    if risk not in RISK_LEVELS:
        raise VerdictError(f"risk_level {risk!r} is not low|medium|high|critical")
    if auth not in AUTHORIZATIONS:
        raise VerdictError(f"user_authorization {auth!r} is not unknown|low|medium|high")
    if not isinstance(rationale, str) or not rationale.strip():
        raise VerdictError("rationale is empty or not a string")
    return outcome, risk, auth, " ".join(rationale.split())[:MAX_RATIONALE]


class LlmReviewer:
    """Ask a model, with the deterministic reviewer as a floor (``guard=None`` turns it off)."""

    def __init__(self, model: str, base_url: str | None, api_key: str,
                 policy_text: str | None = None, timeout: float = 90.0, max_retries: int = 2,
                 *, guard: Reviewer | None = _DEFAULT_GUARD, backoff: float = 0.5,
                 client: Any = None) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.model = model
        self.policy_text = policy_text
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.guard: Reviewer | None = DeterministicReviewer() if guard is _DEFAULT_GUARD \
            else guard
        self.name = f"llm:{model}"
        if client is None:
            import openai

            client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                                   timeout=timeout)
        self._client = client

    def close(self) -> None:
        """Release the HTTP connection pool."""
        close = getattr(self._client, "close", None)
        if callable(close):
            close()

    def review(self, req: ReviewRequest) -> Review:
        t0 = time.monotonic()
        try:
            return self._review(req, t0)
        except Exception as exc:  # a reviewer bug must fail closed, never crash the pipeline
            return _with_time(failed_review(self.name, f"internal error ({type(exc).__name__}: "
                                                       f"{str(exc)[:200]})"), t0)

    def _review(self, req: ReviewRequest, t0: float) -> Review:
        deadline = t0 + self.timeout
        floor = self.guard.review(req) if self.guard is not None else None
        if floor is not None and floor.outcome == "deny" and floor.risk_level == "critical":
            return _with_time(floor, t0)  # never allowed: no need to ask a model
        answer = self._ask(req, deadline)
        return _with_time(_combine(answer, floor, self.name), t0)

    def _ask(self, req: ReviewRequest, deadline: float) -> Review:
        import openai

        messages = [{"role": "system", "content": system_prompt(self.policy_text)},
                    {"role": "user", "content": user_message(req)[0]}]
        fmt = {"type": "json_schema",
               "json_schema": {"name": "review_verdict", "strict": True, "schema": SCHEMA}}
        last = ""
        for attempt in range(self.max_retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                resp = _within(remaining, self._call(messages, fmt, remaining))
            except (_Deadline, openai.APITimeoutError):
                return failed_review(self.name, f"no answer within the {self.timeout:g} s "
                                                "deadline")
            except openai.APIStatusError as exc:
                if exc.status_code != 429 and exc.status_code < 500:
                    return failed_review(self.name, f"the API refused the request "
                                                    f"(HTTP {exc.status_code})")
                last = f"HTTP {exc.status_code}"
            except openai.APIConnectionError as exc:
                last = f"connection error ({type(exc).__name__})"
            except Exception as exc:  # garbage bodies, SDK surprises: fail closed
                return failed_review(self.name, f"unusable API response ({type(exc).__name__})")
            else:
                return self._verdict(resp)
            pause = min(self.backoff * (2 ** attempt), deadline - time.monotonic())
            if attempt < self.max_retries and pause > 0:
                time.sleep(pause)
        if not last:
            return failed_review(self.name, f"no answer within the {self.timeout:g} s deadline")
        return failed_review(self.name, f"transient API errors did not clear ({last}) after "
                                        f"{self.max_retries + 1} attempts")

    def _call(self, messages: list[dict[str, str]], fmt: dict[str, Any], timeout: float
              ) -> Callable[[], Any]:
        def call() -> Any:
            return self._client.chat.completions.create(
                model=self.model, messages=messages, response_format=fmt, timeout=timeout)

        return call

    def _verdict(self, resp: Any) -> Review:
        choices = getattr(resp, "choices", None) or []
        if not choices:
            return failed_review(self.name, "the answer has no choices")
        choice = choices[0]
        msg = choice.message
        if getattr(msg, "refusal", None):
            return failed_review(self.name, f"the model refused: {str(msg.refusal)[:200]}")
        if choice.finish_reason == "length":
            return failed_review(self.name, "the answer was cut off (length)")
        try:
            outcome, risk, auth, rationale = parse_verdict(msg.content or "")
        except VerdictError as exc:
            return failed_review(self.name, f"malformed answer: {exc}")
        # Codex's thresholds, enforced whatever the model concluded
        if outcome == "allow" and (risk == "critical" or (risk == "high"
                                                           and auth_rank(auth) < 2)):
            outcome = "deny"
            rationale += f" [corral: {risk} risk without user authorization is not allowed]"
        return Review(outcome, risk, auth, rationale, self.name)


def _within(seconds: float, call: Callable[[], Any]) -> Any:
    """Run ``call`` in a daemon thread; give up after ``seconds`` whatever the socket does."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    th = threading.Thread(target=run, name="corral-review", daemon=True)
    th.start()
    th.join(seconds)
    if th.is_alive():
        raise _Deadline
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _combine(answer: Review, floor: Review | None, name: str) -> Review:
    if floor is None:
        return answer
    risk = answer.risk_level if risk_rank(answer.risk_level) >= risk_rank(floor.risk_level) \
        else floor.risk_level
    if answer.failed:
        return answer
    if floor.outcome == "deny" and answer.outcome == "allow":
        return Review("deny", risk, floor.user_authorization,
                      f"{floor.rationale} [deterministic check; the model's allow was "
                      f"overridden: {answer.rationale[:300]}]", f"{name}+deterministic",
                      failed=floor.failed)
    return Review(answer.outcome, risk, answer.user_authorization, answer.rationale,
                  f"{name}+deterministic")


def _with_time(r: Review, t0: float) -> Review:
    return Review(r.outcome, r.risk_level, r.user_authorization, r.rationale, r.reviewer,
                  r.failed, (time.monotonic() - t0) * 1000)
