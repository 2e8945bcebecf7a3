"""A validator for OCSF events against the schema source kept in ``corral/server/ocsf`` (OCSF
1.8.0, Apache-2.0; see its README.md).

The schema source is what the OCSF project publishes: classes that extend a category class and
``base_event``, ``$include``d profiles, attribute types in ``dictionary.json`` and objects that
extend other objects. This resolves those the way the OCSF server compiles them, enough to check
what corral emits: every attribute known to the class (or its profiles), scalar types, enum
values, required attributes, ``at_least_one``/``just_one`` constraints, and the class, category
and type ids. It is used by the tests (the SIEM formats must validate) and costs nothing at run
time.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).with_name("ocsf")

_IDS = ("class_uid", "category_uid", "type_uid")  # checked against the class by validate()
_SCALARS: dict[str, type | tuple[type, ...]] = {"string_t": str, "integer_t": int, "long_t": int, "float_t": (int, float),
            "boolean_t": bool}


def _load(rel: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((ROOT / rel).read_text())
    return doc


@functools.cache
def _dictionary() -> dict[str, Any]:
    return _load("dictionary.json")


@functools.cache
def _index(kind: str) -> dict[str, str]:
    out = {}
    for p in (ROOT / kind).rglob("*.json"):
        out[json.loads(p.read_text())["name"]] = str(p.relative_to(ROOT))
    return out


def version() -> str:
    return str(_load("version.json")["version"])


def _merge(into: dict[str, dict[str, Any]], doc: dict[str, Any], profile: str | None) -> None:
    attrs = doc.get("attributes", {})
    inc = attrs.get("$include", [])
    for rel in [inc] if isinstance(inc, str) else inc:
        prof = _load(rel)
        _merge(into, prof, prof.get("name"))
    for name, spec in attrs.items():
        if name == "$include" or not isinstance(spec, dict):
            continue
        cur = dict(into.get(name, {}))
        cur.update(spec)
        if profile is not None and "profile" not in spec and name not in into:
            cur["profile"] = profile
        into[name] = cur


@functools.cache
def _resolved(kind: str, name: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """(attributes, the class or object document) with the extends chain applied."""
    doc = _load(_index(kind)[name])
    attrs: dict[str, dict[str, Any]] = {}
    parent = doc.get("extends")
    if parent and parent != "object" and parent in _index(kind):
        attrs = {k: dict(v) for k, v in _resolved(kind, parent)[0].items()}
    inherited = {k: dict(v.get("enum", {})) for k, v in attrs.items()}
    _merge(attrs, doc, None)
    d = _dictionary()["attributes"]
    for k, spec in attrs.items():
        base = dict(d.get(k, {}))
        base.update(spec)
        if "enum" in spec:  # a class adds to the enum it inherits (0 Unknown, 99 Other, ...)
            base["enum"] = {**d.get(k, {}).get("enum", {}), **inherited.get(k, {}),
                            **spec["enum"]}
        if k in _IDS:
            base.pop("enum", None)
        attrs[k] = base
    return attrs, doc


def class_uid(name: str) -> int:
    _, doc = _resolved("events", name)
    cats = _load("categories.json")["attributes"]
    cat = doc.get("category") or _resolved("events", doc["extends"])[1].get("category")
    if cat not in cats:  # base_event: category "other", class 0
        return 0
    return int(cats[cat]["uid"]) * 1000 + int(doc["uid"])


def validate(event: dict[str, Any], class_name: str) -> list[str]:
    """Problems with ``event`` as an instance of ``class_name`` (empty when valid)."""
    attrs, doc = _resolved("events", class_name)
    problems = _check(event, attrs, doc, class_name)
    cuid = class_uid(class_name)
    if event.get("class_uid") != cuid:
        problems.append(f"class_uid is {event.get('class_uid')}, {class_name} is {cuid}")
    if event.get("category_uid") != cuid // 1000:
        problems.append(f"category_uid is {event.get('category_uid')}, not {cuid // 1000}")
    act = event.get("activity_id")
    if isinstance(act, int) and event.get("type_uid") != cuid * 100 + act:
        problems.append(f"type_uid is {event.get('type_uid')}, not {cuid * 100 + act}")
    return problems


def _check(value: dict[str, Any], attrs: dict[str, dict[str, Any]], doc: dict[str, Any],
           where: str) -> list[str]:
    out: list[str] = []
    for k, v in value.items():
        spec = attrs.get(k)
        if spec is None:
            out.append(f"{where}.{k}: not an attribute of {doc['name']}")
            continue
        out += _typed(v, spec, f"{where}.{k}")
    for k, spec in attrs.items():
        if spec.get("requirement") == "required" and not spec.get("profile") and k not in value:
            out.append(f"{where}.{k}: required by {doc['name']}, missing")
    cons = doc.get("constraints", {})
    if cons.get("at_least_one") and not any(k in value for k in cons["at_least_one"]):
        out.append(f"{where}: needs at least one of {', '.join(cons['at_least_one'])}")
    if cons.get("just_one") and sum(k in value for k in cons["just_one"]) != 1:
        out.append(f"{where}: needs exactly one of {', '.join(cons['just_one'])}")
    return out


def _typed(v: Any, spec: dict[str, Any], where: str) -> list[str]:
    if spec.get("is_array"):
        if not isinstance(v, list):
            return [f"{where}: must be an array"]
        return [p for i, x in enumerate(v) for p in _one(x, spec, f"{where}[{i}]")]
    return _one(v, spec, where)


def _one(v: Any, spec: dict[str, Any], where: str) -> list[str]:
    t = spec.get("type", "")
    types = _dictionary()["types"]["attributes"]
    if t == "object":  # unmapped and similar: any object
        return [] if isinstance(v, dict) else [f"{where}: must be an object"]
    if t in _index("objects"):
        if not isinstance(v, dict):
            return [f"{where}: must be a {t} object"]
        oattrs, odoc = _resolved("objects", t)
        return _check(v, oattrs, odoc, where)
    if t == "json_t":
        return []
    base = t
    while base not in _SCALARS and base in types and types[base].get("type"):
        base = types[base]["type"]
    py = _SCALARS.get(base)
    if py is None:
        return [f"{where}: unknown type {t}"]
    if (isinstance(v, bool) and base != "boolean_t") or not isinstance(v, py):
        return [f"{where}: must be {t}, got {type(v).__name__}"]
    enum = spec.get("enum")
    if enum and str(v) not in enum:
        return [f"{where}: {v!r} is not one of {', '.join(sorted(enum))}"]
    return []
