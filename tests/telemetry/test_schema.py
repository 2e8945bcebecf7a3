"""Schema v1: validation of every emit, typed events, and docs/events.md kept complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.telemetry import schema
from corral.telemetry.content import CONTENT_ATTRS
from corral.telemetry.schema import (
    SPECS,
    ApprovalGrant,
    ConfigChange,
    McpCall,
    NetworkDecision,
    SandboxOutcome,
    SessionStart,
    ToolDecision,
    ToolResult,
    validate,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_typed_events_are_valid() -> None:
    samples = [
        SessionStart.from_summary({"approval": "on-request"}, approval_policy="on-request",
                                  config_sources=("/etc/corral/config.toml",)),
        ToolDecision(tool_name="shell", decision="approved_for_session", source="user"),
        ToolResult(tool_name="shell", tool_kind="shell", exit_code=1, duration_ms=3.5,
                   success=False, output="x"),
        SandboxOutcome(tool_name="shell", outcome="escalation_approved", escalated=True),
        NetworkDecision(decision="deny", host="example.com", port=443, source="rule",
                        protocol="https_connect"),
        McpCall(server="github", tool_name="create_issue", method="tools/call", arguments="{}"),
        ApprovalGrant(grant_id="g1", scope="project", pattern="git push", granted_by="user"),
        ConfigChange(key="approval_policy", new_value="never", old_value="on-request"),
    ]
    for ev in samples:
        assert validate(ev.NAME, ev.attributes()) is None, ev


def test_policy_hash_is_hash_of_summary() -> None:
    import hashlib

    s = SessionStart.from_summary({"b": 1, "a": [1, 2]})
    assert s.policy_summary == '{"a":[1,2],"b":1}'
    assert s.policy_hash == hashlib.sha256(s.policy_summary.encode()).hexdigest()


@pytest.mark.parametrize(("name", "attrs", "needle"), [
    ("agent.tool.decision", {"gen_ai.tool.name": "shell", "agent.decision.source": "rule"},
     "missing required attribute agent.decision"),
    ("agent.tool.decision", {"gen_ai.tool.name": "shell", "agent.decision": "maybe",
                             "agent.decision.source": "rule"}, "is not one of"),
    ("agent.tool.result", {"gen_ai.tool.name": "x", "gen_ai.tool.type": "shell",
                           "process.exit.code": "0"}, "must be int"),
    ("agent.tool.result", {"gen_ai.tool.name": "x", "gen_ai.tool.type": "shell",
                           "process.exit.code": True}, "not bool"),
    ("agent.tool.result", {"gen_ai.tool.name": "x", "gen_ai.tool.type": "shell",
                           "agent.tool.duration_ms": float("nan")}, "finite"),
    ("Agent Tool", {}, "bad event name"),
    ("agent.custom", {"seq": 3}, "bad attribute name"),
    ("agent.custom", {"x.y": {"nested": 1}}, "unsupported type"),
])
def test_bad_events_are_rejected_with_a_reason(name: str, attrs: dict, needle: str) -> None:
    problem = validate(name, attrs)
    assert problem is not None and needle in problem, problem


def test_unknown_well_formed_events_are_accepted() -> None:
    assert validate("triage.verdict", {"triage.verdict": "benign", "n": 3}) is None


def test_docs_describe_every_event_and_attribute() -> None:
    text = DOCS.read_text()
    for name, spec in SPECS.items():
        assert f"`{name}`" in text, f"docs/events.md does not document {name}"
        for attr in spec:
            assert re.search(rf"`{re.escape(attr)}`", text), f"{name}: {attr} undocumented"
    for kind in schema.DECISIONS + schema.DECISION_SOURCES + schema.TOOL_KINDS:
        assert f"`{kind}`" in text, kind
    for base in CONTENT_ATTRS.values():
        assert f"`{base}.sha256`" in text


_scalar = (st.text(max_size=40) | st.integers(min_value=-(2**62), max_value=2**62)
           | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
           | st.lists(st.text(max_size=10), max_size=3))
_key = st.from_regex(r"[a-z][a-z0-9_]{0,8}\.[a-z0-9_]{1,8}", fullmatch=True)


@settings(deadline=None)
@given(st.dictionaries(_key, _scalar, max_size=8), st.text(max_size=30))
def test_records_round_trip_through_canonical_json(attrs: dict, prompt: str) -> None:
    import json

    from corral.telemetry.content import apply_tier
    from corral.telemetry.journal import canonical
    from corral.telemetry.schema import Event

    assert validate("agent.custom", attrs) is None
    ev = Event(id="01ARZ3NDEKTSV4RRFFQ69G5FAV", name="agent.custom", time_unix_nano=1,
               session_id="s", turn_id=None, call_id="c", user="u", host="h", agent_name="a",
               agent_version="", corral_version="0", tier=2,
               attributes=apply_tier("agent.custom", attrs, {"prompt": prompt}, 2), seq=5)
    body = canonical(ev.to_record())
    back = Event.from_record(json.loads(body))
    assert back == ev
    assert canonical(back.to_record()) == body  # canonical form is stable


@settings(deadline=None)
@given(st.text(max_size=80))
def test_traceparent_parser_never_crashes(text: str) -> None:
    from corral.telemetry.stamp import parse_traceparent

    out = parse_traceparent(text)
    assert out is None or (len(out[0]) == 32 and len(out[1]) == 16)


@pytest.mark.parametrize(("source", "expected"), [
    ("/home/u/.corral/rules/default.rules:12", ("rule", "/home/u/.corral/rules/default.rules:12")),
    ("heuristic:safe_read_only", ("heuristic", "heuristic:safe_read_only")),
    ("unparsed", ("heuristic", "unparsed")),
    ("requirements", ("requirements", None)),
    ("automated_reviewer", ("automated_reviewer", None)),
    ("user", ("user", None)),
    ("hook", ("hook", None)),
])
def test_decision_from_shared_provenance(source: str, expected: tuple) -> None:
    from corral.types import Provenance

    ev = ToolDecision.from_provenance("shell", "forbidden", Provenance(source, "because"),
                                      command_line="rm -rf /")
    assert (ev.source, ev.rule) == expected and ev.rationale == "because"
    assert validate(ev.NAME, ev.attributes()) is None


def test_events_carry_the_installed_distribution_version() -> None:
    """The envelope's version comes from corral.__version__ (fast); it must be what pip
    installed, so pyproject.toml and the constant cannot drift apart."""
    from importlib.metadata import version

    import corral
    from corral.telemetry.api import _corral_version

    assert _corral_version() == corral.__version__ == version("corral")


def test_specs_read_from_annotation_strings_match_the_evaluated_types() -> None:
    """SPECS are built from the fields' annotation strings without typing.get_type_hints (ms on
    every corral exec); they must be what the evaluated annotations say."""
    for cls in schema.EVENT_TYPES:
        hints = schema.evaluated_hints(cls)
        for f in schema.fields(cls):
            name = f.metadata.get("attr")
            if name:
                types, required = schema._types_of(hints[f.name])
                spec = schema.SPECS[cls.NAME][name]
                assert (spec.types, spec.required) == (types, required), (cls.NAME, name)


def test_event_classes_behave_as_frozen_dataclasses() -> None:
    """The event classes are built without dataclasses' code generation (every corral exec
    imports them): construction, defaults, immutability, equality, hash and repr as before."""
    t = ToolDecision(tool_name="shell", decision="approved", source="rule")
    assert t == ToolDecision("shell", "approved", "rule") and t != SessionStart()
    assert hash(t) == hash(ToolDecision("shell", "approved", "rule"))
    assert t.rule is None and ToolDecision.rule is None  # defaults, also on the class
    assert repr(t).startswith("ToolDecision(tool_name='shell', decision='approved', ")
    with pytest.raises(AttributeError):
        t.decision = "denied"  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing required argument 'decision'"):
        ToolDecision(tool_name="shell")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        ToolDecision("shell", "approved", "rule", nope=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values"):
        ToolDecision("shell", tool_name="shell")  # type: ignore[misc]
    assert [f.name for f in schema.fields(ToolDecision)][:3] == ["tool_name", "decision",
                                                                 "source"]
