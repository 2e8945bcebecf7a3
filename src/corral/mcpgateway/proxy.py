"""``corral mcp proxy NAME -- COMMAND [ARGS]`` and ``corral mcp proxy NAME --url URL``: start
the real server (or reach it) and run the gateway between it and the agent on our stdio.

Where the gateway runs decides who it asks and where the server runs:

* outside corral's sandbox (the agent runs on the host): the gateway opens its own
  ``Session`` (journal, pipeline, approvals through grants, the reviewer and `corral
  approve`); a stdio server runs in the sandbox under its own permission profile
  (``[mcp.servers.NAME] profile``, else ``default_permissions``), an HTTP server is reached
  through a managed proxy of its own (its network policy and questions);
* inside corral's sandbox (``corral run``: the agent starts its servers there): the gateway asks
  the run's supervisor through the session API; a stdio server runs in the agent's sandbox
  (bubblewrap cannot nest), an HTTP server is reached through the run's managed proxy.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio

from corral.errors import CorralError
from corral.mcpgateway.gateway import Decider, Gateway
from corral.mcpgateway.wire import DEFAULT_MAX_BYTES, FdChannel, StreamsChannel

EXIT_FORBIDDEN = 240  # as `corral exec`: refused by policy (here: requirements)
DEFAULT_TIMEOUT = 600.0
_SESSION_VARS = ("CORRAL_SUPERVISOR_SOCKET", "CORRAL_SUPERVISOR_TOKEN")


def _limits(table: dict[str, Any]) -> tuple[float | None, int]:
    """``[mcp.servers.NAME]``'s timeout (None: no limit) and message size limit."""
    timeout = table.get("timeout_seconds")
    timeout = float(DEFAULT_TIMEOUT if timeout is None else timeout)
    size = table.get("max_message_bytes")
    return (timeout or None), int(DEFAULT_MAX_BYTES if size is None else size)


def inside_sandbox() -> bool:
    """The gateway runs inside ``corral run``'s sandbox: the run's supervisor holds the
    configuration (``$CORRAL_HOME`` is hidden here), so none is loaded."""
    return os.environ.get("CORRAL_SANDBOX") == "1"


def run_proxy(cfg: Any, name: str, command: Sequence[str] = (), url: str | None = None, *,
              cwd: Path | None = None, pass_env: Sequence[str] = ()) -> int:
    """Serve until the agent or the server closes; the exit status of the gateway. ``cfg``:
    the effective configuration, None inside the sandbox (the supervisor's is asked)."""
    from corral.rules.mcp import server_refusal, server_table

    if bool(command) == bool(url):
        raise CorralError("mcp", "give the server as `-- COMMAND [ARGS]` or `--url URL`, "
                          "one of the two", "corral mcp proxy NAME -- COMMAND [ARGS...]")
    if url is not None and not url.startswith(("http://", "https://")):
        raise CorralError("mcp", f"--url must be an http:// or https:// URL, got {url!r}")
    workdir = (cwd or Path.cwd()).resolve()
    if inside_sandbox():
        return _inside(name, list(command), url, workdir)
    why = server_refusal(cfg, name)
    if why is not None:
        print(f"corral: mcp: {why}", file=sys.stderr, flush=True)
        return EXIT_FORBIDDEN
    return _outside(cfg, name, list(command), url, workdir, _claim_stdio(), pass_env,
                    _limits(server_table(cfg, name)))


def _claim_stdio() -> tuple[int, int]:
    """Our stdio is the wire: keep private copies, and point fds 0 and 1 elsewhere so no
    stray print (ours or a library's) and no child can write into the protocol."""
    rfd, wfd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    return rfd, wfd


def _inside(name: str, command: list[str], url: str | None, cwd: Path) -> int:
    from corral.mcpgateway.decider import ApiDecider

    sock, token = (os.environ.get(v) for v in _SESSION_VARS)
    if not sock or not token:
        print(f"corral: mcp: server {name!r} does not start: this runs inside corral's sandbox "
              "but without its session (CORRAL_SUPERVISOR_SOCKET unset), so nobody could "
              "decide its tool calls", file=sys.stderr, flush=True)
        return EXIT_FORBIDDEN
    decider = ApiDecider(name, sock, token)
    settings = decider.server_settings()  # the supervisor's requirements and config
    if settings.get("refusal"):
        print(f"corral: mcp: {settings['refusal']}", file=sys.stderr, flush=True)
        return EXIT_FORBIDDEN
    limits = _limits(settings)
    wire = _claim_stdio()
    env = {k: v for k, v in os.environ.items() if k not in _SESSION_VARS}
    if url is not None:  # HTTP(S)_PROXY in the sandbox is the run's managed proxy
        return _serve_http(None, name, url, decider, wire, limits, proxy=None)
    try:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
    except OSError as exc:
        raise CorralError("mcp", f"server {name!r} did not start: {command[0]}: "
                          f"{exc.strerror or exc}") from None
    return _serve_stdio(name, proc, decider, wire, limits)


def _outside(cfg: Any, name: str, command: list[str], url: str | None, cwd: Path,
             wire: tuple[int, int], pass_env: Sequence[str],
             limits: tuple[float | None, int]) -> int:
    from corral.mcpgateway.decider import LocalDecider
    from corral.rules.mcp import server_table
    from corral.supervisor.session import Session

    for var in _SESSION_VARS:  # another session's token is not the server's to have
        os.environ.pop(var, None)
    profile = server_table(cfg, name).get("profile")
    with Session.open(cfg, "corral-mcp", approval_policy=cfg.get("approval_policy"),
                      sandbox_profile=profile if isinstance(profile, str) else None,
                      reviewer=str(cfg.get("approvals_reviewer") or "user"), api=False,
                      network="none" if url is not None else None,
                      summary={"mcp_server": name}) as session:
        decider = LocalDecider(session, name)
        if url is not None:
            return _serve_http(cfg, name, url, decider, wire, limits, proxy=session)
        extra = session.telemetry.stamp_env("mcp")
        extra.update({k: os.environ[k] for k in pass_env if k in os.environ})
        try:
            proc = session.pipeline.sandbox.spawn(command, cwd, extra, stdin=subprocess.PIPE,
                                                  stdout=subprocess.PIPE)
        except OSError as exc:
            raise CorralError("mcp", f"server {name!r} did not start: {command[0]}: "
                              f"{exc.strerror or exc}") from None
        return _serve_stdio(name, proc, decider, wire, limits)


def _serve_stdio(name: str, proc: subprocess.Popen[bytes], decider: Decider,
                 wire: tuple[int, int], limits: tuple[float | None, int]) -> int:
    timeout, max_bytes = limits
    assert proc.stdin is not None and proc.stdout is not None

    async def main() -> None:
        agent = FdChannel(*wire, "the agent", max_bytes=max_bytes)
        upstream = FdChannel(proc.stdout.fileno(), proc.stdin.fileno(),  # type: ignore[union-attr]
                             f"MCP server {name!r}", max_bytes=max_bytes)
        gw = Gateway(name, agent, upstream, decider, timeout=timeout, exit_status=proc.poll)
        try:
            await gw.run()
        finally:
            await agent.aclose()

    try:
        anyio.run(main)
    finally:
        _stop(proc)
    return 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError):
            if stream is not None:
                stream.close()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve_http(cfg: Any, name: str, url: str, decider: Decider, wire: tuple[int, int],
                limits: tuple[float | None, int], *, proxy: Any) -> int:
    """``proxy``: this gateway's own session, whose pipeline answers the managed proxy's
    questions (None inside the sandbox: the environment's proxy is the run's)."""
    timeout, max_bytes = limits

    async def main() -> None:
        agent = FdChannel(*wire, "the agent", max_bytes=max_bytes)
        async with _http_upstream(cfg, name, url, proxy, timeout) as upstream:
            gw = Gateway(name, agent, upstream, decider, timeout=timeout)
            try:
                await gw.run()
            finally:
                await agent.aclose()

    anyio.run(main)
    return 0


@contextlib.asynccontextmanager
async def _http_upstream(cfg: Any, name: str, url: str, session: Any,
                         timeout: float | None) -> AsyncIterator[StreamsChannel]:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    managed = _managed_proxy(cfg, url, session) if session is not None else None
    blocked: list[str] = []

    async def refused(response: Any) -> None:
        """The managed proxy's refusal (``x-corral-block``): its line, for the agent."""
        if response.headers.get("x-corral-block"):
            await response.aread()
            line = response.text.strip().splitlines()[0][:500] if response.text.strip() \
                else f"corral: network: {response.headers['x-corral-block']}"
            blocked.append(line)
            print(line, file=sys.stderr, flush=True)

    try:
        client = httpx2.AsyncClient(
            proxy=managed[1] if managed else None, trust_env=managed is None,
            timeout=httpx2.Timeout(30.0, read=timeout or None),
            event_hooks={"response": [refused]})
        async with client, streamable_http_client(url, http_client=client) as streams:
            yield StreamsChannel(streams[0], streams[1], f"MCP server {name!r}",
                                 why=lambda: blocked.pop(0) if blocked else None)
    finally:
        if managed is not None:
            managed[0].stop()


def _managed_proxy(cfg: Any, url: str, session: Any) -> tuple[Any, str]:
    """A managed proxy for this gateway alone, on loopback with a random login: the server's
    own host is allowed (as an agent preset's hosts are), everything else is the network
    policy's (and its questions go to this session's pipeline)."""
    import secrets
    from urllib.parse import urlsplit

    from corral.netproxy import Listen, Proxy, policy_from_config
    from corral.supervisor.network import with_domains

    host = urlsplit(url).hostname or ""
    policy, warnings = with_domains(policy_from_config(cfg), preset=("mcp server", [host]))
    for w in warnings:
        print(w, file=sys.stderr)
    user, password = "corral", secrets.token_urlsafe(16)
    pipe = session.pipeline
    proxy = Proxy(policy, pipe.decide_network, on_decision=pipe.record_network,
                  listen=Listen(http=("127.0.0.1", 0), socks=None),
                  credentials=(user, password))
    ep = proxy.start()
    assert ep.http is not None
    return proxy, f"http://{user}:{password}@127.0.0.1:{ep.http[1]}"
