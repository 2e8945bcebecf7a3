"""Redaction against a corpus of real-looking (fake) secrets; ordinary text must survive."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.telemetry.redact import redact

# (text around the secret, the secret). Each secret is fake but has the real format.
SECRETS = [
    ("export OPENAI_API_KEY={}", "sk-proj-4fGh7Jk2Lm9Np3Qr5St8Uv1Wx6Yz0AbCdEfGhIjKlMnOpQrStUvWx"),
    ("key: {}", "sk-proj-Q8mZ2vT6yR1nB4kL7wE9xC3aJ5hF0gDsPuIoKlMnBvCxZaSdFgHj"),
    ("use {} for the old API", "sk-9aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uV3wX4yZ5"),
    ("ANTHROPIC={}", "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0EdCbA-_zyxwvutsrqponmlkjihgfedcba98"),
    ("token {}", "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R"),
    ("git push https://x-access-token:{}@github.com/o/r", "ghs_Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0PpOoNn"),
    ("GH={}", "github_pat_11ABCDEFG0abcdefghijklmn_OPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789AB"),
    ("glab {}", "glpat-xY7zQ2wE4rT6yU8iO0pA"),
    ("slack {}", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("hook {}", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
    ("stripe {}", "sk_live_51HxYzAbCdEfGhIjKlMnOpQrStUv"),
    ("stripe test {}", "rk_test_4eC39HqLyjWDarjtT1zdp7dc"),
    ("aws {} id", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_access_key = {}", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("google {}", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
    ("hf {}", "hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
    ("npm {}", "npm_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
    ("pypi {}", "pypi-AgEIcHlwaS5vcmcCJGE4YjFjZDJlLTNmNGEtNWI2Yy03ZDhlLTlmMGExYjJjM2Q0ZQACKlszLCJiNjk"),
    ("sg {}", "SG.aBcDeFgHiJkLmNoPqRsTuV.wXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ01234"),
    ("jwt {}", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
    ("curl -H 'Authorization: Bearer {}'", "7f9c2ba4e88f827d616045507605853e"),
    ("Authorization: Basic {}", "YWxhZGRpbjpvcGVuc2VzYW1l"),
    ("psql postgres://admin:{}@db.internal:5432/app", "Tr0ub4dor&3"),
    ("redis://:{}@cache:6379", "s3cretRedisPass"),
    ("password={}", "hunter2hunter2"),
    ("DB_PASSWORD='{}'", "correct horse battery staple"),
    ('{{"password": "{}"}}', "p@ss\\\"word"),
    ('{{"api_key":"{}"}}', "abc123def456"),
    ('{{"client_secret": "{}"}}', "9f8e7d6c5b4a"),
    ("mysql -u root --password={} app", "Sup3rS3cret"),
    ("curl -u alice:{} https://api", "wonderland42"),
    ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={};", "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="),
    ("twilio {}", "SK0123456789abcdef0123456789abcdef"),
]

PRIVATE_KEY = """-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDx1y5h0aZ7c3n0jR4qk4r8nX2gJ6Ck1lY8m7s2QfYH3QAAAJgq3c5WKt3O
-----END OPENSSH PRIVATE KEY-----"""

ORDINARY = [
    "pip install scikit-learn sk-learn-extension && pytest -k test_token_count",
    "git log --oneline 3f2a9c1b7d8e4f5a6b7c8d9e0f1a2b3c4d5e6f7a",
    "The password policy requires 12 characters.",
    "uuid 123e4567-e89b-12d3-a456-426614174000 assigned",
    "https://github.com/openai/codex/blob/main/README.md#install",
    "ls -la /home/user/.ssh && cat README.md",
    "Tokens used: 1234 input, 567 output",
    "def get_api_key(name):\n    return os.environ[name]",
    "docker run -e LOG_LEVEL=debug -p 8080:80 nginx:1.27",
    "Bearer tokens are described in RFC 6750.",
    "ssh git@github.com -p 22",
    "SKIP_TESTS=1 make",
    "mailto:user@example.com and http://example.com:8080/path",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "café — naïve façade 数据",
]


@pytest.mark.parametrize(("template", "secret"), SECRETS)
def test_each_secret_is_redacted(template: str, secret: str) -> None:
    text = template.format(secret)
    out = redact(text)
    assert secret not in out, out
    assert "[REDACTED:" in out
    # the surrounding words survive
    for word in template.replace("{}", " ").split():
        if len(word) > 3 and word.isalpha():
            assert word in out, (word, out)


def test_private_key_block_redacted() -> None:
    out = redact(f"here is my key\n{PRIVATE_KEY}\nthanks")
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5v" not in out
    assert out.startswith("here is my key\n[REDACTED:private_key]") and out.endswith("thanks")


def test_truncated_private_key_block_redacted() -> None:
    out = redact(PRIVATE_KEY.split("-----END")[0])
    assert "QyNTUxOQAAACDx1y5h0aZ7c3n0jR4qk4r8" not in out


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_survives(text: str) -> None:
    assert redact(text) == text


@settings(deadline=None)
@given(st.text(max_size=300))
def test_redact_never_crashes_and_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@settings(deadline=None)
@given(st.sampled_from(SECRETS), st.text(alphabet=st.characters(whitelist_categories=("Zs",)),
                                         min_size=1, max_size=3))
def test_secret_redacted_wherever_it_sits(pair: tuple[str, str], sep: str) -> None:
    template, secret = pair
    text = "start" + sep + template.format(secret) + sep + "end"
    assert secret not in redact(text)


def _reference(text: str) -> str:
    """Every pattern, no hints or fast path: what the gated implementation must equal."""
    import re

    from corral.telemetry import redact as r

    ordered = [p for p in r._PATTERNS if p[0] not in r._GENERIC]
    ordered += [p for p in r._PATTERNS if p[0] in r._GENERIC]
    for kind, pat in ordered:
        text = re.sub(pat, r._replacer(kind, kind in r._GENERIC), text)
    return text


_pieces = st.sampled_from([s for _, s in SECRETS] + [t.replace("{}", "") for t, _ in SECRETS]
                          + ORDINARY + [" ", "=", ":", "@", "-u ", "://", '"', "\n"])


@settings(deadline=None)
@given(st.lists(_pieces | st.text(max_size=12), max_size=12))
def test_hint_gating_never_skips_a_match(parts: list[str]) -> None:
    text = "".join(parts)
    assert redact(text) == _reference(text)
