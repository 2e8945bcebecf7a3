"""Alert -> correlation -> evidence -> hard rules -> model -> verdict, and its records.

The order is the safety argument: hard rules are decided before the model is asked and the
model cannot lower them; with no agent in the journal the answer is ``not_agent`` without a
model; a model answer that failed, is unsure (below ``min_confidence``) or contradicts the
correlation (``not_agent`` for a linked session) is ``escalate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corral.telemetry.redact import redact
from corral.triage.alerts import Alert
from corral.triage.correlate import correlate
from corral.triage.evidence import HISTORY_EVENTS, EvidencePack, gather
from corral.triage.finding import finding_fields
from corral.triage.model import PROMPT_VERSION, ModelAnswer, TriageModel
from corral.triage.rules import hard_rules, rules_verdict
from corral.triage.source import EventSource

ACTIONS = {
    "not_agent": ["Return the alert to the SOC queue: no agent session explains it."],
    "expected": ["Close the alert as expected agent behaviour; no action needed."],
    "mistake": ["Tell the user what the agent did and undo it if needed.",
                "Tighten the project's rules or approvals so it is asked next time."],
    "escalate": ["Escalate to incident response.",
                 "Stop the agent session and revoke its standing approvals (corral grants).",
                 "Verify the journal (corral log verify) and preserve it."],
}


@dataclass
class Verdict:
    verdict: str
    confidence: float
    rationale: str
    evidence: list[dict[str, str]] = field(default_factory=list)
    session_id: str | None = None
    call_id: str | None = None
    user_request: dict[str, Any] | None = None
    recommended_actions: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    model: str | None = None
    model_failure: str | None = None
    alert_id: str | None = None
    id: str | None = None  # the triage.verdict event id, once recorded

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "verdict": self.verdict,
                "confidence": round(self.confidence, 3), "rationale": self.rationale,
                "evidence": self.evidence, "session_id": self.session_id,
                "call_id": self.call_id, "user_request": self.user_request,
                "recommended_actions": self.recommended_actions, "rules": self.rules,
                "model": self.model, "model_failure": self.model_failure,
                "alert_id": self.alert_id}


def _user_request(pack: EvidencePack) -> dict[str, Any] | None:
    reqs = [r for r in pack.requests if r.get("for_matched_call")] or pack.requests
    if not reqs:
        return None
    reqs.sort(key=lambda r: (not r["trusted"], -r["time_unix_nano"]))  # corral's own first
    r = reqs[0]
    return {"event_id": r["event_id"], "trusted": r["trusted"], "origin": r["origin"],
            "tier": r["tier"], "text": r.get("prompt"), "length": r.get("prompt.length"),
            "sha256": r.get("prompt.sha256")}


def triage(alert: Alert, source: EventSource, *, model: TriageModel | None = None,
           model_name: str | None = None, min_confidence: float = 0.7,
           window_s: float = 600.0, history_events: int = HISTORY_EVENTS) -> Verdict:
    """The verdict for one alert (nothing is recorded here; see ``record``)."""
    corr = correlate(alert, source, window_s=window_s)
    pack = gather(corr, source, history_events=history_events)
    hits = hard_rules(alert, corr, pack)
    base = rules_verdict(alert, corr, pack, hits)
    evidence = [{"event_id": lk["event_id"], "name": lk["name"], "why": lk["why"]}
                for lk in pack.links]
    names = {e["event_id"]: e["name"] for e in evidence}
    for sec in (pack.decisions, pack.results, pack.network, pack.sandbox):
        names.update({r["event_id"]: r["name"] for r in sec})
    for h in hits:
        evidence += [{"event_id": i, "name": names.get(i, ""), "why": f"{h.rule}: {h.why}"}
                     for i in h.event_ids]
    evidence += [{"event_id": i, "name": names.get(i, ""), "why": base["rationale"]}
                 for i in base.get("cited", []) if i not in {e["event_id"] for e in evidence}]
    v = Verdict(base["verdict"], float(base["confidence"]), base["rationale"],
                session_id=corr.session_id, call_id=corr.call_ids[0] if corr.call_ids else None,
                user_request=_user_request(pack), rules=sorted({h.rule for h in hits}),
                alert_id=alert.id, model=None)
    ask = model is not None and not hits and corr.session_id is not None
    if ask and model is not None:
        v.model = model_name or model.model
        doc = {"prompt_version": PROMPT_VERSION, "alert": alert.summary(),
               "evidence": pack.to_json(), "deterministic_floor": {
                   "verdict": base["verdict"], "rationale": base["rationale"]}}
        answer = model.ask(doc, pack.event_ids())
        _combine(v, answer, min_confidence)
        for i in answer.evidence_ids:
            if i not in {e["event_id"] for e in v.evidence}:
                evidence.append({"event_id": i, "name": names.get(i, ""),
                                 "why": "cited by the model"})
        v.recommended_actions = answer.recommended_actions
    v.evidence = evidence[:50]
    v.rationale = redact(v.rationale)
    if not v.recommended_actions or (v.verdict == "escalate" and v.model_failure):
        v.recommended_actions = list(ACTIONS[v.verdict])
    return v


def run(alert: Alert, source: EventSource, setting: Callable[[str], Any],
        model: str | None = None) -> Verdict:
    """``triage`` with the ``[triage]`` settings (``setting("model")``, ``"base_url"``, ... from
    corral's config or a server's config.toml). ``model``: a model name, ``"none"`` for rules
    only, None for the configured one (or rules only when none is)."""
    from corral.triage.model import TriageModel, api_key

    chosen = model if model is not None else setting("model")
    mdl = None
    if chosen and chosen != "none":
        base_url = setting("base_url")
        mdl = TriageModel(str(chosen), base_url, api_key(setting("api_key_env"), base_url),
                          timeout=float(setting("timeout_seconds") or 60.0))
    try:
        return triage(alert, source, model=mdl, model_name=str(chosen) if mdl else None,
                      min_confidence=float(_or(setting("min_confidence"), 0.7)),
                      window_s=float(_or(setting("window_seconds"), 600)),
                      history_events=int(_or(setting("history_events"), HISTORY_EVENTS)))
    finally:
        if mdl is not None:
            mdl.close()


def _or(value: Any, default: float) -> Any:
    return default if value is None else value


def _combine(v: Verdict, answer: ModelAnswer, min_confidence: float) -> None:
    if answer.failed:
        v.verdict, v.confidence, v.model_failure = "escalate", 0.0, answer.failed
        v.rationale = f"the model step failed ({answer.failed}); failing closed"
        return
    if answer.verdict == "not_agent":
        v.verdict, v.confidence = "escalate", answer.confidence
        v.rationale = ("the model said no agent did it, but corral's journal links a session: "
                       f"escalated. Model: {answer.rationale}")
        return
    if answer.confidence < min_confidence:
        v.verdict, v.confidence = "escalate", answer.confidence
        v.rationale = (f"the model was not confident enough ({answer.confidence:.2f} < "
                       f"{min_confidence:.2f}) to clear it as {answer.verdict}: "
                       f"{answer.rationale}")
        return
    v.verdict, v.confidence, v.rationale = answer.verdict, answer.confidence, answer.rationale


# -- records -----------------------------------------------------------------------------------


def event_attributes(v: Verdict, alert: Alert) -> dict[str, Any]:
    """The ``triage.verdict`` event's attributes (docs/triage.md)."""
    attrs: dict[str, Any] = {
        "triage.verdict": v.verdict, "triage.confidence": float(v.confidence),
        "triage.rationale": redact(v.rationale)[:4000], "triage.alert.form": alert.form,
        "triage.evidence.ids": [e["event_id"] for e in v.evidence][:50],
        "triage.rules": list(v.rules), "triage.prompt.version": PROMPT_VERSION,
    }
    for key, val in (("triage.alert.id", alert.id), ("triage.alert.title", alert.title),
                     ("triage.session.id", v.session_id), ("triage.call.id", v.call_id),
                     ("triage.model", v.model), ("triage.model.failure", v.model_failure)):
        if val:
            attrs[key] = redact(str(val))[:1000]
    return attrs


def to_ocsf(v: Verdict, alert: Alert, time_ms: int) -> dict[str, Any]:
    """The verdict as an OCSF Detection Finding (class 2004) for a SIEM: severity, confidence
    and ``finding_info`` as the server renders the recorded event (``triage.finding``)."""
    return {
        "class_uid": 2004, "category_uid": 2, "activity_id": 1, "type_uid": 200401,
        "time": time_ms, "status_id": 1,
        **finding_fields(event_attributes(v, alert), v.id),
        "metadata": {"version": "1.8.0", **({"uid": v.id} if v.id else {}),
                     "product": {"name": "corral triage", "vendor_name": "corral"}},
        "evidences": [{"data": e} for e in v.evidence],
        "remediation": {"desc": " ".join(v.recommended_actions)},
        **({"device": {"hostname": alert.host, "type_id": 0}} if alert.host else {}),
        "unmapped": {"corral": {"session_id": v.session_id, "call_id": v.call_id,
                                "rules": v.rules, "model": v.model}},
    }
