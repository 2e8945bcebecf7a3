"""Persistent grants are read back by the rules engine (and by the real codex) as written."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from corral.approvals import GrantStore, why_too_broad
from corral.errors import CorralError
from corral.rules import load_policy

_token = st.text(max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_token, min_size=1, max_size=4))
@example(["\n"])  # found by this test: the refusal quoted the newline and broke the one line
@example(["bash", "-\nc"])
def test_any_grantable_pattern_round_trips(pattern: list[str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = GrantStore(Path(d) / "state" / "grants.db")
        try:
            try:
                store.add("shell", "persistent", pattern)
            except CorralError as exc:
                assert "\n" not in exc.line()
                assert why_too_broad(pattern) or any(
                    ord(c) < 0x20 or c == "\x7f" or 0xD800 <= ord(c) < 0xE000
                    for t in pattern for c in t), exc.line()
                return
            policy = load_policy(None, extra_files=[store.rules_file], include_configured=False)
            assert policy.load_errors == [], policy.load_errors
            assert policy.check(pattern).get("decision") == "allow"
            assert policy.check([*pattern, "more"]).get("decision") == "allow"
            if len(pattern) > 1:
                assert policy.check(pattern[:-1]).get("decision") is None
        finally:
            store.close()


def test_codex_reads_our_rules_lines(store: GrantStore, codex_bin: Path) -> None:
    store.add("shell", "persistent", ["git", "push", "--tags"])
    store.add("shell", "persistent", ["echo", 'quote " and \\ backslash', "é"])
    for argv, expected in (
        (["git", "push", "--tags", "origin"], "allow"),
        (["echo", 'quote " and \\ backslash', "é"], "allow"),
        (["git", "push"], None),
    ):
        out = subprocess.run([str(codex_bin), "execpolicy", "check", "-r", str(store.rules_file),
                              *argv], capture_output=True, text=True, timeout=60, check=True)
        assert json.loads(out.stdout).get("decision") == expected, (argv, out.stdout)


def test_unicode_line_separators_do_not_split_rules(store: GrantStore) -> None:
    odd = ["echo", "a\u2028b\x85c\u2029d"]
    store.add("shell", "persistent", odd)
    g2 = store.add("shell", "persistent", ["make", "test"])
    store.revoke(g2.id)  # rewrites the file
    policy = load_policy(None, extra_files=[store.rules_file], include_configured=False)
    assert policy.load_errors == []
    assert policy.check(odd).get("decision") == "allow"


def test_lone_surrogate_refused(store: GrantStore) -> None:
    try:
        store.add("shell", "session", ["echo", "\ud800"], session_id="s")
    except CorralError as exc:
        assert "lone surrogate" in exc.line()
    else:
        raise AssertionError("a lone surrogate was accepted")
