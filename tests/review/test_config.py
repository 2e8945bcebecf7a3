"""reviewer_from_config with the real layered config loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.config import load_config
from corral.errors import CorralError
from corral.review.config import api_key_from, breaker_from_config, on_failure, reviewer_from_config
from corral.review.deterministic import DeterministicReviewer
from corral.review.llm import LlmReviewer
from corral.review.model import ReviewRequest
from tests.review.openai_server import OpenAIServer, verdict


def _cfg(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    home, system, proj = tmp_path / "home", tmp_path / "etc", tmp_path / "proj"
    for d in (home, system, proj):
        d.mkdir(exist_ok=True)
    (home / "config.toml").write_text(text, encoding="utf-8")
    return load_config(proj, home=home, system=system)


def test_default_is_the_deterministic_reviewer(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "")
    assert isinstance(reviewer_from_config(cfg), DeterministicReviewer)
    assert breaker_from_config(cfg).max_consecutive == 3
    assert on_failure(cfg) == cfg.get("review.on_failure", "ask_user")


def test_llm_reviewer_from_config_talks_to_the_configured_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_TEST_REVIEW_KEY", "sk-from-env")
    with OpenAIServer([verdict("allow", "low", "high", "fine")]) as srv:
        cfg = _cfg(tmp_path, f"""
[review]
model = "local-model"
base_url = "{srv.base_url}"
api_key_env = "CORRAL_TEST_REVIEW_KEY"
timeout_seconds = 5
max_consecutive_denials = 2
on_failure = "deny"
""")
        reviewer = reviewer_from_config(cfg)
        assert isinstance(reviewer, LlmReviewer) and reviewer.timeout == 5
        r = reviewer.review(ReviewRequest(("ls",), str(tmp_path / "proj")))
    assert r.outcome == "allow" and r.reviewer.startswith("llm:local-model")
    assert srv.headers[0]["authorization"] == "Bearer sk-from-env"
    assert breaker_from_config(cfg).max_consecutive == 2
    assert on_failure(cfg) == "deny"


def test_missing_api_key_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORRAL_NO_SUCH_KEY", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    with pytest.raises(CorralError) as exc:
        api_key_from("CORRAL_NO_SUCH_KEY", "https://api.example.com/v1")
    assert exc.value.control == "review"
    assert "$CORRAL_NO_SUCH_KEY is not set" in exc.value.line()
    assert api_key_from(None, "http://127.0.0.1:8080/v1") == "unused"
