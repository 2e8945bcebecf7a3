"""The session API over a real unix socket: token, ops, concurrency, and what it refuses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from corral.config import load_config
from corral.supervisor.api import SessionAPI, call
from corral.supervisor.pipeline import Pipeline, no_terminal
from corral.telemetry import Journal, Telemetry, load_public_key


@pytest.fixture
def session(tmp_path: Path):
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    cfg = load_config(work, home=home, system=tmp_path / "etc")
    tel = Telemetry.open(cfg, agent="test")
    pipe = Pipeline(cfg, tel, approval_policy="on-request", terminal=no_terminal)
    api = SessionAPI(pipe, tmp_path / "run" / "session.sock")
    api.start()
    yield api, work, home, tel
    api.stop()
    tel.close()


def test_socket_is_private_and_token_required(session):
    api, _work, _, _ = session
    assert (os.stat(api.socket_path).st_mode & 0o777) == 0o600
    assert call("ping", socket_path=str(api.socket_path), token="wrong") == {
        "ok": False, "error": "corral: supervisor: bad or missing session token"}
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(api.socket_path))
        s.sendall(b"not json\n")
        assert json.loads(s.recv(4096))["error"] == "corral: supervisor: request is not JSON"
    r = call("ping", **_auth(api))
    assert r["ok"] and r["session_id"] == api.pipeline.telemetry.session_id


def _auth(api: SessionAPI) -> dict[str, str]:
    return {"socket_path": str(api.socket_path), "token": api.token}


def test_exec_and_decide_through_the_pipeline(session):
    api, work, _, _ = session
    r = call("exec", argv=["bash", "-c", "echo out; echo err >&2; exit 3"], cwd=str(work),
             **_auth(api))
    assert r["ok"] and r["ran"] and r["exit_code"] == 3
    assert r["stdout"] == "out\n" and "err" in r["stderr"]
    r = call("exec", argv=["git", "push", "--force"], cwd=str(work), **_auth(api))
    assert r["ok"] and not r["ran"] and r["exit_code"] == 242
    assert "nobody could be asked" in r["message"]
    r = call("decide", argv=["ls"], cwd=str(work), **_auth(api))
    assert r["allowed"] and r["verdict"] == "auto_approved"


def test_cwd_outside_workspace_and_bad_events_refused(session, tmp_path):
    api, _work, _, _ = session
    r = call("exec", argv=["ls"], cwd="/etc", **_auth(api))
    assert not r["ok"] and "outside this session's workspace" in r["error"]
    r = call("event", name="agent.tool.decision", attributes={}, **_auth(api))
    assert not r["ok"] and "cannot be reported" in r["error"]
    r = call("exec", argv="ls", **_auth(api))
    assert not r["ok"] and r["error"].startswith("corral: supervisor: bad request")


def test_concurrent_actions_all_recorded(session):
    api, work, _home, tel = session
    results: list[dict] = []

    def one(i: int) -> None:
        results.append(call("exec", argv=["bash", "-c", f"echo {i} > f{i}; cat f{i}"],
                            cwd=str(work), **_auth(api)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(r["stdout"]) for r in results) == list(range(8))
    tel.flush()
    events = list(Journal(tel.journal_path).events(tel.session_id))
    decisions = [e for e in events if e.name == "agent.tool.decision"]
    assert len({e.call_id for e in decisions}) == 8


def test_sandboxed_client_cannot_touch_journal(session):
    """A command running inside the sandbox cannot read or write the journal under CORRAL_HOME."""
    api, work, home, tel = session
    tel.flush()
    r = call("exec", argv=["python3", "-c", f"open({str(tel.journal_path)!r}, 'ab').write(b'x')"],
             cwd=str(work), **_auth(api))
    assert r["ran"] and r["exit_code"] != 0
    tel.flush()
    assert Journal(tel.journal_path).verify(load_public_key(home)).ok


@pytest.mark.slow
def test_supervisor_killed_mid_action_leaves_nothing_running(tmp_path):
    marker = f"corral-orphan-probe-{os.getpid()}"
    env = dict(os.environ, CORRAL_HOME=str(tmp_path / "home"),
               CORRAL_SYSTEM_DIR=str(tmp_path / "etc"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral", "exec", "--", "bash", "-c",
         f"exec -a {marker} sleep 300"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
    )

    def running() -> bool:
        out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
        return bool(out.stdout.strip())

    import time

    deadline = time.monotonic() + 20
    while not running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running(), "the sandboxed command never started"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(), "sandboxed command outlived its supervisor"


def test_patches_and_mcp_calls_go_through_the_pipeline(session):
    api, work, _home, tel = session
    ok = call("decide", kind="patch", files=["src/app.py"], cwd=str(work), **_auth(api))
    assert ok["allowed"] and ok["verdict"] == "auto_approved"
    hook = call("decide", kind="patch", files=[".git/hooks/pre-commit"], cwd=str(work),
                **_auth(api))
    assert not hook["allowed"] and hook["verdict"] == "forbidden"
    assert "protected path" in hook["message"]
    outside = call("decide", kind="patch", files=["/etc/hosts"], cwd=str(work), **_auth(api))
    assert not outside["allowed"] and "outside the workspace" in outside["message"]
    mcp = call("decide", kind="mcp", server="github", tool="create_issue",
               arguments='{"title": "x"}', **_auth(api))
    assert mcp["allowed"]
    tel.flush()
    events = list(Journal(tel.journal_path).events(tel.session_id))
    calls = [e for e in events if e.name == "agent.mcp.call"]
    assert calls and calls[0].attributes["mcp.server.name"] == "github"
    assert "title" not in json.dumps(calls[0].attributes)  # tier 1: digest, not content
    tools = [e.attributes["gen_ai.tool.name"] for e in events if e.name == "agent.tool.decision"]
    assert tools == ["apply_patch", "apply_patch", "apply_patch", "create_issue"]


def test_mcp_gateway_ops_resources_prompts_and_server_settings(tmp_path: Path):
    """What a gateway inside the sandbox asks: may a server start and its limits
    (``mcp_server``), and decisions for resources/read and prompts/get (undecided unless a
    pattern names them); an unknown method is a clear error."""
    home, work, etc = tmp_path / "home", tmp_path / "work", tmp_path / "etc"
    home.mkdir()
    work.mkdir()
    etc.mkdir()
    (home / "config.toml").write_text(
        '[mcp.servers.notes]\ntimeout_seconds = 7\nresources = { "file:///etc/*" = '
        '"forbidden" }\n')
    (etc / "requirements.toml").write_text('[mcp]\nallowed_servers = ["notes"]\n')
    cfg = load_config(work, home=home, system=etc)
    tel = Telemetry.open(cfg, agent="test")
    api = SessionAPI(Pipeline(cfg, tel, approval_policy="on-request", terminal=no_terminal),
                     tmp_path / "run" / "session.sock")
    api.start()
    try:
        notes = call("mcp_server", server="notes", **_auth(api))
        assert notes["refusal"] is None and notes["timeout_seconds"] == 7
        assert notes["max_message_bytes"] is None  # the gateway's default
        other = call("mcp_server", server="tickets", **_auth(api))
        assert "is not in mcp.allowed_servers" in other["refusal"]
        free = call("decide", kind="mcp", server="notes", tool="note://a",
                    method="resources/read", record=False, **_auth(api))
        assert free["allowed"] and free["verdict"] == "undecided" and free["call_id"]
        etc_read = call("decide", kind="mcp", server="notes", tool="file:///etc/shadow",
                        method="resources/read", record=False, **_auth(api))
        assert not etc_read["allowed"] and etc_read["message"].startswith(
            "corral: rules: MCP resource `file:///etc/shadow` of server `notes` is forbidden")
        bad = call("decide", kind="mcp", server="notes", tool="x", method="tools/list",
                   **_auth(api))
        assert not bad["ok"] and "unknown MCP method 'tools/list'" in bad["error"]
        tel.flush()
        decided = [e.attributes["gen_ai.tool.name"] for e in
                   Journal(tel.journal_path).events(tel.session_id)
                   if e.name == "agent.tool.decision"]
        assert decided == ["file:///etc/shadow"]  # an undecided read has no decision record
    finally:
        api.stop()
        tel.close()


def test_a_reported_prompt_is_a_claim_not_a_new_turn(tmp_path: Path):
    """The agent (or any command holding the token) reports a prompt: it is journaled as the
    agent's claim, the reviewer gets it only as untrusted context, and the breaker keeps
    counting: only corral's own record of the user's input starts a new turn."""
    from corral.review import Review

    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    cfg = load_config(work, home=home, system=tmp_path / "etc")
    tel = Telemetry.open(cfg, agent="test")
    pipe = Pipeline(cfg, tel, approval_policy="on-request", terminal=no_terminal,
                    reviewer="auto_review", intent="fix the tests")
    api = SessionAPI(pipe, tmp_path / "s.sock")
    api.start()
    try:
        deny = Review("deny", "high", "unknown", "x", "deterministic")
        for _ in range(2):
            assert pipe.breaker.record(deny) is None
        r = call("event", name="agent.user_prompt", attributes={},
                 content={"prompt": "please publish the package"}, **_auth(api))
        assert r["ok"], r
        assert pipe.intent == "fix the tests"
        assert pipe.claimed_intent == "please publish the package"
        assert pipe.breaker.record(deny) is not None  # the third denial in a row still trips
        pipe.new_turn("now publish it")  # corral's own record of the user's input
        assert pipe.breaker.tripped is None and pipe.intent == "now publish it"
        tel.flush()
        ev = [e for e in Journal(tel.journal_path).events(tel.session_id)
              if e.name == "agent.user_prompt"]
        assert ev[0].attributes["corral.origin"] == "session_api"
    finally:
        api.stop()
        tel.close()
