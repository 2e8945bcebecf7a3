"""How far the user's own request authorizes a risky finding (lexically, so it is explainable).

``high``: the request names both the act and what it acts on ("publish the package to npm" for
``npm publish``); ``medium``: it names the act only; ``low``: a request exists but does not ask
for this, or says not to; ``unknown``: there is no request to compare with.
"""

from __future__ import annotations

import re

from corral.review.findings import Finding
from corral.review.model import Authorization

_NEGATION = re.compile(r"\b(don'?t|do not|never|not|no|without|avoid|stop|refrain from)\b")
_WORD = re.compile(r"[a-z0-9_./~+-]+")


def _contains(text: str, phrase: str) -> int:
    """Index of ``phrase`` in ``text`` at word boundaries, or -1."""
    p = phrase.lower().strip()
    if not p:
        return -1
    start = 0
    while True:
        i = text.find(p, start)
        if i < 0:
            return -1
        before = text[i - 1] if i > 0 else " "
        end = i + len(p)
        for suffix in ("ing", "es", "ed", "s", "d"):  # "pushing", "publishes", "deleted"
            if p[-1].isalpha() and text.startswith(suffix, end):
                end += len(suffix)
                break
        after = text[end] if end < len(text) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            return i
        start = i + 1


def _negated(text: str, at: int) -> bool:
    """A negation in the few words just before position ``at`` ("don't push", "never delete")."""
    window = text[max(0, at - 24):at]
    return bool(_NEGATION.search(window))


def authorization(intent: str | None, finding: Finding) -> Authorization:
    if intent is None or not intent.strip():
        return "unknown"
    text = " ".join(intent[:20_000].lower().split())  # a request, not a document
    verb_at = -1
    for v in finding.verbs:
        i = _contains(text, v)
        if i >= 0:
            if _negated(text, i):
                return "low"
            verb_at = i
            break
    if verb_at < 0:
        return "low"
    if any(_contains(text, o) >= 0 for o in finding.objects if len(o) >= 2):
        return "high"
    return "medium"
