"""Secret redaction for content that leaves the agent (tier 2 content, command lines).

Each pattern runs only when a cheap substring hint says it could match, so redaction stays cheap
enough for the emit path.
Each pattern names the kind of secret it found: ``[REDACTED:github_token]`` tells an analyst what
was there without saying what it was. Patterns may keep a harmless prefix (``password=``,
``Bearer ``, ``https://user:``) in a group named ``keep``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

# (kind, pattern). Order matters where patterns overlap: the more specific ones come first.
_PATTERNS: tuple[tuple[str, str], ...] = (
    ("private_key", r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:.|\n)*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"),
    ("aws_access_key_id", r"\b(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[0-9A-Z]{16}\b"),
    ("aws_secret_access_key", r"(?i)(?P<keep>aws_?secret_?(?:access_?)?key[\"']?\s*[=:]\s*[\"']?)[A-Za-z0-9/+=]{40}"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_-]{20,}"),
    ("slack_token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}"),
    ("slack_webhook", r"https://hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+"),
    ("stripe_key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("anthropic_key", r"\bsk-ant-[a-z]+\d*-[A-Za-z0-9_-]{20,}"),
    ("openai_key", r"\bsk-(?:proj-|svcacct-|admin-|None-)?(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{20,}"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}"),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi_token", r"\bpypi-AgE[A-Za-z0-9_-]{50,}"),
    ("sendgrid_key", r"\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{30,64}"),
    ("twilio_key", r"\bSK[0-9a-f]{32}\b"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("bearer_token", r"(?i)(?P<keep>\b(?:bearer|token)\s+)[A-Za-z0-9._~+/-]{16,}=*"),
    ("basic_auth", r"(?i)(?P<keep>\bbasic\s+)[A-Za-z0-9+/]{12,}={0,2}"),
    ("url_password", r"(?P<keep>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/\s@\"']*:)[^@\s/\"']+(?=@)"),
    ("azure_account_key", r"(?i)(?P<keep>\bAccountKey=)[A-Za-z0-9+/=]{20,}"),
    ("json_secret", r"(?i)(?P<keep>\"(?:[a-z0-9_.-]*(?:password|passwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|private[_-]?key)[a-z0-9_.-]*|token)\"\s*:\s*)\"(?:[^\"\\]|\\.)*\""),
    ("assigned_secret", r"(?i)(?P<keep>\b[a-z0-9_.-]*(?:password|passwd|pwd|secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|refresh[_-]?token|private[_-]?key|credentials?)[a-z0-9_.-]*[\"']?\s*(?:=|:\s)\s*)(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s&,;\"']+)"),
    ("cli_user_password", r"(?P<keep>(?:\s|^)(?:-u|--user)\s+[^\s:]+:)[^\s]+"),
    ("cli_password", r"(?P<keep>(?:\s|^)(?:--password|--passwd|--token|--api-key|--secret)(?:=|\s+))(?!-)[^\s]+"),
)


# Patterns that recognise a secret by its surroundings rather than its own format. They run
# after the vendor formats, so a vendor token after "token " is named by its vendor, and they
# never re-redact a marker.
_GENERIC = {"bearer_token", "basic_auth", "url_password", "azure_account_key", "json_secret",
            "assigned_secret", "cli_user_password", "cli_password"}

# Lower-case substrings, one of which must occur for a pattern to be worth running. A handful of
# `in` checks is much cheaper than running 25 regular expressions over every command line.
_KEYWORDS = ("pass", "pwd", "secret", "key", "token", "credential")
_HINTS: dict[str, tuple[str, ...]] = {
    "private_key": ("private key",),
    "aws_access_key_id": ("akia", "asia", "abia", "acca", "aroa", "aida"),
    "aws_secret_access_key": ("aws",),
    "github_token": ("gh", "github_pat_"),
    "gitlab_token": ("glpat-",),
    "slack_token": ("xox",),
    "slack_webhook": ("hooks.slack.com",),
    "stripe_key": ("_live_", "_test_"),
    "anthropic_key": ("sk-ant-",),
    "openai_key": ("sk-",),
    "google_api_key": ("aiza",),
    "huggingface_token": ("hf_",),
    "npm_token": ("npm_",),
    "pypi_token": ("pypi-",),
    "sendgrid_key": ("sg.",),
    "twilio_key": ("sk",),
    "jwt": ("eyj",),
    "bearer_token": ("bearer", "token"),
    "basic_auth": ("basic",),
    "url_password": ("://",),
    "azure_account_key": ("accountkey=",),
    "json_secret": _KEYWORDS,
    "assigned_secret": _KEYWORDS,
    "cli_user_password": ("-u", "--user"),
    "cli_password": ("--pass", "--token", "--api-key", "--secret"),
}


def _replacer(kind: str, generic: bool) -> Callable[[re.Match[str]], str]:
    marker = f"[REDACTED:{kind}]"

    def replace(m: re.Match[str]) -> str:
        keep = m.groupdict().get("keep") or ""
        if generic and m.group(0)[len(keep):].startswith("[REDACTED"):  # already redacted
            return m.group(0)
        return keep + marker

    return replace


@functools.cache
def _compiled() -> tuple[tuple[tuple[str, ...], re.Pattern[str], Callable[[re.Match[str]], str]],
                        ...]:
    ordered = [p for p in _PATTERNS if p[0] not in _GENERIC]
    ordered += [p for p in _PATTERNS if p[0] in _GENERIC]
    return tuple((_HINTS[kind], re.compile(pat), _replacer(kind, kind in _GENERIC))
                 for kind, pat in ordered)


# Fast path: every pattern needs a 12-character token-like run (all vendor formats, key blocks)
# or one of these words; most command lines have neither.
_LONG_RUN = re.compile(r"[A-Za-z0-9_+/=.-]{12}")
_TRIGGER = re.compile(r"pass|pwd|secret|key|token|credential|auth|bearer|basic|://|-u|--user")


def redact(text: str) -> str:
    """``text`` with every recognised secret replaced by ``[REDACTED:<kind>]``."""
    low = text.lower()
    if not _LONG_RUN.search(text) and not _TRIGGER.search(low):
        return text
    for hints, rx, replace in _compiled():  # compiled on first use: ~25 ms, most runs never
        for h in hints:
            if h in low:
                text = rx.sub(replace, text)
                break
    return text


def kinds() -> tuple[str, ...]:
    """The secret kinds this module recognises (documented in docs/events.md)."""
    return tuple(k for k, _ in _PATTERNS)
