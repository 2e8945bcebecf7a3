"""What config.toml's [retention] table and the hold/erase options accept: property tests (any
input gives a value or a one-line reason, never a crash) and the examples that matter."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.server import config as sconfig
from corral.server import holds, retention

_toml_values = st.one_of(st.integers(-10, 10**7), st.text(max_size=20), st.booleans(),
                         st.floats(allow_nan=False), st.lists(st.integers(), max_size=2),
                         st.just("forever"), st.from_regex(r"[0-9]{1,4}[smhd]", fullmatch=True))


@given(st.dictionaries(st.text(max_size=30), _toml_values, max_size=5))
@settings(max_examples=300, deadline=None)
def test_any_retention_table_is_a_policy_or_one_reason(doc: dict[str, Any]) -> None:
    try:
        pol = retention.parse_policy(doc)
    except ValueError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("retention")
        return
    for k, v in doc.items():
        want = retention.parse_duration(k, v)
        assert (pol.default if k == "default" else pol.for_type(k)) == want
        assert want is None or want > 0
    assert pol.for_type("server.tombstone") is None


@given(st.from_regex(r"[1-9][0-9]{0,6}[smhd]|forever|[1-9][0-9]{0,5}", fullmatch=True))
def test_durations_round_trip(text: str) -> None:
    value: object = int(text) if text.isdigit() else text
    secs = retention.parse_duration("x", value)
    again = retention.shown(secs)
    assert retention.parse_duration("x", again) == secs


@pytest.mark.parametrize(("doc", "want"), [
    ({}, (30 * 86400, None)),
    ({"default": 7, "agent.user_prompt": "12h"}, (7 * 86400, 12 * 3600)),
    ({"default": "forever", "agent.user_prompt": "90m"}, (None, 5400)),
])
def test_examples(doc: dict[str, Any], want: tuple[int | None, int | None]) -> None:
    pol = retention.parse_policy(doc)
    assert (pol.default, dict(pol.per_type).get("agent.user_prompt")) == want


@pytest.mark.parametrize(("doc", "reason"), [
    ({"default": 0}, "out of range"),
    ({"default": True}, "is not a duration"),
    ({"default": "30 days"}, "is not a duration"),
    ({"Agent Prompt": 3}, "neither default nor an event name"),
    ({"server.tombstone": 3}, "kept forever"),
])
def test_refusals_name_the_reason(doc: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        retention.parse_policy(doc)
    assert any(reason in p for p in sconfig.check_document({"origin": "o", "retention": doc}))


def test_config_keys_are_checked() -> None:
    assert sconfig.check_document({"origin": "o", "retention": {"default": "7d"},
                                   "retention_interval": 60}) == []
    assert sconfig.check_document({"origin": "o", "retentoin": {}}) == [
        "unknown key `retentoin`"]


@given(st.sets(st.integers(1, 5000), max_size=200))
def test_seq_ranges_round_trip(seqs: set[int]) -> None:
    text = retention.ranges(seqs)
    assert retention.parse_ranges(text) == sorted(seqs)


_opt = st.one_of(st.none(), st.text(string.printable + "é\x00\x1f", max_size=50))


@given(_opt, _opt, _opt, _opt, _opt)
@settings(max_examples=300, deadline=None)
def test_hold_criteria_are_checked_like_query_strings(user: str | None, session: str | None,
                                                      device: str | None, since: str | None,
                                                      until: str | None) -> None:
    try:
        got = holds.parse_criteria(user, session, device, since, until)
    except holds.Refused as exc:
        assert "\n" not in str(exc)
        return
    assert got.get("user") == user and got.get("session_id") == session
    assert any(v is not None for v in got.values())
    lo, hi = got["since_ns"], got["until_ns"]
    assert lo is None or hi is None or lo < hi


@given(st.text(max_size=1200))
def test_reasons_are_one_printable_line(text: str) -> None:
    try:
        r = holds.check_reason(text)
    except holds.Refused:
        assert not text.strip() or not text.strip().isprintable() or len(text.strip()) > 1000
        return
    assert r == text.strip() and r.isprintable()


_erase_values = st.one_of(st.none(), st.booleans(), st.integers(-10, 2**70),
                          st.text(max_size=40), st.floats(allow_nan=False),
                          st.lists(st.integers(), max_size=2),
                          st.just("2026-11-01T00:00:00Z"))


@given(st.one_of(
    st.dictionaries(st.sampled_from(["user", "since", "until", "reason", "dry_run", "x"]),
                    _erase_values, max_size=6).map(lambda d: __import__("json").dumps(d).encode()),
    st.binary(max_size=60)))
@settings(max_examples=300, deadline=None)
def test_any_erase_request_body_is_a_request_or_one_reason(body: bytes) -> None:
    from corral.server import erase_api

    try:
        user, lo, hi, reason, dry = erase_api.parse(body)
    except erase_api._Bad as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert user and reason.strip() == reason and isinstance(dry, bool)
    assert lo is None or hi is None or lo < hi
    user.encode() and reason.encode()  # storable: no lone surrogates


def test_an_erase_request_with_a_lone_surrogate_is_refused() -> None:
    from corral.server import erase_api

    with pytest.raises(erase_api._Bad, match="user is required"):
        erase_api.parse(b'{"user": "a\\ud800", "reason": "r"}')
