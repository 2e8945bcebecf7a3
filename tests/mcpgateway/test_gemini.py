"""The real Gemini CLI using the SDK test server through `corral mcp proxy`, against the scripted
Gemini API server of tests/integrations: its `mcpServers` entry in ~/.gemini/settings.json is
written plainly and wrapped by `corral install-mcp gemini`, as a user would. Gemini connects to
its MCP servers before its first model request and offers each tool as a function declaration
``mcp_<server>_<tool>``."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.integrations.gemini_server import GeminiServer, call, say
from tests.integrations.test_gemini_e2e import argv, gemini  # noqa: F401 (fixture)
from tests.mcpgateway.conftest import Env
from tests.mcpgateway.test_agents import REFUSAL, _check_journal, _entry, _install

pytestmark = pytest.mark.slow


def test_gemini_cli_calls_mcp_tools_through_the_gateway(gw: Env, gemini) -> None:  # noqa: F811
    srv = GeminiServer([call("mcp_notes_read_note", {"name": "a"}),
                        call("mcp_notes_delete_everything", {"confirm": True}),
                        say("The notes are safe.")]).start()
    home = gw.tmp / "user-home"
    settings = home / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "mcpServers": {"notes": _entry(gw)}}))
    _install(gw, "gemini", {"HOME": str(home)})
    wrapped = json.loads(settings.read_text())["mcpServers"]["notes"]
    assert wrapped["args"][:4] == ["-m", "corral", "mcp", "proxy"], wrapped
    env = {**gw.env, "HOME": str(home), "GEMINI_API_KEY": "test-key",
           "GOOGLE_GEMINI_BASE_URL": srv.root_url}
    try:
        proc = subprocess.run(argv(gemini, "read note a"), env=env, cwd=gw.work,
                              capture_output=True, text=True, timeout=180,
                              stdin=subprocess.DEVNULL)
    finally:
        srv.stop()
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    declared = {d["name"] for t in srv.requests[0]["tools"]
                for d in t.get("functionDeclarations", [])}
    assert {"mcp_notes_read_note", "mcp_notes_delete_everything"} <= declared, declared
    out = srv.tool_outputs()
    assert len(out) == 2, out
    assert "note a: remember the milk" in out[0], out[0]
    assert REFUSAL in out[1], out[1]  # the gateway's refusal is what the model read
    _check_journal(gw)
