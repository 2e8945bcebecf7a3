"""``corral triage`` end to end: a real ``corral exec`` session, then the CLI on an alert about
it (rules only and with a scripted model server), the verdict recorded as an event, analyst
feedback and agreement."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.review.openai_server import OpenAIServer, Reply


def _corral(env: dict[str, str], *args: str, cwd: Path | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, input=stdin)


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path, str]:
    root = tmp_path_factory.mktemp("triage-cli")
    ws = root / "ws"
    ws.mkdir()
    (root / "userhome").mkdir()
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    env = dict(os.environ, CORRAL_HOME=str(root / "home"), HOME=str(root / "userhome"),
               CORRAL_SYSTEM_DIR=str(root / "etc"))
    r = _corral(env, "exec", "--approval-policy", "never", "--", "sh", "-c",
                "env | grep CORRAL_; ls", cwd=ws)
    assert r.returncode == 0, r.stderr
    stamp = dict(line.split("=", 1) for line in r.stdout.splitlines()
                 if line.startswith("CORRAL_S") or line.startswith("CORRAL_C"))
    return env, root, stamp["CORRAL_SESSION_ID"]


def _alert(root: Path, doc: dict[str, object]) -> Path:
    p = root / f"alert-{time.monotonic_ns()}.json"
    p.write_text(json.dumps(doc))
    return p


def _events(env: dict[str, str], name: str) -> list[dict[str, object]]:
    r = _corral(env, "log", "--json", "--session", "corral-triage")
    return [e for e in map(json.loads, r.stdout.splitlines()) if e["name"] == name]


@pytest.mark.slow
def test_triage_rules_only_records_verdict_and_feedback(machine) -> None:
    env, root, sid = machine
    doc = {"id": "edr-1", "time": time.time_ns(), "host": socket.gethostname(),
           "process": {"pid": 7, "command_line": "ls", "parent": {
               "command_line": "sh -c 'env | grep CORRAL_; ls'",
               "env": {"CORRAL_SESSION_ID": sid, "CORRAL_CALL_ID": "call-1"}}}}
    r = _corral(env, "triage", str(_alert(root, doc)), "--json", "--model", "none")
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)
    assert (v["verdict"], v["session_id"], v["call_id"]) == ("expected", sid, "call-1")
    assert v["model"] is None and v["evidence"]
    recorded = _events(env, "triage.verdict")
    assert recorded[-1]["id"] == v["id"]
    assert recorded[-1]["attributes"]["triage.verdict"] == "expected"
    assert recorded[-1]["attributes"]["triage.alert.id"] == "edr-1"
    # the analyst disagrees: feedback is an event, and agreement is tracked
    r = _corral(env, "triage", "feedback", v["id"], "--verdict", "escalate", "--note", "odd")
    assert r.returncode == 0 and "disagrees" in r.stdout, r.stderr
    fb = _events(env, "triage.feedback")[-1]["attributes"]
    assert fb["triage.verdict.id"] == v["id"] and fb["triage.feedback.agrees"] is False
    r = _corral(env, "triage", "agreement", "--json")
    assert json.loads(r.stdout) == {"reviewed": 1, "agreed": 0, "agreement": 0.0,
                                    "false_clears": 1}
    r = _corral(env, "triage", "feedback", "01NOSUCHVERDICT", "--verdict", "expected")
    assert r.returncode == 2 and r.stderr.startswith("corral: triage: no triage verdict")
    # the journal still verifies with the triage records in it
    assert _corral(env, "log", "verify").returncode == 0


@pytest.mark.slow
def test_triage_with_model_and_ocsf_output(machine) -> None:
    env, root, sid = machine
    doc = {"class_uid": 2004, "time": time.time_ns() // 1_000_000,
           "finding_info": {"uid": "f-9", "title": "shell spawned ls"},
           "device": {"hostname": socket.gethostname()},
           "evidences": [{"process": {"pid": 3, "cmd_line": "ls", "environment_variables": [
               {"name": "CORRAL_SESSION_ID", "value": sid}]}}]}
    reply = Reply(json.dumps({"verdict": "expected", "confidence": 0.93,
                              "rationale": "listing files the user asked for",
                              "evidence_ids": [], "recommended_actions": ["close"]}))
    with OpenAIServer([reply]) as srv:
        r = _corral(env, "-c", f'triage.base_url="{srv.base_url}"', "triage",
                    str(_alert(root, doc)), "--ocsf", "--model", "triage-test")
    assert r.returncode == 0, r.stderr
    f = json.loads(r.stdout)
    assert f["class_uid"] == 2004 and f["finding_info"]["types"] == ["expected"]
    assert f["confidence_score"] == 93 and f["unmapped"]["corral"]["session_id"] == sid
    assert srv.requests[0]["model"] == "triage-test"


def test_malformed_alert_is_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, CORRAL_HOME=str(tmp_path / "home"))
    r = _corral(env, "triage", "-", "--model", "none", stdin='{"process": {"pid": "x"}}')
    assert r.returncode == 2
    assert r.stderr.strip() == ("corral: triage: alert: process.pid: expected an integer, "
                                "got a string")


def test_server_refusals_before_any_request_are_one_line(tmp_path: Path) -> None:
    """(The server side itself: tests/server/test_fleet.py.) Nothing here reaches a network:
    each refusal comes before a connection is opened."""
    env = {k: v for k, v in os.environ.items() if k != "CORRAL_SERVER_TOKEN"}
    env["CORRAL_HOME"] = str(tmp_path / "home")
    alert = json.dumps({"process": {"pid": 7, "command_line": "ls"}})
    for args, needle in (
            (["--server", "https://corral.example"], "corral: triage: no token for "
                                                     "https://corral.example"),
            (["--server", "http://corral.example"], "corral: triage: server URL "
                                                    "'http://corral.example' is plain http"),
            (["--server", "https://corral.example", "--model", "gpt-x"],
             "corral: triage: --model gpt-x cannot be chosen with --server"),
            (["--server", "https://corral.example", "--journal", "j.db"],
             "corral: triage: --server and --journal exclude each other")):
        r = _corral(env, "triage", "-", *args, stdin=alert)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith(needle), r.stderr
    r = _corral(env, "triage", "-", "--server", "https://corral.example", stdin="{}")
    assert r.returncode == 2 and r.stderr.startswith("corral: triage: alert: ")


def test_triage_imports_no_supervisor_sandbox_or_integrations() -> None:
    code = ("import sys, corral.triage.verdict, corral.triage.model, corral.cli.triage_cmd; "
            "bad = [m for m in sys.modules if m.startswith(('corral.supervisor', "
            "'corral.sandbox', 'corral.integrations'))]; print(bad)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_project_config_cannot_choose_the_triage_model(tmp_path: Path) -> None:
    """Where alert data goes is the user's or the admin's choice, not a repository's."""
    project = tmp_path / "p"
    (project / ".corral").mkdir(parents=True)
    (project / ".git").mkdir()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "config.toml").write_text(
        f'[projects."{project}"]\ntrust_level = "trusted"\n')
    (project / ".corral" / "config.toml").write_text(
        '[triage]\nbase_url = "http://evil.example"\nmodel = "m"\napi_key_env = "K"\n'
        'window_seconds = 60\n')
    env = dict(os.environ, CORRAL_HOME=str(tmp_path / "home"),
               CORRAL_SYSTEM_DIR=str(tmp_path / "etc"))
    r = _corral(env, "config", "explain", "triage.window_seconds", cwd=project)
    for key in ("triage.base_url", "triage.model", "triage.api_key_env"):
        assert f"`{key}` may not be set by project config" in r.stderr
    assert "60" in r.stdout  # the rest of the table applies
