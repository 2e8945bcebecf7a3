"""The real Codex CLI and the real Claude Code CLI using the SDK test server through `corral mcp
proxy`, against the scripted model servers of tests/integrations. The agents' own MCP entries are
written plainly and then wrapped by `corral install-mcp`, as a user would.

How each agent offers MCP tools to its model (what the scripted turns rely on):

* Codex 0.169 sends a server's tools as a Responses API ``namespace`` tool ``mcp__NAME`` whose
  functions are the tool names; the model calls ``{"type": "function_call", "namespace":
  "mcp__notes", "name": "read_note"}``. Servers start in the background and their namespace joins
  the tool list of the first request after they are ready (incremental tools); ``required =
  true`` makes ``codex exec`` wait for the server before its first request.
* Claude Code defers MCP tools behind its ``ToolSearch`` tool: the first request names
  ``mcp__notes__read_note`` among the deferred tools, ``ToolSearch`` with ``select:`` loads
  their schemas, and the model calls ``mcp__NAME__TOOL``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integrations.model_server import AnthropicServer, ModelServer, message, text, tool_use
from tests.mcpgateway.conftest import SERVER, Env
from tests.rules.conftest import NATIVE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLAUDE = ROOT / ".tools" / "node" / "node_modules" / ".bin" / "claude"
REFUSAL = ("corral: rules: MCP tool `notes.delete_everything` is forbidden by policy "
           "(mcp.servers.notes.tools.delete_*)")


def _entry(gw: Env) -> dict[str, Any]:
    """The agent's own entry for the test server, before `corral install-mcp`."""
    return {"command": sys.executable, "args": [str(SERVER)],
            "env": {"CORRAL_HOME": str(gw.home), "CORRAL_SYSTEM_DIR": str(gw.etc),
                    "MCP_TEST_LOG": str(gw.tmp / "ran.log")}}


def _toml_entry(entry: dict[str, Any]) -> str:
    """Codex's ``[mcp_servers.notes]`` (JSON strings are TOML basic strings here)."""
    env = ", ".join(f"{k} = {json.dumps(v)}" for k, v in entry["env"].items())
    return (f"[mcp_servers.notes]\ncommand = {json.dumps(entry['command'])}\n"
            f"args = {json.dumps(entry['args'])}\nrequired = true\nenv = {{ {env} }}\n")


def _install(gw: Env, agent: str, env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "corral", "install-mcp", agent, "--user"],
                          env={**gw.env, **env}, capture_output=True, text=True, timeout=60,
                          cwd=gw.work)
    assert proc.returncode == 0, proc.stderr
    assert "notes" in proc.stdout


def _check_journal(gw: Env) -> None:
    """Each call journaled as agent.mcp.call, joined to its decision; the chain verifies."""
    calls = [(e.attributes["gen_ai.tool.name"], e.attributes["agent.mcp.outcome"], e.call_id)
             for e in gw.events("agent.mcp.call")]
    assert [c[:2] for c in calls] == [("read_note", "success"),
                                      ("delete_everything", "refused")]
    decisions = {e.call_id: e.attributes["agent.decision"]
                 for e in gw.events("agent.tool.decision")}
    assert [decisions[c[2]] for c in calls] == ["auto_approved", "forbidden"]
    assert gw.ran() == ["read_note a"]  # the forbidden call never reached the server
    verify = subprocess.run([sys.executable, "-m", "corral", "log", "verify"], env=gw.env,
                            capture_output=True, text=True, timeout=60, cwd=gw.work)
    assert verify.returncode == 0 and verify.stdout.startswith("journal OK"), verify.stderr


def _mcp_call(tool: str, args: dict[str, Any], call_id: str):  # type: ignore[no-untyped-def]
    def turn(req: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"type": "function_call", "namespace": "mcp__notes", "name": tool,
                 "arguments": json.dumps(args), "call_id": call_id, "id": f"fc_{call_id}"}]
    return turn


def test_codex_calls_mcp_tools_through_the_gateway(gw: Env) -> None:
    if not (NATIVE.exists() and os.access(NATIVE, os.X_OK)):
        pytest.fail("codex CLI not installed: run scripts/setup --dev (npm @openai/codex)")
    srv = ModelServer([_mcp_call("read_note", {"name": "a"}, "c0"),
                       _mcp_call("delete_everything", {"confirm": True}, "c1"),
                       message("The notes are safe.")]).start()
    codex_home = gw.tmp / "codex-home"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        'model = "test-model"\nmodel_provider = "scripted"\napproval_policy = "never"\n'
        'sandbox_mode = "danger-full-access"\n'
        f'[model_providers.scripted]\nname = "scripted"\nbase_url = "{srv.base_url}"\n'
        'wire_api = "responses"\nenv_key = "SCRIPTED_KEY"\nrequest_max_retries = 0\n'
        'stream_max_retries = 0\n\n'
        + _toml_entry(_entry(gw)))
    _install(gw, "codex", {"CODEX_HOME": str(codex_home)})
    try:
        proc = subprocess.run(
            [str(NATIVE), "exec", "--skip-git-repo-check", "-C", str(gw.work), "read note a"],
            env={**gw.env, "CODEX_HOME": str(codex_home), "SCRIPTED_KEY": "k"},
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        srv.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Codex offered the server's tools (through the gateway) in its first request
    first = {t.get("name"): t for t in srv.requests[0]["tools"]}
    assert {"read_note", "delete_everything"} <= {t["name"] for t in first["mcp__notes"]["tools"]}
    assert len(srv.requests) == 3
    # the allowed call's result reached the model; the refusal is what the model read next
    assert "note a: remember the milk" in json.dumps(srv.requests[1]["input"][-1])
    last = json.dumps(srv.requests[2]["input"][-1])
    assert srv.requests[2]["input"][-1]["call_id"] == "c1" and REFUSAL in json.loads(last)[
        "output"][-1]["text"]
    _check_journal(gw)


def _when_offered(srv: ModelServer, then: Any, offered: list[bool]) -> Any:
    """Claude Code in print mode does not wait for its MCP servers: until a request names the
    server's tools, the model waits a second (Bash) and asks again."""
    waits = iter(range(30))

    def turn(req: dict[str, Any]) -> list[dict[str, Any]]:
        seen = "mcp__notes__delete_everything" in json.dumps(req)
        if seen or (n := next(waits, None)) is None:
            offered.append(seen)
            return then(req)  # type: ignore[no-any-return]
        srv.turns.insert(0, turn)
        return [{"type": "tool_use", "id": f"toolu_w{n}", "name": "Bash",
                 "input": {"command": "sleep 1", "description": "wait"}}]
    return turn


def test_claude_code_calls_mcp_tools_through_the_gateway(gw: Env) -> None:
    if not (CLAUDE.exists() and os.access(CLAUDE, os.X_OK)):
        pytest.fail("Claude Code not installed: run scripts/setup --dev "
                    "(npm @anthropic-ai/claude-code)")
    srv = AnthropicServer([
        tool_use("mcp__notes__read_note", {"name": "a"}, "toolu_0"),
        tool_use("mcp__notes__delete_everything", {"confirm": True}, "toolu_1"),
        text("The notes are safe.")])
    offered: list[bool] = []
    srv.turns.insert(0, _when_offered(srv, tool_use("ToolSearch", {
        "query": "select:mcp__notes__read_note,mcp__notes__delete_everything"}, "toolu_s"),
        offered))
    srv.start()
    home = gw.tmp / "user-home"
    home.mkdir()
    (home / ".claude.json").write_text(json.dumps({"mcpServers": {"notes": {
        "type": "stdio", **_entry(gw)}}}))
    _install(gw, "claude-code", {"HOME": str(home)})
    env = {**gw.env, "HOME": str(home), "ANTHROPIC_BASE_URL": srv.root_url,
           "ANTHROPIC_API_KEY": "sk-test-key", "DISABLE_AUTOUPDATER": "1",
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    try:
        # Claude Code's own permission lets the server's tools run: corral decides
        proc = subprocess.run([str(CLAUDE), "-p", "--output-format", "json", "--model",
                               "claude-sonnet-4-5", "--allowedTools=mcp__notes,Bash(sleep 1)",
                               "--", "read note a"], env=env, cwd=gw.work, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        srv.stop()
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert offered == [True]  # the model was told of the server's (deferred) tools
    results = {}
    for req in srv.requests:
        for msg in req["messages"]:
            for block in msg["content"] if isinstance(msg["content"], list) else []:
                if block.get("type") == "tool_result":
                    results[block["tool_use_id"]] = block
    assert "note a: remember the milk" in json.dumps(results["toolu_0"]["content"])
    refused = results["toolu_1"]
    assert refused.get("is_error") is True and REFUSAL in json.dumps(refused["content"])
    _check_journal(gw)
