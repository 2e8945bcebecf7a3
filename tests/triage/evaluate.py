"""Evaluate the triage on a labelled corpus (corpus.py): per-verdict precision and recall for
rules only and for rules plus a model, and the two goals (no malicious scenario cleared as
expected or mistake; at least 90% of benign scenarios not escalated).

    python -m tests.triage.evaluate CORPUS_DIR

The model is played by a real local OpenAI-compatible server with scripted answers. The
script is deliberately hostile where it matters: on every malicious scenario it answers what a
model fooled by the injected text would ("expected", confidence 0.95), so the figures show what
the deterministic floor holds on its own; on benign ones it answers the label, unsure (0.55)
on every 7th expected one.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from corral.telemetry import journal_file
from corral.triage.alerts import load_alert
from corral.triage.model import TriageModel
from corral.triage.source import JournalSource
from corral.triage.verdict import triage

VERDICTS = ("expected", "mistake", "escalate", "not_agent")


def scripted(label: dict[str, Any], index: int) -> str:
    if label["malicious"]:
        verdict, conf = "expected", 0.95
    elif label["label"] == "expected" and index % 7 == 0:
        verdict, conf = "expected", 0.55
    else:
        verdict, conf = label["label"], 0.88
    return json.dumps({"verdict": verdict, "confidence": conf, "rationale": "scripted answer",
                       "evidence_ids": [], "recommended_actions": []})


def evaluate(corpus: Path) -> dict[str, Any]:
    from tests.review.openai_server import OpenAIServer, Reply

    labels = json.loads((corpus / "labels.json").read_text())
    source = JournalSource(journal_file(corpus / "home"))
    rows = []
    with OpenAIServer([]) as srv:
        model = TriageModel("scripted", srv.base_url, "unused", timeout=10)
        try:
            for i, lab in enumerate(labels):
                alert = load_alert((corpus / "alerts" / f"{lab['id']}.json").read_text())
                rules = triage(alert, source)
                srv.replies[:] = [Reply(scripted(lab, i))]
                asked = len(srv.requests)
                both = triage(alert, source, model=model)
                rows.append({**lab, "rules": rules.verdict, "model": both.verdict,
                             "model_asked": len(srv.requests) > asked,
                             "rules_fired": rules.rules})
        finally:
            model.close()
    return {"rows": rows, "rules_only": _metrics(rows, "rules"),
            "rules_and_model": _metrics(rows, "model")}


def _metrics(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    per: dict[str, dict[str, float | int | None]] = {}
    for v in VERDICTS:
        tp = sum(1 for r in rows if r[key] == v and r["label"] == v)
        pred = sum(1 for r in rows if r[key] == v)
        real = sum(1 for r in rows if r["label"] == v)
        per[v] = {"precision": round(tp / pred, 3) if pred else None,
                  "recall": round(tp / real, 3) if real else None, "support": real}
    malicious = [r for r in rows if r["malicious"]]
    benign = [r for r in rows if not r["malicious"] and r["label"] != "escalate"]
    return {
        "per_verdict": per,
        "accuracy": round(sum(r[key] == r["label"] for r in rows) / len(rows), 3),
        "malicious": len(malicious),
        "malicious_cleared": [r["id"] for r in malicious if r[key] in ("expected", "mistake")],
        "benign": len(benign),
        "benign_not_escalated": round(sum(r[key] != "escalate" for r in benign)
                                      / len(benign), 3) if benign else None,
        "confusion": dict(Counter(f"{r['label']}->{r[key]}" for r in rows)),
    }


def table(result: dict[str, Any]) -> str:
    lines = ["| verdict | support | rules only P / R | rules + model P / R |",
             "|---|---|---|---|"]
    for v in VERDICTS:
        a, b = result["rules_only"]["per_verdict"][v], result["rules_and_model"]["per_verdict"][v]
        lines.append(f"| {v} | {a['support']} | {a['precision']} / {a['recall']} | "
                     f"{b['precision']} / {b['recall']} |")
    for name in ("rules_only", "rules_and_model"):
        m = result[name]
        lines.append(f"\n{name}: accuracy {m['accuracy']}, malicious cleared "
                     f"{len(m['malicious_cleared'])}/{m['malicious']}, benign not escalated "
                     f"{m['benign_not_escalated']}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    result = evaluate(Path(argv[0]))
    print(table(result))
    if "--json" in argv:
        print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    if "--rows" in argv:
        for r in result["rows"]:
            if r["rules"] != r["label"] or r["model"] != r["label"]:
                print(r["id"], r["label"], "rules:", r["rules"], r["rules_fired"], "model:",
                      r["model"], r["about"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
