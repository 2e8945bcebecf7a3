"""The MCP gateway as an agent sees it: `python -m corral mcp proxy NAME -- <the SDK test server>`
as a subprocess, driven by the official SDK's client over stdio."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SERVER = Path(__file__).with_name("mcp_server.py")
CONFIG = '''
approval_policy = "on-request"
[mcp.servers.notes]
default = "prompt"
timeout_seconds = 60  # a loaded machine starts the sandboxed server slowly
tools = { "read_*" = "allow", "lookup" = "allow", "delete_*" = "forbidden" }
'''


@dataclass
class Env:
    home: Path
    work: Path
    etc: Path
    tmp: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CORRAL_SUPERVISOR", "CORRAL_SESSION"))}
        env.update(CORRAL_HOME=str(self.home), CORRAL_SYSTEM_DIR=str(self.etc),
                   MCP_TEST_LOG=str(self.tmp / "ran.log"),
                   MCP_TEST_DESCRIPTION_FILE=str(self.tmp / "description.txt"))
        return env

    def gateway(self, name: str = "notes", *server: str) -> list[str]:
        return [sys.executable, "-m", "corral", "mcp", "proxy", name, "--",
                *(server or (sys.executable, str(SERVER)))]

    def ran(self) -> list[str]:
        log = self.tmp / "ran.log"
        return log.read_text().splitlines() if log.exists() else []

    def events(self, name: str | None = None) -> list[Any]:
        from corral.telemetry import Journal, journal_file

        evs = list(Journal(journal_file(self.home)).events())
        return [e for e in evs if name is None or e.name == name]

    def requirements(self, text: str) -> None:
        self.etc.mkdir(exist_ok=True)
        (self.etc / "requirements.toml").write_text(text)


@pytest.fixture
def gw(tmp_path: Path) -> Env:
    home, work, etc = tmp_path / "home", tmp_path / "work", tmp_path / "etc"
    home.mkdir()
    work.mkdir()
    etc.mkdir()
    (home / "config.toml").write_text(CONFIG)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    return Env(home, work, etc, tmp_path)


@asynccontextmanager
async def client(argv: list[str], env: dict[str, str], cwd: Path) -> AsyncIterator[Any]:
    """An initialized SDK ``ClientSession`` talking to ``argv`` over stdio."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=str(cwd))
    with open(os.devnull, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            yield session


@contextmanager
def http_server(gw: Env, host: str = "127.0.0.1") -> Iterator[int]:
    """The SDK test server over streamable HTTP on ``host`` (its ``ran.log`` in the workspace,
    where a sandboxed agent may read it): its port, once it accepts connections."""
    port_file = gw.tmp / "port"
    server = subprocess.Popen([sys.executable, str(SERVER), "--http", str(port_file)],
                              env={**gw.env, "MCP_TEST_HOST": host,
                                   "MCP_TEST_LOG": str(gw.tmp / "ran.log")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() and server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        yield int(port_file.read_text())
    finally:
        server.terminate()
        server.wait(10)
