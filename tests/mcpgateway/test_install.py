"""`corral install-mcp`: each agent's MCP entries through `corral mcp proxy`, idempotent, and
`--remove` gives the file back exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit

from corral.mcpgateway.install import install_mcp

CODEX = '''# my codex settings
model = "o4"

[mcp_servers.files]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "/src"]
env = { "FS_TOKEN" = "t" }   # kept

[mcp_servers.remote]
url = "https://mcp.example.com/mcp"

[mcp_servers.authed]
url = "https://api.example.com/mcp"
bearer_token_env_var = "API_TOKEN"
'''

CLAUDE = {"numStartups": 3, "mcpServers": {
    "files": {"type": "stdio", "command": "python3", "args": ["server.py"], "env": {"K": "v"}},
    "web": {"type": "http", "url": "https://mcp.example.com/mcp"},
    "old": {"type": "sse", "url": "https://sse.example.com/sse"}}}

GEMINI = {"theme": "dark", "mcpServers": {
    "files": {"command": "node", "args": ["srv.js"], "cwd": "/src", "timeout": 3000},
    "stream": {"httpUrl": "https://mcp.example.com/mcp"},
    "sse": {"url": "https://sse.example.com/sse"}}}


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "user" / ".codex"))
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "corral"))
    (tmp_path / "user" / ".codex").mkdir(parents=True)
    (tmp_path / "user" / ".gemini").mkdir(parents=True)
    return tmp_path / "user"


def _proxy_args(name: str) -> list[str]:
    return ["-m", "corral", "mcp", "proxy", name]


def test_codex_wraps_stdio_and_http_keeps_the_rest_and_restores_exactly(homes: Path) -> None:
    path = homes / ".codex" / "config.toml"
    path.write_text(CODEX)
    r = install_mcp("codex", "user")
    assert r.wrapped == ["files", "remote"]
    assert r.skipped == [("authed", "its bearer_token_env_var would not reach the server "
                                    "through the gateway")]
    doc = tomlkit.parse(path.read_text()).unwrap()
    files = doc["mcp_servers"]["files"]
    assert files["command"] == sys.executable
    assert files["args"] == [*_proxy_args("files"), "--pass-env", "FS_TOKEN", "--", "npx", "-y",
                             "@modelcontextprotocol/server-filesystem", "/src"]
    assert files["env"] == {"FS_TOKEN": "t"}
    # Codex hands a server only a few variables: the gateway's session ones are named
    session = ["CORRAL_SANDBOX", "CORRAL_SUPERVISOR_SOCKET", "CORRAL_SUPERVISOR_TOKEN"]
    assert files["env_vars"] == session
    assert doc["mcp_servers"]["remote"] == {
        "command": sys.executable, "env_vars": session,
        "args": [*_proxy_args("remote"), "--url", "https://mcp.example.com/mcp"]}
    assert doc["model"] == "o4" and "# my codex settings" in path.read_text()
    wrapped = path.read_bytes()
    again = install_mcp("codex", "user")  # idempotent
    assert not again.changed and path.read_bytes() == wrapped
    back = install_mcp("codex", "user", remove=True)
    assert back.restored == ["files", "remote"] and path.read_text() == CODEX


def test_remove_after_the_user_changed_the_file_restores_only_our_entries(homes: Path) -> None:
    path = homes / ".codex" / "config.toml"
    path.write_text(CODEX)
    install_mcp("codex", "user")
    path.write_text(path.read_text().replace('model = "o4"', 'model = "o5"'))
    install_mcp("codex", "user", remove=True)
    doc = tomlkit.parse(path.read_text()).unwrap()
    assert doc["model"] == "o5"  # the user's change is kept
    assert doc["mcp_servers"]["files"]["command"] == "npx"
    assert doc["mcp_servers"]["remote"] == {"url": "https://mcp.example.com/mcp"}


def test_claude_code_user_and_project(homes: Path, tmp_path: Path) -> None:
    user = homes / ".claude.json"
    user.write_text(json.dumps(CLAUDE, indent=2) + "\n")
    original = user.read_text()
    r = install_mcp("claude-code", "user")
    assert r.wrapped == ["files", "web"]
    assert r.skipped == [("old", "type 'sse' (only stdio and http pass the gateway)")]
    doc = json.loads(user.read_text())
    assert doc["numStartups"] == 3
    assert doc["mcpServers"]["files"] == {
        "type": "stdio", "command": sys.executable,
        "args": [*_proxy_args("files"), "--pass-env", "K", "--", "python3", "server.py"],
        "env": {"K": "v"}}
    assert doc["mcpServers"]["web"] == {
        "type": "stdio", "command": sys.executable,
        "args": [*_proxy_args("web"), "--url", "https://mcp.example.com/mcp"]}
    assert install_mcp("claude-code", "user", remove=True).restored == ["files", "web"]
    assert user.read_text() == original
    project = tmp_path / "proj"
    project.mkdir()
    (project / ".mcp.json").write_text('{"mcpServers": {"x": {"command": "x"}}}')
    r = install_mcp("claude-code", "project", project_root=project)
    assert r.path == project / ".mcp.json" and r.wrapped == ["x"]


def test_gemini_settings(homes: Path) -> None:
    path = homes / ".gemini" / "settings.json"
    path.write_text(json.dumps(GEMINI))
    original = path.read_text()
    r = install_mcp("gemini", "user")
    assert r.wrapped == ["files", "stream"]
    assert r.skipped == [("sse", "an SSE server (url); only stdio and streamable HTTP "
                                 "(httpUrl) pass")]
    doc = json.loads(path.read_text())
    assert doc["mcpServers"]["files"] == {
        "command": sys.executable, "args": [*_proxy_args("files"), "--", "node", "srv.js"],
        "cwd": "/src", "timeout": 3000}
    assert doc["mcpServers"]["stream"] == {
        "command": sys.executable,
        "args": [*_proxy_args("stream"), "--url", "https://mcp.example.com/mcp"]}
    install_mcp("gemini", "user", remove=True)
    assert path.read_text() == original


def test_the_cli_says_what_it_did(homes: Path) -> None:
    path = homes / ".gemini" / "settings.json"
    path.write_text(json.dumps(GEMINI))
    env = dict(os.environ)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "corral", "install-mcp", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    out = cli("gemini")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"corral: {path}: now through corral: files, stream"
    assert "corral: mcp: sse left as it is" in out.stderr
    assert cli("gemini").stdout.strip() == f"corral: {path}: already up to date"
    assert cli("nope").returncode != 0
