"""Secrets recognised by their value, for the environment policy.

A compact pattern set built from the published formats of credentials (fixed prefixes and
lengths of vendor tokens, the JWT layout, a password in a URL's userinfo, auth fields in
registry JSON and connection strings). Not a library: detect-secrets 1.5 costs ~180 ms to
import and ~0.3 ms per variable, and its keyword and entropy plugins flag PATH, LANG and SHELL;
this runs on every sandbox spawn. Shapes are only searched for when their mark is in the
value, and token formats are tried once at the start of each run of token characters, so paths
and settings cost a few microseconds; values shorter than 8 characters are never looked at.
``kind`` names what was found, never the value.
"""

from __future__ import annotations

import functools
import re

# Shapes found anywhere in a value, each only looked for when its mark is in it:
# (label, mark, regular expression). The label is what `--explain-env` and the journal show.
SHAPES: tuple[tuple[str, str, str], ...] = (
    # (the scheme starts at a boundary and is bounded: no quadratic rescans of long runs)
    ("URL with a password", "://", r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,30}://"
     r"[^\s/@:]*:[^\s/@]+@"),
    ("URL with a key as user", "://", r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,30}://"
     r"[A-Za-z0-9_-]{16,}@"),
    ("JWT", "eyJ", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    ("private key", "PRIVATE KEY", r"-----BEGIN [A-Z ]*PRIVATE KEY"),
    ("registry or service-account JSON", '"',
     r"\"(?:auths?|_authToken|password|private_key|client_secret|refresh_token|token)\""
     r"\s*:\s*\"[^\"]{4,}"),
    ("connection string with a key", "=",
     r"(?:^|[;&?\s])(?i:password|pwd|accountkey|sharedaccesskey|sharedaccesssignature"
     r"|client_secret|api_?key|access_token|auth_?token|_authtoken)=[^;&\s]{4,}"),
    ("authorization header value", " ", r"^(?:Bearer|Basic|token)\s+[A-Za-z0-9._~+/=-]{16,}$"),
    ("Slack token or webhook", "hooks.slack.com",
     r"hooks\.slack\.com/(?:services|workflows|triggers)/"),
    ("Discord webhook", "webhooks/", r"discord(?:app)?\.com/api/webhooks/\d+/"),
    ("Telegram bot token", ":AA", r"(?<![0-9])\d{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])"),
    ("age secret key", "AGE-SECRET-KEY-1", r"AGE-SECRET-KEY-1[0-9A-Z]{50,}"),
)
# Vendor token formats, matched at the start of each run of token characters (``_TOKEN``) of
# a value: one anchored attempt per run instead of a search at every position.
TOKENS: tuple[tuple[str, str], ...] = (
    ("AWS access key id", r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)"
     r"[A-Z0-9]{16}(?![A-Za-z0-9])"),
    ("Google API key", r"AIza[0-9A-Za-z_-]{35}"),
    ("Google OAuth token", r"ya29\.[0-9A-Za-z_-]{20,}|GOCSPX-[A-Za-z0-9_-]{20,}"
     r"|1//0[A-Za-z0-9_-]{30,}"),
    ("Azure client secret", r"[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9])"),
    ("GitHub token", r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}"),
    ("GitLab token", r"gl(?:pat|dt|ptt|rt|cbt|imt|oas|soat|ffct|ft|agent)-[A-Za-z0-9_-]{20,}"
     r"|GR1348941[A-Za-z0-9_-]{20,}"),
    ("Slack token or webhook", r"xox[abposre]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,}"),
    ("npm token", r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    ("PyPI token", r"pypi-AgE[A-Za-z0-9_-]{50,}"),
    ("Hugging Face token", r"(?:hf|api_org)_[A-Za-z0-9]{30,}"),
    ("OpenAI or Anthropic key", r"sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    ("Stripe key", r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}"),
    ("SendGrid key", r"SG\.[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{30,}"),
    ("DigitalOcean token", r"do[opr]_v1_[a-f0-9]{64}(?![A-Za-z0-9])"),
    ("Vault token", r"hv[sbr]\.[A-Za-z0-9_-]{20,}"),
    ("Terraform Cloud token", r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_-]{40,}"),
    ("Pulumi token", r"pul-[a-f0-9]{40}(?![A-Za-z0-9])"),
    ("Doppler token", r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{30,}"),
    ("Atlassian token", r"ATATT3[A-Za-z0-9_-]{50,}"),
    ("Shopify token", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}(?![A-Za-z0-9])"),
    ("Databricks token", r"dapi[a-f0-9]{32}(?![A-Za-z0-9])"),
    ("Grafana token", r"gl(?:c|sa)_[A-Za-z0-9_+/-]{30,}"),
    ("Sentry token", r"sntr[ysu]_[A-Za-z0-9_+/-]{30,}"),
    ("Linear / Postman / New Relic key", r"lin_api_[A-Za-z0-9]{30,}|PMAK-[a-f0-9-]{30,}"
     r"|NRAK-[A-Z0-9]{27}(?![A-Za-z0-9])"),
    ("Groq / Replicate / xAI / Perplexity key", r"gsk_[A-Za-z0-9]{40,}|r8_[A-Za-z0-9]{30,}"
     r"|xai-[A-Za-z0-9]{40,}|pplx-[A-Za-z0-9]{40,}"),
    ("Twilio key", r"SK[0-9a-f]{32}(?![A-Za-z0-9])"),
)
LABELS = tuple(dict.fromkeys(label for label, *_ in (*SHAPES, *TOKENS)))

# Names that carry a secret whenever they have a value, beyond the Codex-compatible default
# excludes (*KEY*, *SECRET*, *TOKEN*, *PASSWORD*): suffixes, so that PWD or PASSWORD_STORE_DIR
# are not caught.
SECRET_NAME_SUFFIXES = ("_PASS", "_PASSWD", "_PASSPHRASE", "_CREDENTIALS",
                        "_CREDENTIAL", "_AUTH", "_AUTH_CONFIG", "_DSN", "_WEBHOOK",
                        "_WEBHOOK_URL", "_COOKIE")
# Values that are settings, not secrets, even under such a name (DB_PASS=none, X_AUTH=/path).
EVERYDAY_VALUES = frozenset({"0", "1", "true", "false", "yes", "no", "none", "off", "on"})

# A run of token characters (no ``:``, ``=``, ``@``: separators in settings and URLs) long
# enough for the shortest format above (``xoxb-`` and 10 more).
_TOKEN = re.compile(r"[A-Za-z0-9_.~+/-]{15,}")
# Every token format above starts with one of these, or contains one of the infixes (Azure
# secrets, Terraform tokens): a run without them is not tried, and the alternation is compiled
# only the first time a run could match (compiling it costs ~10 ms of every sandbox spawn).
# tests/sandbox/test_secret_env.py checks generated examples of every format pass this filter.
TOKEN_STARTS = (
    "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "AROA", "APKA",
    "ASCA", "AIza", "ya29.", "GOCSPX-", "1//0", "gh", "github_pat_", "gl", "GR1348941", "xox", "xapp-", "npm_",
    "pypi-", "hf_", "api_org_", "sk-", "sk_", "rk_", "SG.", "do", "hv", "pul-", "dp.", "ATATT3",
    "shp", "dapi", "sntr", "lin_api_", "PMAK-", "NRAK-", "gsk_", "r8_", "xai-", "pplx-", "SK",
)
TOKEN_INFIXES = ("Q~", ".atlasv1.")


def may_be_token(run: str) -> bool:
    return run.startswith(TOKEN_STARTS) or any(i in run for i in TOKEN_INFIXES)


@functools.cache
def _shape(i: int) -> re.Pattern[str]:
    return re.compile(SHAPES[i][2], re.MULTILINE)


@functools.cache
def _tokens() -> re.Pattern[str]:
    return re.compile("|".join(f"(?P<t{i}>{rx})" for i, (_, rx) in enumerate(TOKENS)))


def kind(name: str, value: str) -> str | None:
    """What makes this variable a secret ("GitHub token", "URL with a password"...), or
    None for an everyday variable."""
    if (name.upper().endswith(SECRET_NAME_SUFFIXES) and value.strip()
            and value.lower() not in EVERYDAY_VALUES and not value.startswith(("/", "~"))):
        return "secret-bearing name"
    if len(value) < 8:
        return None
    for i, (label, mark, _rx) in enumerate(SHAPES):
        if mark in value and _shape(i).search(value):
            return label
    for run in _TOKEN.finditer(value):
        if not may_be_token(run.group()):
            continue
        m = _tokens().match(value, run.start(), run.end())
        if m is not None:
            return TOKENS[int(str(m.lastgroup)[1:])][0]
    return None
