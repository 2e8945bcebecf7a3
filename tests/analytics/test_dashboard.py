"""`corral dashboard`: the API (every number against the ground truth; per-user views only with
the investigator token) and the page in a real browser (Debian's chromium), screenshots saved
under the test's tmp dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from corral.analytics import JournalSource, RollupStore, rollup_path
from corral.analytics.web import make_app
from tests.analytics.dashboard_helpers import browser, dashboard, numbers, wait_ready
from tests.analytics.fleet import BASE, HOUR, TEAMS, Fleet, generate, tally
from tests.analytics.test_stats import SETTINGS, check

TOKEN = "investigator-token-for-tests"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return generate(tmp_path_factory.mktemp("dash-fleet"))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("dash-home")
    (h / "config.toml").write_text(
        "[analytics.teams]\n" + "".join(f"{t} = {json.dumps(us)}\n" for t, us in TEAMS.items()))
    return h


@pytest.fixture
def client(fleet: Fleet) -> Any:
    store = RollupStore.open(rollup_path(fleet.path))
    app = make_app(JournalSource(fleet.path), store, SETTINGS, investigator_token=TOKEN)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c
    store.close()


@pytest.mark.parametrize("params", [
    {}, {"team": "payments"}, {"team": "unassigned", "since": "2026-11-03T07:30"},
    {"agent": "claude-code", "until": "2026-11-03T12:10"}, {"repo": "shop"}])
def test_api_every_number(client: Any, fleet: Fleet, params: dict[str, str]) -> None:
    r = client.get("/api/stats", params=params)
    assert r.status_code == 200
    since = BASE + 24 * HOUR + 7 * HOUR + 30 * 60 * 10**9 if "since" in params else None
    until = BASE + 36 * HOUR + 10 * 60 * 10**9 if "until" in params else None
    check(r.json(), tally(fleet.recs, since, until, team=params.get("team"),
                          agent=params.get("agent"), repo=params.get("repo")))


def test_api_drill_down_to_sessions_and_timeline(client: Any, fleet: Fleet) -> None:
    r = client.get("/api/sessions", params={"metric": "net", "k1": "deny", "team": "search"})
    got = {s["session_id"]: s["count"] for s in r.json()["sessions"]}
    want: dict[str, int] = {}
    for rec in fleet.recs:
        if rec.kind == "net" and rec.data["verdict"] == "deny" and rec.user == "carol":
            want[rec.sid] = want.get(rec.sid, 0) + 1
    assert got == want and want
    assert all("user" not in s for s in r.json()["sessions"])
    sid = next(iter(want))
    text = client.get(f"/api/session/{sid}").text
    assert f"session {sid}" in text and "carol" not in text and "(user hidden)" in text
    assert "deny" in text
    assert client.get("/api/session/nope").status_code == 404


def test_per_user_views_need_the_investigator_token(client: Any, fleet: Fleet) -> None:
    for params in ({"by": "user"}, {"user": "alice"}):
        r = client.get("/api/stats", params=params)
        assert r.status_code == 403
        assert r.json()["error"].startswith("corral: analytics: per-user views need")
        assert client.get("/api/stats", params=params,
                          headers={"Authorization": "Bearer wrong"}).status_code == 403
    auth = {"Authorization": f"Bearer {TOKEN}"}
    by_user = client.get("/api/stats", params={"by": "user"}, headers=auth).json()["groups"]
    assert by_user["alice"]["tool_calls"] == sum(
        1 for r in fleet.recs if r.kind == "decision" and r.user == "alice")
    drilled = client.get("/api/sessions", params={"metric": "decision"}, headers=auth).json()
    assert {s["user"] for s in drilled["sessions"]} == {"alice", "bob", "carol", "dave"}
    assert client.get("/api/stats", params={"by": "hat"}).status_code == 400
    assert client.get("/api/stats", params={"since": "soon"}).status_code == 400


def test_only_loopback_host_names_are_served(fleet: Fleet) -> None:
    store = RollupStore.open(rollup_path(fleet.path))
    try:
        app = make_app(JournalSource(fleet.path), store, SETTINGS)
        with TestClient(app, base_url="http://attacker.example") as c:
            assert c.get("/api/stats").status_code == 400
    finally:
        store.close()


@pytest.mark.slow
def test_page_in_a_real_browser(fleet: Fleet, home: Path, tmp_path: Path) -> None:
    truth = tally(fleet.recs)
    with dashboard(fleet.path, home) as url, browser() as b:
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        outside: list[str] = []
        page.on("request", lambda req: None if req.url.startswith(url) else
                outside.append(req.url))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        wait_ready(page)
        page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
        n = numbers(page)
        assert n["sessions"] == str(truth["sessions"])
        assert n["active_users"] == str(truth["active_users"])
        assert n["tool_calls"] == str(truth["tool_calls"])
        for k in ("allow", "prompt", "forbidden"):
            assert n[f"decisions.{k}"] == str(truth["decisions"][k])
        for k in ("allow", "deny", "ask"):
            assert n[f"network.{k}"] == str(truth["network"][k])
        assert n["network.per_100_tool_calls.deny"] == str(truth["per100"]["deny"])
        assert n["sandbox.outcomes.sandbox_denied"] == str(truth["sandbox"]["sandbox_denied"])
        assert n["reviewer.fail_closed"] == str(truth["reviewer"]["fail_closed"])
        denied = page.eval_on_selector_all("#t-denied tr", "rs => rs.map(r => r.innerText)")
        assert [line.split("\t") for line in denied] == [
            [d, str(c)] for d, c in sorted(truth["denied"].items(), key=lambda kv: (-kv[1], kv[0]))]
        assert page.locator("canvas").count() == 4
        assert 'prefix_rule(pattern = ["git", "push"], decision = "allow")' in \
            page.inner_text("#t-suggest")
        # team-level breakdown by default
        page.wait_for_selector("body[data-groups='1']", state="attached")
        rows = page.eval_on_selector_all(
            "#t-groups tr[data-group]",
            "rs => rs.map(r => [r.dataset.group, r.cells[3].textContent])")
        assert {g: int(n) for g, n in rows} == {
            team: tally(fleet.recs, team=team)["tool_calls"]
            for team in ("payments", "search", "unassigned")}
        assert "user" not in page.eval_on_selector_all("#by option", "os => os.map(o => o.value)")
        # drill down: the number of forbidden decisions -> its sessions -> one timeline
        page.click("[data-num='decisions.forbidden']")
        page.wait_for_selector("body[data-drilled]", state="attached")
        sessions = {r.sid for r in fleet.recs
                    if r.kind == "decision" and r.data["label"] == "forbidden"}
        assert int(page.get_attribute("body", "data-drilled")) == len(sessions)
        sid = page.eval_on_selector("#t-sessions tr[data-session] a", "a => a.textContent")
        assert sid in sessions
        page.click("#t-sessions tr[data-session] a")
        page.wait_for_selector("body[data-timeline]", state="attached")
        assert f"session {sid}" in page.inner_text("#timeline")
        assert "forbidden" in page.inner_text("#timeline")
        page.screenshot(path=str(tmp_path / "drill.png"), full_page=True)
        # filter: one team
        page.select_option("select[name=team]", "payments")
        page.click("#filters button")
        wait_ready(page)
        t = tally(fleet.recs, team="payments")
        n = numbers(page)
        assert n["tool_calls"] == str(t["tool_calls"])
        assert n["network.deny"] == str(t["network"]["deny"])
        assert n["sessions"] == str(t["sessions"])
        page.screenshot(path=str(tmp_path / "team.png"), full_page=True)
        # and a time window with partial days at both ends
        page.fill("input[name=since]", "2026-11-02T07:30")
        page.fill("input[name=until]", "2026-11-03T12:10")
        page.click("#filters button")
        wait_ready(page)
        t = tally(fleet.recs, BASE + 7 * HOUR + 30 * 60 * 10**9,
                  BASE + 36 * HOUR + 10 * 60 * 10**9, team="payments")
        n = numbers(page)
        assert n["tool_calls"] == str(t["tool_calls"])
        assert n["decisions.prompt"] == str(t["decisions"]["prompt"])
        assert n["network.ask"] == str(t["network"]["ask"])
        assert not outside, outside  # works offline: nothing but the dashboard is fetched
        assert not errors, errors
    assert (tmp_path / "overview.png").stat().st_size > 10_000


@pytest.mark.slow
def test_page_with_the_investigator_token(fleet: Fleet, home: Path, tmp_path: Path) -> None:
    with dashboard(fleet.path, home, "--investigator") as url, browser() as b:
        assert "#token=" in url
        plain = url.split("#")[0]
        assert httpx.get(plain + "api/stats?by=user").status_code == 403
        page = b.new_page()
        page.goto(url)
        wait_ready(page)
        assert page.inner_text("#scope") == "investigator view (per-user)"
        page.click("[data-num='network.ask']")
        page.wait_for_selector("body[data-drilled]", state="attached")
        heads = page.eval_on_selector_all("#t-sessions th", "hs => hs.map(h => h.textContent)")
        assert "user" in heads
        page.select_option("#by", "user")
        page.wait_for_selector("body[data-groups='1'] #t-groups tr[data-group='dave']",
                               state="attached")
        rows = page.eval_on_selector_all(
            "#t-groups tr[data-group]",
            "rs => rs.map(r => [r.dataset.group, r.cells[3].textContent])")
        assert {g: int(n) for g, n in rows} == {
            u: sum(1 for r in fleet.recs if r.kind == "decision" and r.user == u)
            for u in ("alice", "bob", "carol", "dave")}
        page.screenshot(path=str(tmp_path / "investigator.png"), full_page=True)


def test_the_app_works_mounted_under_a_prefix(fleet: Fleet) -> None:
    """What `corral server run` will do: the page and its API under /analytics/."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    store = RollupStore.open(rollup_path(fleet.path))
    try:
        inner = make_app(JournalSource(fleet.path), store, SETTINGS)
        outer = Starlette(routes=[Mount("/analytics", app=inner)])
        with TestClient(outer, base_url="http://127.0.0.1") as c:
            page = c.get("/analytics/").text
            assert 'src="static/app.js"' in page and 'href="/' not in page
            assert c.get("/analytics/static/app.js").status_code == 200
            assert c.get("/analytics/api/stats").json()["tool_calls"] == \
                tally(fleet.recs)["tool_calls"]
    finally:
        store.close()


def test_a_busy_port_is_one_line(fleet: Fleet, home: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "corral", "dashboard", "--port", str(port),
                              "--journal", str(fleet.path)], capture_output=True, text=True,
                             env={**os.environ, "CORRAL_HOME": str(home)}, timeout=60)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"corral: analytics: cannot listen on 127.0.0.1:{port}: ")
