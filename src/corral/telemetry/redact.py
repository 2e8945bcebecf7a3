"""Secret redaction for content that leaves the agent (tier 2 content, command lines).

One pass of one combined regular expression, so redaction stays cheap enough for the emit path.
Each pattern names the kind of secret it found: ``[REDACTED:github_token]`` tells an analyst what
was there without saying what it was. Patterns may keep a harmless prefix (``password=``,
``Bearer ``, ``https://user:``) in a group named ``keep``.
"""

from __future__ import annotations

import re

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


# Patterns that recognise a secret by its surroundings rather than its own format. They run in a
# second pass, so a vendor token after "token " is named by its vendor, and never re-redact.
_GENERIC = {"bearer_token", "basic_auth", "url_password", "azure_account_key", "json_secret",
            "assigned_secret", "cli_user_password", "cli_password"}


def _compile(generic: bool) -> re.Pattern[str]:
    parts = []
    for i, (kind, pat) in enumerate(_PATTERNS):
        if (kind in _GENERIC) != generic:
            continue
        flags = ""
        if pat.startswith("(?i)"):
            flags, pat = "(?i:", pat[4:]
        body = pat.replace("(?P<keep>", f"(?P<k{i}>")
        parts.append(f"(?P<p{i}>{flags}{body}{')' if flags else ''})")
    return re.compile("|".join(parts))


_SPECIFIC_RE = _compile(False)
_GENERIC_RE = _compile(True)
_KINDS = {f"p{i}": kind for i, (kind, _) in enumerate(_PATTERNS)}


def _replace(m: re.Match[str]) -> str:
    group = m.lastgroup
    # lastgroup is the outermost group that closed last: our p<i> wrapper.
    assert group is not None
    keep = m.groupdict().get(f"k{group[1:]}")
    if m.group(group)[len(keep or ""):].startswith("[REDACTED"):  # already redacted
        return m.group(group)
    return f"{keep or ''}[REDACTED:{_KINDS[group]}]"


# Cheap prefilter: every pattern above needs either a long token-like run or one of these words.
# Short ordinary strings (most command lines) skip the two full passes.
_LONG_RUN = re.compile(r"[A-Za-z0-9_+/=.-]{12,}")
_TRIGGERS = ("pass", "pwd", "secret", "key", "token", "auth", "bearer", "basic", "://",
             "-----begin", "-u", "--user", "credential", "sk-", "sk_", "xox", "eyj")


def redact(text: str) -> str:
    """``text`` with every recognised secret replaced by ``[REDACTED:<kind>]``."""
    if not _LONG_RUN.search(text):
        low = text.lower()
        if not any(t in low for t in _TRIGGERS):
            return text
    return _GENERIC_RE.sub(_replace, _SPECIFIC_RE.sub(_replace, text))


def kinds() -> tuple[str, ...]:
    """The secret kinds this module recognises (documented in docs/events.md)."""
    return tuple(k for k, _ in _PATTERNS)
