"""A ``triage.verdict`` event as the fields of an OCSF Detection Finding (class 2004).

One function for both renderings: ``corral triage --ocsf`` (:func:`corral.triage.verdict.to_ocsf`)
and the server's SIEM formats (``format=ocsf``, ``corral.server.formats``) take the finding's
severity, confidence and ``finding_info`` from the event's attributes (what
:func:`corral.triage.verdict.event_attributes` records), so the two never differ. Plain data in
and out; no imports beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SEVERITY = {"not_agent": 1, "expected": 1, "mistake": 3, "escalate": 4}


def finding_fields(attrs: Mapping[str, Any], verdict_id: str | None) -> dict[str, Any]:
    """``severity_id``, ``is_alert``, ``confidence_id``/``confidence_score`` (when the event has
    a confidence) and ``finding_info`` (``uid`` = the verdict event's id, ``types`` =
    ``[verdict]``, the rationale as ``desc``, the alert as a related event)."""
    verdict = str(attrs.get("triage.verdict") or "")
    out: dict[str, Any] = {"severity_id": SEVERITY.get(verdict, 0),
                           "is_alert": verdict == "escalate"}
    conf = attrs.get("triage.confidence")
    if isinstance(conf, (int, float)) and not isinstance(conf, bool):
        out["confidence_id"] = 3 if conf >= 0.8 else 2 if conf >= 0.5 else 1
        out["confidence_score"] = round(float(conf) * 100)
    info: dict[str, Any] = {"uid": verdict_id or "", "title": f"corral triage: {verdict}",
                            "types": [verdict]}
    if attrs.get("triage.rationale"):
        info["desc"] = str(attrs["triage.rationale"])
    related: list[dict[str, Any]] = []
    if attrs.get("triage.alert.id"):  # a related event needs its uid
        related.append({"uid": str(attrs["triage.alert.id"])})
        if attrs.get("triage.alert.title"):
            related[0]["title"] = str(attrs["triage.alert.title"])
    info["related_events"] = related
    out["finding_info"] = info
    return out
