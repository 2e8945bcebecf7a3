"""Query strings of the compliance API, checked before anything touches the store, and the
content-tier view of an event.

Every parameter has a grammar; anything else is a 400 naming the parameter and the reason.
Values only ever reach SQL as bound parameters, but the grammar keeps the reasons readable and
the scans bounded (a limit above ``MAX_LIMIT`` is refused, not clamped, so a client learns it).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_NAME = re.compile(r"[a-z][a-z0-9_.]{0,127}")
_IDENT = re.compile(r"[A-Za-z0-9._:@+-]{1,128}")
_USER = re.compile(r"[^\x00-\x1f\x7f]{1,256}")
_CURSOR = re.compile(r"c(0|[1-9][0-9]{0,17})")
_INT = re.compile(r"-?[0-9]{1,19}")

EVENT_PARAMS = {"after", "limit", "name", "session_id", "user", "device", "since", "until",
                "format"}
FILE_LIST_PARAMS = {"event_type", "after", "limit"}
FILE_PARAMS = {"format"}


class BadQuery(Exception):
    """A refused query string; the message is the one-line reason."""


@dataclass(frozen=True)
class EventQuery:
    after: int
    limit: int
    names: tuple[str, ...]
    session_id: str | None
    user: str | None
    device: str | None
    since_ns: int | None
    until_ns: int | None

    def filters(self) -> dict[str, object]:
        """What the access record keeps of the request."""
        out: dict[str, object] = {"after": cursor(self.after), "limit": self.limit}
        for k in ("session_id", "user", "device", "since_ns", "until_ns"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        if self.names:
            out["name"] = list(self.names)
        return out


def cursor(seq: int) -> str:
    return f"c{seq}"


def _one(params: Mapping[str, list[str]], key: str) -> str | None:
    vals = params.get(key)
    if not vals:
        return None
    if len(vals) > 1 and key != "name":
        raise BadQuery(f"{key} given more than once")
    return vals[0]


def _check_keys(params: Mapping[str, list[str]], allowed: set[str]) -> None:
    for k in params:
        if k not in allowed:
            shown = k if len(k) <= 40 and k.isprintable() else repr(k[:40])
            raise BadQuery(f"unknown parameter {shown} (allowed: {', '.join(sorted(allowed))})")


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 7:  # not "¹" or "٣"
        raise BadQuery(f"limit must be an integer from 1 to {MAX_LIMIT}")
    n = int(raw)
    if not 1 <= n <= MAX_LIMIT:
        raise BadQuery(f"limit must be an integer from 1 to {MAX_LIMIT} (got {n})")
    return n


def parse_time(key: str, raw: str) -> int:
    """ISO-8601 (naive means UTC) or integer nanoseconds since the epoch."""
    if _INT.fullmatch(raw):
        n = int(raw)
        if not 0 <= n < 2**63:
            raise BadQuery(f"{key} is out of range")
        return n
    if len(raw) > 40:
        raise BadQuery(f"{key} must be an ISO-8601 time or nanoseconds since the epoch")
    try:
        dt = datetime.datetime.fromisoformat(raw)
    except ValueError:
        raise BadQuery(f"{key} must be an ISO-8601 time or nanoseconds since the epoch") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    try:
        ns = int(dt.timestamp()) * 10**9 + dt.microsecond * 1000
    except (OverflowError, OSError, ValueError):
        raise BadQuery(f"{key} is out of range") from None
    if not 0 <= ns < 2**63:
        raise BadQuery(f"{key} is out of range")
    return ns


def parse_name(key: str, raw: str) -> str:
    if not _NAME.fullmatch(raw):
        raise BadQuery(f"{key} must be an event name like agent.tool.decision "
                       "(lower case letters, digits, '.', '_')")
    return raw


def parse_events(params: Mapping[str, list[str]]) -> EventQuery:
    _check_keys(params, EVENT_PARAMS)
    after = 0
    raw = _one(params, "after")
    if raw is not None:
        if not _CURSOR.fullmatch(raw):
            raise BadQuery("after is not a cursor from this API (use next_cursor as given)")
        after = int(raw[1:])
    names = tuple(dict.fromkeys(parse_name("name", n) for n in params.get("name", [])))
    if len(names) > 32:
        raise BadQuery("at most 32 name filters")
    idents: dict[str, str | None] = {}
    for key, pat in (("session_id", _IDENT), ("device", _IDENT), ("user", _USER)):
        v = _one(params, key)
        if v is not None and not pat.fullmatch(v):
            raise BadQuery(f"{key} has characters or a length it cannot have")
        idents[key] = v
    since = _one(params, "since")
    until = _one(params, "until")
    since_ns = parse_time("since", since) if since is not None else None
    until_ns = parse_time("until", until) if until is not None else None
    if since_ns is not None and until_ns is not None and until_ns <= since_ns:
        raise BadQuery("until must be after since")
    return EventQuery(after, parse_limit(_one(params, "limit")), names, idents["session_id"],
                      idents["user"], idents["device"], since_ns, until_ns)


def parse_file_list(params: Mapping[str, list[str]]) -> tuple[str | None, int, int]:
    _check_keys(params, FILE_LIST_PARAMS)
    et = _one(params, "event_type")
    after = _one(params, "after")
    return (parse_name("event_type", et) if et is not None else None,
            parse_time("after", after) if after is not None else 0,
            parse_limit(_one(params, "limit")))


# -- who an event is about --------------------------------------------------------------------

def subject(doc: dict[str, Any]) -> tuple[str | None, str | None]:
    """(session id, user) of a stored event: a forwarded record's envelope, or the attributes
    of an exported or imported OTel record."""
    rec = doc.get("record")
    if isinstance(rec, str):
        try:
            rec = json.loads(rec)
        except ValueError:
            return None, None
        if isinstance(rec, dict):
            return _s(rec.get("session_id")), _s(rec.get("user"))
        return None, None
    if not isinstance(rec, dict):
        return None, None
    raw = rec.get("raw", rec)
    attrs = raw.get("attributes") if isinstance(raw, dict) else None
    if not isinstance(attrs, dict):
        return None, None
    sess = attrs.get("session.id") or attrs.get("gen_ai.conversation.id") or \
        attrs.get("conversation.id")
    user = attrs.get("user.name") or attrs.get("user.email") or attrs.get("user.id")
    return _s(sess), _s(user)


def _s(v: Any) -> str | None:
    return v if isinstance(v, str) else None


# -- content tier ---------------------------------------------------------------------------

CONTENT_KEYS = frozenset({"prompt", "output", "arguments", "gen_ai.tool.call.result",
                          "gen_ai.tool.call.arguments", "gen_ai.prompt", "gen_ai.completion",
                          "tool_input", "tool_output", "response"})
_MARKERS = (b"prompt", b"output", b"arguments", b"gen_ai.tool.call.", b"gen_ai.completion",
            b"tool_input", b"response")


def may_hold_content(leaf: bytes) -> bool:
    return any(m in leaf for m in _MARKERS)


def redact(value: Any) -> tuple[Any, bool]:
    """``value`` with every content text replaced by ``<key>.length`` and ``<key>.sha256``."""
    if isinstance(value, list):
        out_l = []
        hit = False
        for v in value:
            nv, h = redact(v)
            out_l.append(nv)
            hit |= h
        return out_l, hit
    if not isinstance(value, dict):
        return value, False
    out: dict[str, Any] = {}
    hit = False
    key = value.get("key")
    if isinstance(key, str) and key in CONTENT_KEYS and "value" in value:  # OTLP KeyValue
        text = json.dumps(value["value"], sort_keys=True)
        return {"key": key, "value": _digest(text)}, True
    for k, v in value.items():
        if k in CONTENT_KEYS and isinstance(v, str):
            d = _digest(v)
            out.setdefault(f"{k}.length", d["length"])
            out.setdefault(f"{k}.sha256", d["sha256"])
            hit = True
        elif k.endswith(".truncated") and k[:-10] in CONTENT_KEYS:
            hit = True
        elif k == "record" and isinstance(v, str) and v.startswith("{"):
            try:
                inner, h = redact(json.loads(v))
            except ValueError:
                out[k] = v
                continue
            out[k] = json.dumps(inner, sort_keys=True, separators=(",", ":"),
                                ensure_ascii=False) if h else v
            hit |= h
        else:
            nv, h = redact(v)
            out[k] = nv
            hit |= h
    return out, hit


def _digest(text: str) -> dict[str, Any]:
    data = text.encode("utf-8", "surrogatepass")
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
