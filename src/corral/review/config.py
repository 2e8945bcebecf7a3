"""Build the configured reviewer: ``[review]`` in config, the policy text from requirements."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from corral.errors import CorralError
from corral.review.breaker import CircuitBreaker
from corral.review.model import Reviewer

KEYRING_SERVICE = "corral"
KEYRING_USER = "review-api-key"


def _loopback(base_url: str | None) -> bool:
    if not base_url:
        return False
    host = (urlsplit(base_url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def api_key_from(env_name: str | None, base_url: str | None) -> str:
    """The reviewer's API key: the named environment variable, else the keyring."""
    if env_name:
        value = os.environ.get(env_name)
        if value:
            return value
    try:
        import keyring

        stored = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
    except Exception:  # no keyring backend on this machine: same as "not stored"
        stored = None
    if stored:
        return stored
    if _loopback(base_url):
        return "unused"  # local model servers rarely check keys
    where = f"${env_name} is not set and " if env_name else ""
    raise CorralError("review", f"no API key for the LLM reviewer: {where}the keyring has no "
                      f"'{KEYRING_SERVICE}/{KEYRING_USER}' entry",
                      f"set review.api_key_env, or run `keyring set {KEYRING_SERVICE} "
                      f"{KEYRING_USER}`")


def reviewer_from_config(cfg: Any) -> Reviewer:
    """The deterministic reviewer unless ``review.model`` is set; then the LLM reviewer with the
    deterministic one as its floor."""
    from corral.review.deterministic import DeterministicReviewer

    model = cfg.get("review.model")
    if not model:
        return DeterministicReviewer()
    from corral.review.llm import LlmReviewer

    base_url = cfg.get("review.base_url")
    key = api_key_from(cfg.get("review.api_key_env"), base_url)
    policy = None
    requirements = getattr(cfg, "requirements", None)
    if requirements is not None:
        policy = requirements.get("review.policy")
    timeout = float(cfg.get("review.timeout_seconds", 90.0) or 90.0)
    return LlmReviewer(str(model), base_url, key, policy_text=policy, timeout=timeout)


def breaker_from_config(cfg: Any) -> CircuitBreaker:
    return CircuitBreaker(max_consecutive=int(cfg.get("review.max_consecutive_denials", 3)))


def on_failure(cfg: Any) -> str:
    """What a failed review leads to: ``ask_user`` (ask when interactive, else deny) or
    ``deny``."""
    value = cfg.get("review.on_failure", "ask_user")
    return value if value in ("deny", "ask_user") else "deny"
