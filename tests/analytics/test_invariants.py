"""Aggregation invariants over random event sets (hypothesis), and hostile command lines and
domains that must never become a suggestion someone pastes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.analytics import JournalSource, Query, RollupStore, Settings, compute, rollup_path
from corral.analytics.query import suggestions
from corral.analytics.rollup import RUNNERS, cmd_prefix
from corral.telemetry.journal import JournalWriter
from corral.telemetry.keys import load_or_create_signing_key
from tests.analytics.fleet import AGENTS, BASE, DECISIONS, NETWORK, USERS, _event

SETTINGS = Settings(teams={"alice": "a", "bob": "a", "carol": "b"})

_ev = st.tuples(
    st.integers(0, 5),  # session
    st.integers(0, 431).map(lambda x: x * 600),  # 10-minute steps over 3 days: cuts hit them
    st.one_of(st.tuples(st.just("d"), st.integers(0, len(DECISIONS) - 1)),
              st.tuples(st.just("n"), st.integers(0, len(NETWORK) - 1))),
    st.sampled_from(["pipeline", "pipeline", "import", "session_api"]),
)


def _write(home: Path, evs: list[Any], chunks: list[int]) -> tuple[Path, RollupStore]:
    """Write ``evs`` in chunks, refreshing the rollup after each; return the store."""
    key = load_or_create_signing_key(home)
    path = home / "journal" / "journal.db"
    w = JournalWriter(path, key)
    store = RollupStore.open(rollup_path(path))
    evs = sorted(evs, key=lambda e: e[1])
    start = 0
    for size in [*chunks, len(evs)]:
        part = evs[start:start + size]
        start += len(part)
        batch = []
        for sess, sec, (kind, i), origin in part:
            user, agent = USERS[sess % 4], AGENTS[sess % 2]
            if kind == "d":
                d = DECISIONS[i]
                attrs = {"gen_ai.tool.name": d[4], "agent.decision": d[0],
                         "agent.decision.source": d[1], "process.command_line": d[3]}
                name = "agent.tool.decision"
            else:
                n = NETWORK[i]
                attrs = {"network.policy.decision": n[1], "server.address": n[0],
                         "network.policy.source": n[2]}
                name = "agent.network.decision"
            batch.append(_event(name, BASE + sec * 10**9, f"s{sess}", user, agent, attrs,
                                origin=origin))
        if batch:
            w.append(batch)
        store.refresh(JournalSource(path), SETTINGS)
    w.close()
    return path, store


ADDITIVE = ("tool_calls", "turns")


def _additive(s: dict[str, Any]) -> dict[str, int]:
    out = {k: s[k] for k in ADDITIVE}
    out.update({f"d.{k}": s["decisions"][k] for k in ("allow", "prompt", "forbidden")})
    out.update({f"n.{k}": s["network"][k] for k in ("allow", "deny", "ask")})
    out.update({f"deny.{d['domain']}": d["count"] for d in s["top_denied_domains"]})
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ev, max_size=60), st.lists(st.integers(0, 20), max_size=4),
       st.integers(0, 864))
def test_invariants(evs: list[Any], chunks: list[int], cut_s: int) -> None:
    with tempfile.TemporaryDirectory(prefix="corral-analytics-") as d:
        path, store = _write(Path(d), evs, chunks)
        try:
            whole = compute(store, Query(), SETTINGS)
            once = RollupStore.open(Path(d) / "once.db")
            once.refresh(JournalSource(path), SETTINGS)
            # folding in chunks gives the same numbers as folding everything at once
            assert compute(once, Query(), SETTINGS) == whole
            once.close()
            dec = whole["decisions"]
            assert dec["allow"] + dec["prompt"] + dec["forbidden"] == whole["tool_calls"]
            assert sum(whole["tools"]["by_kind"].values()) == whole["tool_calls"]
            pipeline = [e for e in evs if e[3] == "pipeline"]
            assert whole["tool_calls"] == sum(1 for e in pipeline if e[2][0] == "d")
            assert whole["network"]["allow"] + whole["network"]["deny"] == \
                sum(1 for e in pipeline if e[2][0] == "n")
            # every breakdown adds up to the total
            for by in ("team", "agent", "repo", "user"):
                groups = compute(store, Query(by=by), SETTINGS)["groups"]
                for key, total in _additive(whole).items():
                    assert sum(_additive(g).get(key, 0) for g in groups.values()) == total
                assert sum(g["sessions"] for g in groups.values()) >= whole["sessions"]
            # a window cut anywhere splits every count in two
            # at an event's own time (most often), or anywhere in 5-minute steps
            cut_s = evs[cut_s % len(evs)][1] if evs and cut_s % 3 else cut_s * 300
            cut = BASE + cut_s * 10**9
            before = _additive(compute(store, Query(until_ns=cut), SETTINGS))
            after = _additive(compute(store, Query(since_ns=cut), SETTINGS))
            for key, total in _additive(whole).items():
                assert before.get(key, 0) + after.get(key, 0) == total
        finally:
            store.close()


@given(st.text(max_size=80))
def test_command_prefix_is_only_plain_words(line: str) -> None:
    out = cmd_prefix(line)
    if out:
        words = json.loads(out)
        assert 1 <= len(words) <= 2 and words[0] not in RUNNERS
        for w in words:
            assert w[0].isascii() and w[0].isalnum()
            assert all(c.isascii() and (c.isalnum() or c in "._+-") for c in w)


@given(st.text(max_size=60), st.integers(3, 9))
def test_hostile_domains_are_never_suggested_unquoted(domain: str, n: int) -> None:
    from collections import Counter

    out = suggestions({}, Counter({domain: n}), Counter({domain: n}), 3)
    for s in out:
        assert "\n" not in s["line"] and '"' not in s["domain"] and " " not in s["domain"]
        assert s["line"] == f'"{s["domain"]}" = "allow"'

