"""Content tiers, enforced in one place: every emit goes through ``apply_tier``.

* 0: metadata only — content is dropped entirely.
* 1 (default): plus the length (UTF-8 bytes) and SHA-256 of each content field, enough to join
  an event to the same prompt, arguments or output seen elsewhere without storing them.
* 2: plus the content itself, with secrets redacted.

Attributes the schema marks ``redact`` (command lines, rationales, grant patterns) are redacted at
every tier: they are metadata, but they can carry secrets.
"""

from __future__ import annotations

from corral.telemetry.redact import redact
from corral.telemetry.schema import SPECS, AttrValue
from corral.telemetry.sha import sha256_hex

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:
    from typing import Any

DEFAULT_TIER = 1
TIERS = (0, 1, 2)
MAX_CONTENT_CHARS = 65_536  # tier-2 content kept per field; length and hash cover all of it
_REDACT_MARGIN = 8_192  # longer than any secret pattern, so cutting first cannot leak a prefix

# Short content keys callers pass -> attribute base name on the wire.
CONTENT_ATTRS = {
    "prompt": "prompt",
    "output": "gen_ai.tool.call.result",
    "arguments": "gen_ai.tool.call.arguments",
}


def content_attr(key: str) -> str:
    return CONTENT_ATTRS.get(key, key)


def apply_tier(
    name: str, attributes: dict[str, Any], content: dict[str, str] | None, tier: int
) -> dict[str, AttrValue]:
    """The attributes to record for an event at ``tier``: redacted metadata plus tiered content."""
    out: dict[str, AttrValue] = {}
    spec = SPECS.get(name)
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, list):
            value = tuple(value)
        if spec is not None and isinstance(value, str):
            s = spec.get(key)
            if s is not None and s.redact:
                value = redact(value)
        out[key] = value
    if content and tier > 0:
        for key, text in content.items():
            data = text.encode("utf-8", "surrogatepass")
            base = content_attr(key)
            out[f"{base}.length"] = len(data)
            out[f"{base}.sha256"] = sha256_hex(data)
            if tier >= 2:
                if len(text) > MAX_CONTENT_CHARS:
                    out[base] = redact(text[: MAX_CONTENT_CHARS + _REDACT_MARGIN])[
                        :MAX_CONTENT_CHARS]
                    out[f"{base}.truncated"] = True
                else:
                    out[base] = redact(text)
    return out


def resolve_tier(cfg: Any | None) -> tuple[int, str]:
    """The content tier in force and where it came from. Requirements win over config."""
    if cfg is None:
        return DEFAULT_TIER, "default"
    forced = cfg.requirements.get("telemetry.content_tier")
    if forced is not None:
        return _check(forced, "requirements"), "requirements"
    value = cfg.get("telemetry.content_tier")
    if value is None:
        return DEFAULT_TIER, "default"
    return _check(value, "config"), "config"


def _check(value: Any, where: str) -> int:
    from corral.errors import CorralError

    if isinstance(value, bool) or not isinstance(value, int) or value not in TIERS:
        raise CorralError(
            "telemetry", f"telemetry.content_tier from {where} must be 0, 1 or 2, got {value!r}"
        )
    return value
