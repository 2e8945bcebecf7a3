"""The gateway inside `corral run`: an agent in the run's sandbox (a plain one,
tests/mcpgateway/mcp_agent.py, the real Codex CLI and the real Claude Code) starts `corral mcp proxy` itself; the
gateway finds no configuration there ($CORRAL_HOME is hidden) and asks the run's supervisor
through the session API (ApiDecider): whether the server may start, each decision, the pins; it
reports each call's outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.mcpgateway.conftest import SERVER, Env, http_server

pytestmark = pytest.mark.slow

AGENT = Path(__file__).with_name("mcp_agent.py")
RULES = '\nresources = { "note://*" = "allow" }\nprompts = { "*" = "forbidden" }\n'


def _run(gw: Env, *gateway_args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = gw.work / "out.json"
    gateway = [sys.executable, "-m", "corral", "mcp", "proxy", "notes", *gateway_args]
    proc = subprocess.run(
        [sys.executable, "-m", "corral", "run", "--", sys.executable, str(AGENT), str(out),
         "--", *gateway], env={**gw.env, "MCP_TEST_LOG": str(gw.work / "ran.log")},
        cwd=gw.work, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    got = json.loads(out.read_text()) if out.exists() else {}
    return proc, got


def _journal(gw: Env) -> list[dict[str, Any]]:
    log = subprocess.run([sys.executable, "-m", "corral", "log", "--json"], env=gw.env,
                         capture_output=True, text=True, timeout=60, cwd=gw.work)
    assert log.returncode == 0, log.stderr
    return [json.loads(line) for line in log.stdout.splitlines() if line.strip()]


def test_a_stdio_server_started_by_the_agent_inside_corral_run(gw: Env) -> None:
    with (gw.home / "config.toml").open("a") as f:
        f.write(RULES)
    proc, got = _run(gw, "--", sys.executable, str(SERVER))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"read_note", "delete_everything"} <= set(got["tools"])
    assert got["read_note"] == [False, "note a: remember the milk"]
    assert got["write_note"][0] and "`mcp notes.write_note` needs approval" in got["write_note"][1]
    assert got["delete_everything"][0] and got["delete_everything"][1].startswith(
        "corral: rules: MCP tool `notes.delete_everything` is forbidden by policy")
    assert got["resource"] == "welcome to the notes"  # allowed by its rule
    assert got["prompt"].startswith("error: corral: rules: MCP prompt `summarize` of server "
                                    "`notes` is forbidden by policy (mcp.servers.notes.prompts.*)")
    assert (gw.work / "ran.log").read_text().splitlines() == ["read_note a"]
    evs = _journal(gw)
    # the supervisor decided (its own records) ...
    decisions = [(e["attributes"]["gen_ai.tool.name"], e["attributes"]["agent.decision"])
                 for e in evs if e["name"] == "agent.tool.decision"]
    assert decisions == [("read_note", "auto_approved"), ("write_note", "denied"),
                         ("delete_everything", "forbidden"), ("note://welcome", "auto_approved"),
                         ("summarize", "forbidden")]
    pinned = [e for e in evs if e["name"] == "agent.mcp.tools"]
    assert [e["attributes"]["agent.mcp.tools.change"] for e in pinned] == ["pinned"]
    # ... and the gateway in the sandbox reported each call (the agent's word: session_api)
    calls = [e for e in evs if e["name"] == "agent.mcp.call"]
    assert [(e["attributes"]["mcp.method.name"], e["attributes"]["gen_ai.tool.name"],
             e["attributes"]["agent.mcp.outcome"]) for e in calls] == [
        ("tools/call", "read_note", "success"), ("tools/call", "write_note", "refused"),
        ("tools/call", "delete_everything", "refused"),
        ("resources/read", "note://welcome", "success"), ("prompts/get", "summarize", "refused")]
    assert {e["attributes"]["corral.origin"] for e in calls} == {"session_api"}
    by_call = {e["call_id"]: e for e in evs if e["name"] == "agent.tool.decision"}
    assert all(e["call_id"].removeprefix("api:") in by_call for e in calls)
    verify = subprocess.run([sys.executable, "-m", "corral", "log", "verify"], env=gw.env,
                            capture_output=True, text=True, timeout=60, cwd=gw.work)
    assert verify.returncode == 0, verify.stderr


def test_inside_corral_run_the_supervisors_requirements_decide_which_servers_start(
        gw: Env) -> None:
    gw.requirements('[mcp]\nallowed_servers = ["github"]\n')
    marker = gw.work / "started"
    proc = subprocess.run(
        [sys.executable, "-m", "corral", "run", "--", sys.executable, "-m", "corral", "mcp",
         "proxy", "notes", "--", "touch", str(marker)], env=gw.env, cwd=gw.work,
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 240, proc.stderr
    assert (f"corral: mcp: MCP server 'notes' is not in mcp.allowed_servers "
            f"({gw.etc / 'requirements.toml'}; allowed: github): it does not start"
            ) in proc.stderr
    assert not marker.exists()


def test_codex_inside_corral_run_calls_mcp_tools_through_the_gateway(gw: Env,
                                                                       tmp_path: Path) -> None:
    """The real Codex CLI under `corral run`, its MCP entry wrapped by `corral install-mcp`:
    Codex starts servers with only a few variables, so the entry names the session's
    (``env_vars``); the gateway in the sandbox asks the run's supervisor."""
    from tests.integrations.model_server import ModelServer, message
    from tests.integrations.test_run_e2e import Run, codex_config
    from tests.mcpgateway.test_agents import REFUSAL, _mcp_call
    from tests.rules.conftest import NATIVE

    srv = ModelServer([_mcp_call("read_note", {"name": "a"}, "c0"),
                       _mcp_call("delete_everything", {"confirm": True}, "c1"),
                       message("The notes are safe.")], host="127.0.0.2").start()
    run = Run(tmp_path / "run")
    run.chome.mkdir(parents=True)
    (run.chome / "config.toml").write_text((gw.home / "config.toml").read_text())
    log = run.work / "ran.log"
    (run.home / ".codex" / "config.toml").write_text(
        "".join(f"{k} = {v}\n" for k, v in codex_config(srv))
        + f'[mcp_servers.notes]\ncommand = "{sys.executable}"\nargs = ["{SERVER}"]\n'
        f'required = true\nenv = {{ MCP_TEST_LOG = "{log}" }}\n')
    assert run.corral("install-mcp", "codex", "--user").returncode == 0
    try:
        proc = run._run(srv, [str(NATIVE), "exec", "--skip-git-repo-check", "-C",
                              str(run.work), "read note a"], run.env)
    finally:
        srv.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "note a: remember the milk" in json.dumps(srv.requests[1]["input"][-1])
    assert REFUSAL in json.dumps(srv.requests[2]["input"][-1])
    assert log.read_text().splitlines() == ["read_note a"]
    evs = run.events()
    assert [(e["attributes"]["gen_ai.tool.name"], e["attributes"]["agent.mcp.outcome"])
            for e in evs if e["name"] == "agent.mcp.call"] == [
        ("read_note", "success"), ("delete_everything", "refused")]
    assert [e["attributes"]["agent.decision"] for e in evs if e["name"] ==
            "agent.tool.decision" and e["attributes"]["gen_ai.tool.name"] in (
                "read_note", "delete_everything")] == ["auto_approved", "forbidden"]
    assert run.corral("log", "verify").returncode == 0


def test_claude_code_inside_corral_run_calls_mcp_tools_through_the_gateway(
        gw: Env, tmp_path: Path) -> None:
    """The real Claude Code under `corral run` with corral's hooks, its MCP entry wrapped by
    `corral install-mcp claude-code`: the server starts inside the run's sandbox through the
    gateway, an allowed tool's result reaches the model, a forbidden one never reaches the
    server and the model reads the refusal; both calls are in the run's journal."""
    from tests.integrations.model_server import AnthropicServer, text, tool_use
    from tests.integrations.test_run_e2e import Run
    from tests.mcpgateway.test_agents import CLAUDE, REFUSAL, _when_offered

    if not CLAUDE.exists():
        pytest.fail("Claude Code not installed: run scripts/setup --dev")
    srv = AnthropicServer([
        tool_use("mcp__notes__read_note", {"name": "a"}, "toolu_0"),
        tool_use("mcp__notes__delete_everything", {"confirm": True}, "toolu_1"),
        text("The notes are safe.")], host="127.0.0.2")
    offered: list[bool] = []
    srv.turns.insert(0, _when_offered(srv, tool_use("ToolSearch", {
        "query": "select:mcp__notes__read_note,mcp__notes__delete_everything"}, "toolu_s"),
        offered))
    srv.start()
    run = Run(tmp_path / "run")
    run.chome.mkdir(parents=True)
    (run.chome / "config.toml").write_text((gw.home / "config.toml").read_text())
    log = run.work / "ran.log"
    (run.home / ".claude.json").write_text(json.dumps({"mcpServers": {"notes": {
        "type": "stdio", "command": sys.executable, "args": [str(SERVER)],
        "env": {"MCP_TEST_LOG": str(log)}}}}))
    installed = run.corral("install-mcp", "claude-code", "--user")
    assert installed.returncode == 0, installed.stderr
    try:
        # Claude Code's own permission for the server's tools (corral's hook only adds
        # refusals to MCP calls): corral decides at the gateway
        proc = run.claude(CLAUDE, srv, "read note a", extra=("--allowedTools=mcp__notes",))
    finally:
        srv.stop()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert offered == [True]  # the model was told of the server's (deferred) tools
    results = {block["tool_use_id"]: block for req in srv.requests for msg in req["messages"]
               for block in (msg["content"] if isinstance(msg["content"], list) else [])
               if block.get("type") == "tool_result"}
    assert "note a: remember the milk" in json.dumps(results["toolu_0"]["content"])
    assert results["toolu_1"].get("is_error") is True
    assert REFUSAL in json.dumps(results["toolu_1"]["content"])
    assert log.read_text().splitlines() == ["read_note a"]  # the refused call never arrived
    evs = run.events()
    # the gateway's record of the call that ran, with its outcome (corral's hook records its
    # own decision too: with both in the path, Claude Code's MCP calls are decided twice)
    assert [(e["attributes"]["gen_ai.tool.name"], e["attributes"]["agent.mcp.outcome"])
            for e in evs if e["name"] == "agent.mcp.call"
            and "agent.mcp.outcome" in e["attributes"]] == [("read_note", "success")]
    refused = [e["attributes"]["agent.decision"] for e in evs
               if e["name"] == "agent.tool.decision"
               and e["attributes"].get("gen_ai.tool.name") == "delete_everything"]
    assert refused and set(refused) == {"forbidden"}, refused
    assert run.corral("log", "verify").returncode == 0


def test_a_streamable_http_server_through_the_runs_managed_proxy(gw: Env) -> None:
    """`--url` inside `corral run`: the gateway's HTTP client goes through the run's managed
    proxy (the sandbox's HTTP_PROXY). The server listens on 127.0.0.2: host loopback that no
    NO_PROXY entry matches (127.0.0.1 inside the sandbox is the sandbox's own)."""
    with http_server(gw, "127.0.0.2") as port:
        with (gw.home / "config.toml").open("a") as f:
            f.write(f'\n[network]\nallow_local = ["127.0.0.2:{port}"]\n')
        proc, got = _run(gw, "--url", f"http://127.0.0.2:{port}/mcp")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert got["read_note"] == [False, "note a: remember the milk"]
    assert got["delete_everything"][0] and "forbidden by policy" in got["delete_everything"][1]
    assert gw.ran() == ["read_note a"]
    evs = _journal(gw)
    assert ("127.0.0.2", "allow") in {
        (e["attributes"]["server.address"], e["attributes"]["network.policy.decision"])
        for e in evs if e["name"] == "agent.network.decision"}
    assert [e["attributes"]["agent.mcp.outcome"] for e in evs
            if e["name"] == "agent.mcp.call"][:3] == ["success", "refused", "refused"]
