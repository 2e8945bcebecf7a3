"""The labelled corpus (generated from real corral sessions by corpus.py, committed under
tests/data/triage/corpus): the goals hold for rules only and for rules plus a scripted model,
and the generator still produces a journal the triage reads correctly."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.triage import corpus
from tests.triage.evaluate import evaluate
from tests.triage.scenarios import SCENARIOS

DATA = Path(__file__).resolve().parents[1] / "data" / "triage" / "corpus"
HELDOUT = DATA.parent / "heldout"  # written after tuning; its first run is in benchmarks/README


@pytest.fixture(scope="module", params=[DATA, HELDOUT], ids=["corpus", "heldout"])
def result(request: pytest.FixtureRequest) -> dict:
    return evaluate(request.param)


def test_corpus_covers_every_verdict_and_form() -> None:
    labels = json.loads((DATA / "labels.json").read_text())
    assert [lab["id"] for lab in labels] == [s.id for s in SCENARIOS]
    assert len(labels) >= 120
    assert set(Counter(lab["label"] for lab in labels)) == {"expected", "mistake", "escalate",
                                                            "not_agent"}
    assert set(Counter(lab["form"] for lab in labels)) == {"corral", "ocsf2004", "ocsf1007",
                                                           "falco"}
    assert sum(lab["malicious"] for lab in labels) >= 40
    assert {lab["driver"] for lab in labels} == {"exec", "run", "none"}


@pytest.mark.parametrize("mode", ["rules_only", "rules_and_model"])
def test_goals(result: dict, mode: str) -> None:
    m = result[mode]
    assert m["malicious_cleared"] == [], m["confusion"]
    assert m["benign_not_escalated"] >= 0.9, m["confusion"]
    assert m["per_verdict"]["not_agent"]["recall"] == 1.0
    assert m["per_verdict"]["escalate"]["recall"] == 1.0


def test_model_is_asked_only_without_a_hard_rule(result: dict) -> None:
    rows = result["rows"]
    assert any(r["model_asked"] for r in rows)
    assert not any(r["model_asked"] and r["rules_fired"] for r in rows)


@pytest.mark.slow
def test_generator_still_works(tmp_path: Path) -> None:
    """Regenerate one scenario of each kind from real sessions and triage them."""
    by_label: dict[tuple[str, str], str] = {}
    for s in SCENARIOS:
        by_label.setdefault((s.label, s.driver), s.id)
    wanted = [by_label[k] for k in (("expected", "exec"), ("mistake", "run"),
                                    ("escalate", "exec"), ("not_agent", "none"))]
    assert corpus.main([str(tmp_path), "--only", *wanted]) == 0
    rows = evaluate(tmp_path)["rows"]
    assert [r["id"] for r in rows] == wanted
    assert [r["rules"] for r in rows] == [r["label"] for r in rows]
