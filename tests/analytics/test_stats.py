"""`corral stats` against the ground truth of a generated fleet: every number, several windows,
filters and breakdowns, through the real CLI (a subprocess of ``python -m corral``) and the API.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from corral.analytics import JournalSource, Query, RollupStore, Settings, compute, rollup_path
from tests.analytics.fleet import BASE, HOUR, TEAMS, Fleet, generate, tally

SETTINGS = Settings(teams={u: t for t, us in TEAMS.items() for u in us})


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return generate(tmp_path_factory.mktemp("fleet-home"))


def _stats(fleet: Fleet, q: Query) -> dict[str, Any]:
    store = RollupStore.open(rollup_path(fleet.path))
    try:
        store.refresh(JournalSource(fleet.path), SETTINGS)
        return compute(store, q, SETTINGS)
    finally:
        store.close()


def check(s: dict[str, Any], t: dict[str, Any]) -> None:
    """Every number of the stats JSON equals the oracle's."""
    assert s["sessions"] == t["sessions"]
    assert s["active_users"] == t["active_users"]
    assert s["turns"] == t["turns"]
    assert s["tool_calls"] == t["tool_calls"]
    assert {k: s["decisions"][k] for k in ("allow", "prompt", "forbidden")} == t["decisions"]
    assert s["decisions"]["outcomes"] == t["outcomes"]
    by_source = {(src, c): n for src, v in s["decisions"]["by_source"].items()
                 for c, n in v.items() if n}
    assert by_source == t["by_source"]
    assert s["tools"]["by_kind"] == t["kinds"]
    assert {k: s["network"][k] for k in ("allow", "deny", "ask")} == t["network"]
    assert s["network"]["per_100_tool_calls"] == t["per100"]
    assert {d["domain"]: d["count"] for d in s["top_denied_domains"]} == t["denied"]
    assert [d["count"] for d in s["top_denied_domains"]] == sorted(t["denied"].values(),
                                                                   reverse=True)
    assert {d["domain"]: d["count"] for d in s["top_asked_domains"]} == t["asked"]
    assert s["sandbox"]["outcomes"] == t["sandbox"]
    assert s["sandbox"]["denials_by_kind"] == t["denials"]
    assert {k: v for k, v in s["reviewer"].items() if v} == t["reviewer"]
    assert s["grants"]["by_scope"] == t["grants"]
    assert s["mcp_servers"] == t["mcp"]
    assert s["mcp_tools"] == t["mcp_tools"]  # first seen: ever, not only in the window
    assert s["active_users_per_day"] == t["users_per_day"]
    assert s["agent_versions"] == t["agent_versions"]
    assert s["policies"]["sandbox"] == ({":workspace": sum(t["policies"].values())}
                                        if t["policies"] else {})
    for srv, first in t["first_seen"].items() if "mcp_first_seen" in s else ():
        assert s["mcp_first_seen"][srv] == dt.datetime.fromtimestamp(
            first // 10**9, dt.UTC).isoformat(timespec="seconds")
    assert s["triage"] == t["triage"]
    assert s["agents"] == t["agents"]
    assert s["policies"]["approval"] == t["policies"]
    assert sum(s["claims"].values()) == t["claims"]
    w = s["approval_wait_ms"]
    assert w["count"] == len(t["waits"])
    if t["waits"]:
        assert w["mean"] == pytest.approx(sum(t["waits"]) / len(t["waits"]), abs=1e-3)
        assert w["max"] == pytest.approx(max(t["waits"]), abs=1e-3)
        xs = sorted(t["waits"])
        for p, got in ((0.5, w["p50"]), (0.95, w["p95"])):
            true = xs[max(0, math.ceil(p * len(xs)) - 1)]
            assert true <= got + 0.05 and got <= true * 1.1 + 0.05  # histogram: within 10%
    rules = sorted(" ".join(x["pattern"]) for x in s["suggestions"] if x["kind"] == "prefix_rule")
    domains = sorted(x["domain"] for x in s["suggestions"] if x["kind"] == "network_domain")
    assert rules == t["suggest_rules"]
    assert domains == t["suggest_domains"]


WINDOWS = [
    (None, None),
    (BASE + 24 * HOUR, None),  # whole hours
    (None, BASE + 36 * HOUR + 17 * 60 * 10**9),  # a partial hour at the end
    (BASE + 7 * HOUR + 123 * 10**9, BASE + 50 * HOUR + 1),  # partial at both ends
    (BASE + 9 * HOUR + 10 * 10**9, BASE + 9 * HOUR + 40 * 60 * 10**9),  # inside one hour
]


@pytest.mark.parametrize(("since", "until"), WINDOWS)
def test_every_number_matches_the_ground_truth(fleet: Fleet, since: int | None,
                                               until: int | None) -> None:
    check(_stats(fleet, Query(since_ns=since, until_ns=until)), tally(fleet.recs, since, until))


def test_the_fleet_exercises_every_number(fleet: Fleet) -> None:
    """The oracle is not vacuous: every kind of number is non-zero in the full window."""
    t = tally(fleet.recs)
    assert all(t["decisions"].values()) and all(t["network"].values())
    assert t["denials"] and t["grants"] and t["mcp"] and t["triage"] and t["waits"]
    assert t["reviewer"].get("fail_closed") and t["claims"] and t["turns"]
    assert t["suggest_rules"] and t["suggest_domains"]
    s = _stats(fleet, Query())
    assert "terraform apply" not in {" ".join(x.get("pattern", [])) for x in s["suggestions"]}
    rule = next(x for x in s["suggestions"] if x.get("pattern") == ["git", "push"])
    assert rule["rule"] == 'prefix_rule(pattern = ["git", "push"], decision = "allow")'
    dom = next(x for x in s["suggestions"] if x["kind"] == "network_domain")
    assert dom["config"] == f'[network.domains]\n"{dom["domain"]}" = "allow"'


@pytest.mark.parametrize("team", ["payments", "search", "unassigned"])
def test_team_filter_and_breakdown(fleet: Fleet, team: str) -> None:
    check(_stats(fleet, Query(team=team)), tally(fleet.recs, team=team))
    groups = _stats(fleet, Query(by="team"))["groups"]
    check(groups[team], tally(fleet.recs, team=team))


def test_agent_and_repo_filters(fleet: Fleet) -> None:
    check(_stats(fleet, Query(agent="codex")), tally(fleet.recs, agent="codex"))
    check(_stats(fleet, Query(repo="search-api", since_ns=BASE + 30 * HOUR + 5)),
          tally(fleet.recs, repo="search-api", since=BASE + 30 * HOUR + 5))
    by_repo = _stats(fleet, Query(by="repo"))["groups"]
    assert set(by_repo) == {"shop", "search-api"}
    check(by_repo["shop"], tally(fleet.recs, repo="shop"))


def test_cli_json_has_the_issue_keys_and_the_numbers(fleet: Fleet, tmp_path: Path) -> None:
    cfg = tmp_path / "home"
    cfg.mkdir()
    (cfg / "config.toml").write_text(
        "[analytics.teams]\n" + "".join(f"{t} = {json.dumps(us)}\n" for t, us in TEAMS.items()))
    env = {**os.environ, "CORRAL_HOME": str(cfg)}
    out = subprocess.run([sys.executable, "-m", "corral", "stats", "--journal", str(fleet.path),
                          "--json", "--by", "team", "--since", "2026-11-03"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    for key in ("sessions", "active_users", "tool_calls", "decisions", "network",
                "top_denied_domains", "agents", "mcp_servers", "suggestions"):
        assert key in s
    check(s, tally(fleet.recs, since=BASE + 24 * HOUR))
    check(s["groups"]["payments"], tally(fleet.recs, since=BASE + 24 * HOUR, team="payments"))
    text = subprocess.run([sys.executable, "-m", "corral", "stats", "--journal",
                           str(fleet.path)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)
    assert text.returncode == 0, text.stderr
    t = tally(fleet.recs)
    assert f"decisions: allow {t['decisions']['allow']}, prompt {t['decisions']['prompt']}, " \
           f"forbidden {t['decisions']['forbidden']}" in text.stdout
    assert 'prefix_rule(pattern = ["git", "push"], decision = "allow")' in text.stdout


def test_cli_refusals_are_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "CORRAL_HOME": str(tmp_path)}
    for args, needle in ((["--journal", str(tmp_path / "none.db")], "no journal at"),
                         (["--by", "hat"], "--by must be one of"),
                         (["--since", "yesterday-ish"], "cannot read time")):
        if "--journal" not in args:
            args = [*args, "--journal", str(tmp_path / "none.db")]
        out = subprocess.run([sys.executable, "-m", "corral", "stats", *args],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
        assert out.returncode != 0
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("corral: analytics: ")
        assert needle in lines[0]
    assert not (tmp_path / "analytics.db").exists()


def test_mcp_resource_reads_and_prompts_are_not_counted_as_tools(tmp_path: Path) -> None:
    """The MCP gateway records resources/read and prompts/get too: they count for their
    server, keyed by method and what they read, never as a tool of that name."""
    from corral.telemetry import Telemetry
    from corral.telemetry.journal import journal_file

    tel = Telemetry.open(None, "s-mcp", agent="codex", home=tmp_path, tier=1, export=False)
    for i, (method, name) in enumerate((("tools/call", "read_note"), ("tools/call", "read_note"),
                                        ("resources/read", "note://a"),
                                        ("prompts/get", "summarize"))):
        tel.emit("agent.mcp.call", {"mcp.server.name": "notes", "gen_ai.tool.name": name,
                                    "mcp.method.name": method, "agent.mcp.outcome": "success"},
                 call_id=f"call-{i}")
    tel.close()
    path = journal_file(tmp_path)
    store = RollupStore.open(rollup_path(path))
    try:
        store.refresh(JournalSource(path), SETTINGS)
        s = compute(store, Query(), SETTINGS)
    finally:
        store.close()
    assert s["mcp_servers"] == {"notes": 4}
    assert s["mcp_tools"] == {"notes.read_note": 2, "notes.resources/read note://a": 1,
                              "notes.prompts/get summarize": 1}
