"""Secrets recognised by their value, for the environment policy.

A compact pattern set built from the published formats of credentials (fixed prefixes and
lengths of vendor tokens, the JWT layout, a password in a URL's userinfo, auth fields in
registry JSON and connection strings). Not a library: detect-secrets 1.5 costs ~180 ms to
import and ~0.3 ms per variable, and its keyword and entropy plugins flag PATH, LANG and SHELL;
this runs on every sandbox spawn. One compiled alternation; values shorter than 8 characters
are never looked at. ``kind`` names what was found, never the value.
"""

from __future__ import annotations

import re

# (label, regular expression); the label is what `--explain-env` and the journal show.
PATTERNS: tuple[tuple[str, str], ...] = (
    ("URL with a password", r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:[^\s/@]+@"),
    ("URL with a key as user", r"[A-Za-z][A-Za-z0-9+.-]*://[A-Za-z0-9_-]{16,}@"),
    ("JWT", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    ("private key", r"-----BEGIN [A-Z ]*PRIVATE KEY"),
    ("registry or service-account JSON",
     r"\"(?:auths?|_authToken|password|private_key|client_secret|refresh_token|token)\""
     r"\s*:\s*\"[^\"]{4,}"),
    ("connection string with a key",
     r"(?:^|[;&?\s])(?i:password|pwd|accountkey|sharedaccesskey|sharedaccesssignature"
     r"|client_secret|api_?key|access_token|auth_?token|_authtoken)=[^;&\s]{4,}"),
    ("authorization header value", r"^(?:Bearer|Basic|token)\s+[A-Za-z0-9._~+/=-]{16,}$"),
    ("AWS access key id", r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)"
     r"[A-Z0-9]{16}\b"),
    ("Google API key", r"\bAIza[0-9A-Za-z_-]{35}"),
    ("Google OAuth token", r"\bya29\.[0-9A-Za-z_-]{20,}|\bGOCSPX-[A-Za-z0-9_-]{20,}"
     r"|\b1//0[A-Za-z0-9_-]{30,}"),
    ("Azure client secret", r"\b[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}\b"),
    ("GitHub token", r"\bgh[pousr]_[A-Za-z0-9]{36,}|\bgithub_pat_[A-Za-z0-9_]{22,}"),
    ("GitLab token", r"\bgl(?:pat|dt|ptt|rt|cbt|imt|oas|soat|ffct|ft|agent)-[A-Za-z0-9_-]{20,}"
     r"|\bGR1348941[A-Za-z0-9_-]{20,}"),
    ("Slack token or webhook", r"\bxox[abposre]-[A-Za-z0-9-]{10,}|\bxapp-\d-[A-Za-z0-9-]{10,}"
     r"|hooks\.slack\.com/(?:services|workflows|triggers)/"),
    ("Discord webhook", r"discord(?:app)?\.com/api/webhooks/\d+/"),
    ("npm token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("PyPI token", r"\bpypi-AgE[A-Za-z0-9_-]{50,}"),
    ("Hugging Face token", r"\b(?:hf|api_org)_[A-Za-z0-9]{30,}"),
    ("OpenAI or Anthropic key", r"\bsk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    ("Stripe key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}"),
    ("SendGrid key", r"\bSG\.[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{30,}"),
    ("DigitalOcean token", r"\bdo[opr]_v1_[a-f0-9]{64}\b"),
    ("Vault token", r"\bhv[sbr]\.[A-Za-z0-9_-]{20,}"),
    ("Terraform Cloud token", r"\b[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{40,}"),
    ("Pulumi token", r"\bpul-[a-f0-9]{40}\b"),
    ("Doppler token", r"\bdp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{30,}"),
    ("Atlassian token", r"\bATATT3[A-Za-z0-9_=-]{50,}"),
    ("Shopify token", r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"),
    ("Databricks token", r"\bdapi[a-f0-9]{32}\b"),
    ("Grafana token", r"\bgl(?:c|sa)_[A-Za-z0-9_=+/-]{30,}"),
    ("Sentry token", r"\bsntr[ysu]_[A-Za-z0-9_=+/-]{30,}"),
    ("Linear / Postman / New Relic key", r"\blin_api_[A-Za-z0-9]{30,}|\bPMAK-[a-f0-9-]{30,}"
     r"|\bNRAK-[A-Z0-9]{27}\b"),
    ("Groq / Replicate / xAI / Perplexity key", r"\bgsk_[A-Za-z0-9]{40,}|\br8_[A-Za-z0-9]{30,}"
     r"|\bxai-[A-Za-z0-9]{40,}|\bpplx-[A-Za-z0-9]{40,}"),
    ("Telegram bot token", r"\b\d{8,10}:AA[A-Za-z0-9_-]{33}\b"),
    ("age secret key", r"AGE-SECRET-KEY-1[0-9A-Z]{50,}"),
    ("Twilio key", r"\bSK[0-9a-f]{32}\b"),
)

# Names that carry a secret whenever they have a value, beyond the Codex-compatible default
# excludes (*KEY*, *SECRET*, *TOKEN*, *PASSWORD*): suffixes, so that PWD or PASSWORD_STORE_DIR
# are not caught.
SECRET_NAME_SUFFIXES = ("_PASS", "_PASSWD", "_PASSPHRASE", "_CREDENTIALS",
                        "_CREDENTIAL", "_AUTH", "_AUTH_CONFIG", "_DSN", "_WEBHOOK",
                        "_WEBHOOK_URL", "_COOKIE")
# Values that are settings, not secrets, even under such a name (DB_PASS=none, X_AUTH=/path).
EVERYDAY_VALUES = frozenset({"0", "1", "true", "false", "yes", "no", "none", "off", "on"})

_compiled: re.Pattern[str] | None = None


def _regex() -> re.Pattern[str]:
    global _compiled
    if _compiled is None:
        _compiled = re.compile("|".join(f"(?P<p{i}>{rx})" for i, (_, rx) in enumerate(PATTERNS)),
                               re.MULTILINE)
    return _compiled


def kind(name: str, value: str) -> str | None:
    """What makes this variable a secret ("GitHub token", "URL with a password"...), or
    None for an everyday variable."""
    if (name.upper().endswith(SECRET_NAME_SUFFIXES) and value.strip()
            and value.lower() not in EVERYDAY_VALUES and not value.startswith(("/", "~"))):
        return "secret-bearing name"
    if len(value) < 8:
        return None
    m = _regex().search(value)
    if m is None:
        return None
    return PATTERNS[int(str(m.lastgroup)[1:])][0]
