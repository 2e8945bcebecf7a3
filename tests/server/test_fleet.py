"""Triage and analytics over the fleet: a real `corral server run` fed by the real forwarder.

* POST /v1/triage and `corral triage --server` give, for every scenario of the committed triage
  corpus, the verdict the same engine gives on the machine's own journal; tokens are checked
  (investigator), bad alerts are one line naming the field, the verdict is in the log as an OCSF
  Detection Finding and the call as server.access.
* `corral stats --server` and the dashboard mounted at /analytics give every number of the
  generated fleet's ground truth; analyst tokens are team-level, per-user views need an
  investigator token; every data request is recorded; the page in Debian's chromium, with a
  refused token too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.triage.alerts import load_alert
from corral.triage.source import JournalSource
from corral.triage.verdict import triage
from tests.analytics.dashboard_helpers import browser, numbers, wait_ready
from tests.analytics.fleet import TEAMS, Fleet, generate, tally
from tests.analytics.test_stats import check
from tests.server.fleet_helpers import FleetServer, copy_home, fleet_server
from tests.server.helpers import corral

CORPUS = Path(__file__).resolve().parents[1] / "data" / "triage" / "corpus"
TEAMS_TOML = "\n[analytics.teams]\n" + "".join(f"{t} = {json.dumps(us)}\n"
                                               for t, us in TEAMS.items())


def _auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def _events(s: FleetServer, name: str) -> list[dict[str, Any]]:
    r = httpx.get(s.url + "/v1/events", params={"name": name, "limit": 1000},
                  headers=_auth(s.tokens["admin"]))
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def _same(server: dict[str, Any], local: Any) -> None:
    assert server["verdict"] == local.verdict
    assert server["confidence"] == round(local.confidence, 3)
    assert server["session_id"] == local.session_id
    assert server["call_id"] == local.call_id
    assert server["rules"] == local.rules
    assert [e["event_id"] for e in server["evidence"]] == [e["event_id"] for e in local.evidence]
    assert server["user_request"] == local.user_request


# -- triage ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def triage_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetServer]:
    root = tmp_path_factory.mktemp("fleet-triage")
    home = copy_home(CORPUS / "home", root / "machine")
    with fleet_server(root, home) as s:
        yield s


def test_triage_api_gives_the_journal_verdict_for_every_corpus_scenario(
        triage_srv: FleetServer) -> None:
    s = triage_srv
    journal = JournalSource(s.home / "journal" / "journal.db")
    labels = json.loads((CORPUS / "labels.json").read_text())
    assert len(labels) >= 120
    verdicts: dict[str, int] = {}
    with httpx.Client(headers=_auth(s.tokens["investigator"]), timeout=60) as client:
        for lab in labels:
            text = (CORPUS / "alerts" / f"{lab['id']}.json").read_text()
            r = client.post(s.url + "/v1/triage", content=text)
            assert r.status_code == 200, (lab["id"], r.text)
            got = r.json()
            _same(got, triage(load_alert(text), journal))
            verdicts[got["verdict"]] = verdicts.get(got["verdict"], 0) + 1
    assert set(verdicts) == {"expected", "mistake", "escalate", "not_agent"}, verdicts
    recorded = _events(s, "triage.verdict")
    assert len(recorded) >= len(labels)
    ocsf = httpx.get(s.url + "/v1/events", params={"name": "triage.verdict", "format": "ocsf",
                                                   "limit": 5},
                     headers=_auth(s.tokens["admin"])).json()["data"]
    assert ocsf and all(f["class_uid"] == 2004 for f in ocsf)
    assert {f["message"].removeprefix("triage verdict ") for f in ocsf} <= set(verdicts)
    assert all(f["is_alert"] == (f["message"] == "triage verdict escalate") for f in ocsf)
    calls = [e for e in _events(s, "server.access")
             if e["record"]["endpoint"] == "/v1/triage"]
    assert len(calls) >= len(labels)
    assert calls[0]["record"]["token"] == "investigator"


def test_triage_cli_against_the_server(triage_srv: FleetServer, tmp_path: Path) -> None:
    s = triage_srv
    alert = CORPUS / "alerts" / "e000.json"
    out = corral("triage", "--server", s.url, "--json", str(alert), env=s.env("investigator"))
    got = json.loads(out.stdout)
    _same(got, triage(load_alert(alert.read_text()),
                      JournalSource(s.home / "journal" / "journal.db")))
    ids = {e["record"]["id"] for e in _events(s, "triage.verdict")}
    assert got["id"] in ids  # the verdict the command printed is the one in the log
    ocsf = json.loads(corral("triage", "--server", s.url, "--ocsf", "--model", "none",
                             str(alert), env=s.env("investigator")).stdout)
    assert ocsf["class_uid"] == 2004 and ocsf["finding_info"]["types"] == [got["verdict"]]
    # refusals: one line each, naming the reason
    for scope, needle in ((None, "401: server: missing bearer token"),
                          ("analyst", "403: server: token scope analyst does not allow "
                                      "investigator"),
                          ("read", "403: server: token scope read does not allow investigator")):
        env = s.env(scope) if scope else {**s.env(None), "CORRAL_SERVER_TOKEN": ""}
        r = corral("triage", "--server", s.url, str(alert), env=env, check=False)
        if scope is None:  # no token at all: refused before any request
            assert r.returncode == 2 and r.stderr.startswith("corral: triage: no token for"), \
                r.stderr
            continue
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert needle in r.stderr, r.stderr
    r = corral("triage", "--server", s.url, "--model", "gpt-x", str(alert),
               env=s.env("investigator"), check=False)
    assert r.returncode == 2 and "cannot be chosen with --server" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"process": {"pid": "twelve"}}))
    r = corral("triage", "--server", s.url, str(bad), env=s.env("investigator"), check=False)
    assert r.returncode == 2
    assert r.stderr.strip() == ("corral: triage: alert: process.pid: expected an integer, "
                                "got a string")


@pytest.mark.parametrize("body, field", [
    (b'{"process": {"pid": "twelve"}}', "process.pid: expected an integer, got a string"),
    (b"not json", "(document): not JSON"),
    (b'{"title": "x"}', "alert"),
    (b'{"class_uid": 2004}', "finding_info"),
    (b'{"rule": "r", "output_fields": {"proc.pid": []}}', "proc.pid"),
])
def test_triage_api_bad_alert_is_400_naming_the_field(triage_srv: FleetServer, body: bytes,
                                                      field: str) -> None:
    r = httpx.post(triage_srv.url + "/v1/triage", content=body,
                   headers=_auth(triage_srv.tokens["investigator"]))
    assert r.status_code == 400
    line = r.json()["error"]
    assert line.startswith("corral: triage: alert: ") and "\n" not in line
    assert field in line, line


def test_triage_api_refuses_other_parameters_and_tokens(triage_srv: FleetServer) -> None:
    s = triage_srv
    alert = (CORPUS / "alerts" / "e000.json").read_bytes()
    r = httpx.post(s.url + "/v1/triage", params={"model": "gpt-x"}, content=alert,
                   headers=_auth(s.tokens["investigator"]))
    assert r.status_code == 400 and "only model=none" in r.json()["error"]
    for scope, status in (("ingest", 403), ("read", 403), ("analyst", 403), ("admin", 200)):
        r = httpx.post(s.url + "/v1/triage", content=alert, headers=_auth(s.tokens[scope]))
        assert r.status_code == status, (scope, r.text)
    r = httpx.post(s.url + "/v1/triage", content=alert, headers=_auth("corral_nope"))
    assert r.status_code == 401 and r.json()["error"] == "corral: server: unknown token"


# -- analytics ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    return generate(tmp_path_factory.mktemp("fleet-machine"))


@pytest.fixture(scope="module")
def stats_srv(tmp_path_factory: pytest.TempPathFactory, fleet: Fleet) -> Iterator[FleetServer]:
    root = tmp_path_factory.mktemp("fleet-stats")
    home = copy_home(fleet.path.parent.parent, root / "machine")
    with fleet_server(root, home, config=TEAMS_TOML) as s:
        yield s


def test_stats_server_every_number(stats_srv: FleetServer, fleet: Fleet) -> None:
    s = stats_srv
    out = corral("stats", "--server", s.url, "--json", env=s.env("analyst"))
    check(json.loads(out.stdout), tally(fleet.recs))
    since, until = "2026-11-03T07:30", "2026-11-04T12:10"
    out = corral("stats", "--server", s.url, "--json", "--since", since, "--until", until,
                 "--team", "payments", env=s.env("analyst"))
    from tests.analytics.test_dashboard import BASE, HOUR

    lo = BASE + 24 * HOUR + 7 * HOUR + 30 * 60 * 10**9
    hi = BASE + 48 * HOUR + 12 * HOUR + 10 * 60 * 10**9
    check(json.loads(out.stdout), tally(fleet.recs, lo, hi, team="payments"))
    text = corral("stats", "--server", s.url, env=s.env("analyst")).stdout
    assert text.startswith(f"adoption: {tally(fleet.recs)['sessions']} sessions")


def test_stats_server_per_user_needs_investigator(stats_srv: FleetServer,
                                                  fleet: Fleet) -> None:
    s = stats_srv
    r = corral("stats", "--server", s.url, "--by", "user", env=s.env("analyst"), check=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert ("403: analytics: per-user views need the investigator token (an "
            "investigator-scoped token") in r.stderr, r.stderr
    out = json.loads(corral("stats", "--server", s.url, "--by", "user", "--json",
                            env=s.env("investigator")).stdout)
    assert set(out["groups"]) == {r.user for r in fleet.recs}
    for user, g in out["groups"].items():
        assert g["tool_calls"] == tally([r for r in fleet.recs if r.user == user])["tool_calls"]
    r = corral("stats", "--server", s.url, env=s.env("read"), check=False)
    assert r.returncode == 2 and "403: server: token scope read does not allow analyst" in \
        r.stderr
    audited = [e["record"] for e in _events(s, "server.access")
               if e["record"]["endpoint"] == "/analytics/api/stats"]
    assert any(a["token"] == "investigator" and a["filters"].get("by") == "user"
               for a in audited)
    assert all(a["token"] in ("analyst", "investigator") for a in audited)


def test_dashboard_api_timeline_hides_people_without_investigator(
        stats_srv: FleetServer, fleet: Fleet) -> None:
    s = stats_srv
    sid = fleet.recs[0].sid
    r = httpx.get(f"{s.url}/analytics/api/session/{sid}", headers=_auth(s.tokens["analyst"]))
    assert r.status_code == 200 and f"session {sid}" in r.text
    assert fleet.recs[0].user not in r.text and "(user hidden)" in r.text
    r = httpx.get(f"{s.url}/analytics/api/session/{sid}",
                  headers=_auth(s.tokens["investigator"]))
    assert fleet.recs[0].user in r.text
    r = httpx.get(f"{s.url}/analytics/api/sessions", params={"metric": "net", "k1": "deny"},
                  headers=_auth(s.tokens["analyst"]))
    assert r.status_code == 200
    rows = r.json()["sessions"]
    assert rows and all("user" not in row or row["user"] in (None, "") for row in rows)
    audited = {e["record"]["endpoint"] for e in _events(s, "server.access")}
    assert {"/analytics/api/session/{id}", "/analytics/api/sessions"} <= audited
    # no token: refused, nothing served
    r = httpx.get(f"{s.url}/analytics/api/stats")
    assert r.status_code == 401 and r.json()["error"] == "corral: server: missing bearer token"


@pytest.mark.slow
def test_mounted_dashboard_in_a_real_browser(stats_srv: FleetServer, fleet: Fleet,
                                             tmp_path: Path) -> None:
    s = stats_srv
    truth = tally(fleet.recs)
    base = s.url + "/analytics/"
    with browser() as b:
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        outside: list[str] = []
        page.on("request", lambda req: None if req.url.startswith(s.url) else
                outside.append(req.url))
        page.goto(base + "#token=" + s.tokens["analyst"])
        wait_ready(page)
        page.screenshot(path=str(tmp_path / "server-overview.png"), full_page=True)
        n = numbers(page)
        assert n["sessions"] == str(truth["sessions"])
        assert n["tool_calls"] == str(truth["tool_calls"])
        for k in ("allow", "prompt", "forbidden"):
            assert n[f"decisions.{k}"] == str(truth["decisions"][k])
        for k in ("allow", "deny", "ask"):
            assert n[f"network.{k}"] == str(truth["network"][k])
        assert page.locator("canvas").count() == 4
        page.click("[data-num='decisions.forbidden']")
        page.wait_for_selector("body[data-drilled]", state="attached")
        sessions = {r.sid for r in fleet.recs
                    if r.kind == "decision" and r.data["label"] == "forbidden"}
        assert int(page.get_attribute("body", "data-drilled")) == len(sessions)
        page.click("#t-sessions tr[data-session] a")
        page.wait_for_selector("body[data-timeline]", state="attached")
        assert "(user hidden)" in page.inner_text("#timeline")
        assert not outside, outside
        # a refused token: the page says why, and shows no number
        page = b.new_page()
        page.goto(base + "#token=" + s.tokens["read"])
        page.wait_for_selector("body[data-ready='error']", state="attached")
        assert page.inner_text("#error") == ("corral: server: token scope read does not allow "
                                             "analyst")
        assert numbers(page)["sessions"] in ("", "–")
        page.screenshot(path=str(tmp_path / "server-refused.png"), full_page=True)
    audited = [e["record"] for e in _events(s, "server.access")
               if e["record"]["endpoint"].startswith("/analytics/api/")]
    assert {"/analytics/api/stats", "/analytics/api/series", "/analytics/api/options"} <= \
        {a["endpoint"] for a in audited}


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_postgres_store_triage_and_stats(tmp_path: Path, pg_url: str, fleet: Fleet) -> None:
    """The same two paths over a PostgreSQL store: the triage corpus and the generated fleet
    forwarded into one log; triage verdicts equal the journal's, stats equal the ground truth
    plus the corpus (and the triage verdicts recorded meanwhile)."""
    home = copy_home(CORPUS / "home", tmp_path / "machine")
    with fleet_server(tmp_path, home, database=pg_url, config=TEAMS_TOML) as s:
        journal = JournalSource(home / "journal" / "journal.db")
        labels = json.loads((CORPUS / "labels.json").read_text())[::8]
        with httpx.Client(headers=_auth(s.tokens["investigator"]), timeout=60) as client:
            for lab in labels:
                text = (CORPUS / "alerts" / f"{lab['id']}.json").read_text()
                r = client.post(s.url + "/v1/triage", content=text)
                assert r.status_code == 200, (lab["id"], r.text)
                _same(r.json(), triage(load_alert(text), journal))
        alert = CORPUS / "alerts" / "e000.json"
        out = json.loads(corral("triage", "--server", s.url, "--json", str(alert),
                                env=s.env("investigator")).stdout)
        assert out["id"] in {e["record"]["id"] for e in _events(s, "triage.verdict")}
        # the fleet's journal too, then every number of it: filtered to its agents' team
        other = copy_home(fleet.path.parent.parent, tmp_path / "fleet-machine")
        corral("forward", "--server", s.url, "--retry-for", "30",
               env={"CORRAL_HOME": str(other), "CORRAL_SERVER_TOKEN": s.tokens["ingest"]})
        for team in ("payments", "search"):
            got = json.loads(corral("stats", "--server", s.url, "--json", "--team", team,
                                    env=s.env("analyst")).stdout)
            check(got, tally(fleet.recs, team=team))
        both = json.loads(corral("stats", "--server", s.url, "--json",
                                 env=s.env("analyst")).stdout)
        local = json.loads(corral("stats", "--json", "--journal",
                                  str(home / "journal" / "journal.db"),
                                  env={"CORRAL_HOME": str(tmp_path / "h")}).stdout)
        assert both["tool_calls"] == tally(fleet.recs)["tool_calls"] + local["tool_calls"]
        assert both["decisions"]["forbidden"] == (tally(fleet.recs)["decisions"]["forbidden"]
                                                  + local["decisions"]["forbidden"])
        assert both["triage"].get("expected", 0) >= 1
