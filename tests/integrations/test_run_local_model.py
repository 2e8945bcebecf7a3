"""A model server on the host's 127.0.0.1, as Ollama or an LLM gateway would be, under
`corral run` with the real Codex CLI: one `[network] allow_local` entry makes it reachable from
inside the sandbox at the same address (no `[network] domains` rule, no `--allow-domain`);
without the entry, or with the server down, Codex is refused at once and corral says why in
one line, never a hang. Other loopback ports inside the sandbox stay the sandbox's own."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integrations.model_server import ModelServer, message, shell_call
from tests.integrations.test_run_e2e import EDIT_AND_TEST, HOOK_REFUSED, Run, codex, outputs
from tests.loopback import AcceptLoop

pytestmark = pytest.mark.slow
__all__ = ["codex"]  # the module-scoped fixture, shared with test_run_e2e

# Codex's retries are off (request_max_retries = stream_max_retries = 0, see codex_config), so
# a refused model connection ends the run within seconds; its own timeouts are far longer.
NO_HANG = 45.0


class LocalRun(Run):
    """`corral run -- codex exec` with only `[network] allow_local` set (no domain rules)."""

    def __init__(self, tmp_path: Path, allow_local: list[str]) -> None:
        super().__init__(tmp_path)
        self.allow_local = allow_local
        self.elapsed = 0.0

    def _run(self, srv: ModelServer, agent: list[str],
             env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "corral", "-c",
             f"network.allow_local={json.dumps(self.allow_local)}", "run", "--", *agent],
            cwd=self.work, env=env, capture_output=True, text=True, timeout=NO_HANG * 2,
            stdin=subprocess.DEVNULL)  # before corral forwarded the port, Codex hung here
        self.elapsed = time.monotonic() - start
        return proc


class Listener(AcceptLoop):
    """A TCP listener on the host's loopback that records whether anyone connected."""

    def __init__(self) -> None:
        self.accepted = 0
        super().__init__(self._answer)

    def _answer(self, conn: socket.socket) -> None:
        self.accepted += 1
        with conn:
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhost!")


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def test_codex_reaches_a_listed_local_model_server_and_corral_still_governs(codex, tmp_path):
    other = Listener()  # a host service on another loopback port: must stay unreachable
    probe = (f"curl -sS --noproxy '*' --max-time 5 http://127.0.0.1:{other.port}/ "
             "|| echo sandbox-own-loopback")
    srv = ModelServer([shell_call(EDIT_AND_TEST, "c0"), shell_call("rm -rf build", "c1"),
                       shell_call(probe, "c2"), message("Done.")]).start()
    assert srv.host == "127.0.0.1"  # in the sandbox's NO_PROXY: Codex connects directly
    port = srv._server.server_address[1] if srv._server else 0
    run = LocalRun(tmp_path, [f"127.0.0.1:{port}"])
    (run.work / "build").mkdir()
    try:
        proc = run.codex(codex, srv, "add calc.add, test it, clean the build, probe a port")
    finally:
        srv.stop()
        other.close()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = outputs(srv)
    assert len(out) == 3, out
    assert "tests ok" in out[0], out[0]  # everyday work runs
    assert HOOK_REFUSED in out[1] and "rm_recursive_force" in out[1], out[1]  # told why
    assert (run.work / "build").is_dir()
    assert "sandbox-own-loopback" in out[2] and "host!" not in out[2], out[2]
    assert other.accepted == 0
    # The model traffic went through the proxy's gate: one exact allow_local entry sufficed.
    nets = run.net()
    assert "allow_local" in nets[("127.0.0.1", "allow")], nets
    assert "corral: network:" not in proc.stderr, proc.stderr
    run.verify()


def test_codex_with_an_unlisted_local_model_fails_fast_with_a_corral_line(codex, tmp_path):
    srv = ModelServer([message("never reached")]).start()  # up, but not listed
    port = srv._server.server_address[1] if srv._server else 0
    run = LocalRun(tmp_path, [])
    try:
        proc = run.codex(codex, srv, "hello")
    finally:
        srv.stop()
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert run.elapsed < NO_HANG, run.elapsed
    assert srv.requests == []  # the sandbox's loopback is its own: nothing reached the host
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("corral: network:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert f"127.0.0.1:{port}" in lines[0] and "[network] allow_local" in lines[0], lines
    assert f'"127.0.0.1:{port}"' in lines[0] and "config.toml" in lines[0], lines
    nets = run.net()
    assert "not_allowed_local" in nets[("127.0.0.1", "deny")], nets


class Down(ModelServer):
    """A model server address where nothing listens."""

    def __init__(self, port: int) -> None:
        super().__init__([])
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def test_codex_with_a_listed_local_model_that_is_down_fails_fast_with_a_corral_line(
        codex, tmp_path):
    port = _free_port()
    run = LocalRun(tmp_path, [f"127.0.0.1:{port}"])
    proc = run.codex(codex, Down(port), "hello")
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert run.elapsed < NO_HANG, run.elapsed
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("corral: network:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert f"127.0.0.1:{port} (listed in [network] allow_local) refused the connection" \
        in lines[0], lines
