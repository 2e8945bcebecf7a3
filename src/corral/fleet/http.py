"""One rule for reading a JSON answer (the server's and the identity provider's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corral.errors import CorralError


def json_answer(r: Any, what: str, err: Callable[[str], CorralError]) -> dict[str, Any]:
    """The answer's JSON object; ``err(line)`` names the status, or the answer that is not
    one JSON object (with at most 300 characters of what came back)."""
    if r.status_code != 200:
        line = " ".join(r.text.split())[:300] or f"HTTP {r.status_code}"
        raise err(f"{what} refused (HTTP {r.status_code}): {line}")
    try:
        doc = r.json()
    except ValueError:
        raise err(f"{what}: the answer is not JSON") from None
    if not isinstance(doc, dict):
        raise err(f"{what}: the answer is not a JSON object")
    return doc
