"""Teams (issue 15 item 3): the configured map, an identity attribute on the events (which wins),
a rebuild when the attribute setting changes, and no team map from a repository's config."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.analytics import JournalSource, Query, RollupStore, Settings, compute, rollup_path
from corral.config import load_config
from corral.errors import CorralError
from corral.telemetry.journal import JournalWriter
from corral.telemetry.keys import load_or_create_signing_key
from tests.analytics.fleet import BASE, HOUR, _event

CODEX = ("codex", "1.0")


def _journal(home: Path) -> Path:
    path = home / "journal" / "journal.db"
    w = JournalWriter(path, load_or_create_signing_key(home))
    evs = []
    # alice: two sessions tagged by the identity provider as platform, one untagged
    for i, (sid, team) in enumerate((("s1", "platform"), ("s2", "platform"), ("s3", None))):
        start = {"agent.policy.approval": "never"}
        if team:
            start["user.team"] = team
        t = BASE + i * HOUR
        evs.append(_event("agent.session.start", t, sid, "alice", CODEX, start))
        for k in range(i + 1):
            evs.append(_event("agent.tool.decision", t + k + 1, sid, "alice", CODEX, {
                "gen_ai.tool.name": "shell", "agent.decision": "forbidden",
                "agent.decision.source": "rule", "process.command_line": "rm -rf /"}))
    w.append(evs)
    w.close()
    return path


def _by_team(path: Path, settings: Settings) -> dict[str, int]:
    store = RollupStore.open(rollup_path(path))
    try:
        store.refresh(JournalSource(path), settings)
        groups = compute(store, Query(by="team"), settings)["groups"]
        return {k: g["tool_calls"] for k, g in groups.items()}
    finally:
        store.close()


def test_identity_attribute_wins_over_the_map_and_a_change_rebuilds(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    mapped = Settings(teams={"alice": "payments"})
    assert _by_team(path, mapped) == {"payments": 6}
    tagged = Settings(teams={"alice": "payments"}, team_attribute="user.team")
    assert _by_team(path, tagged) == {"platform": 3, "payments": 3}
    assert _by_team(path, Settings()) == {"unassigned": 6}
    assert _by_team(path, Settings(team_attribute="user.team")) == {
        "platform": 3, "unassigned": 3}


def test_team_filter_uses_the_attribute(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    s = Settings(teams={"alice": "payments"}, team_attribute="user.team")
    store = RollupStore.open(rollup_path(path))
    try:
        store.refresh(JournalSource(path), s)
        assert compute(store, Query(team="platform"), s)["sessions"] == 2
        assert compute(store, Query(team="payments"), s)["decisions"]["forbidden"] == 3
    finally:
        store.close()


def test_config_keys_and_project_config_cannot_set_teams(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CORRAL_HOME", str(home))
    (home / "config.toml").write_text(
        '[analytics]\nteam_attribute = "user.team"\nsuggest_min_count = 5\n'
        '[analytics.teams]\npayments = ["alice"]\n'
        f'[projects."{tmp_path / "repo"}"]\ntrust_level = "trusted"\n')
    repo = tmp_path / "repo"
    (repo / ".corral").mkdir(parents=True)
    (repo / ".git").mkdir()
    (repo / ".corral" / "config.toml").write_text('[analytics.teams]\nroot = ["alice"]\n')
    cfg = load_config(repo)
    s = Settings.from_config(cfg)
    assert s.teams == {"alice": "payments"}
    assert s.team_attribute == "user.team" and s.suggest_min_count == 5
    assert any("analytics" in w and "may not be set by project config" in w
               for w in cfg.warnings)


def test_bad_team_attribute_is_one_line(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    store = RollupStore.open(rollup_path(path))
    try:
        with pytest.raises(CorralError, match=r"analytics\.team_attribute"):
            store.refresh(JournalSource(path), Settings(team_attribute="x' OR 1=1 --"))
    finally:
        store.close()


def test_unknown_analytics_key_is_refused(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CORRAL_HOME", str(home))
    (home / "config.toml").write_text("[analytics]\nteam = 3\n")
    with pytest.raises(CorralError, match=r"analytics\.team"):
        load_config(tmp_path)
