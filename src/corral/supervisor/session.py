"""``Session``: one supervised session, the same object for ``corral exec`` (one action), ``corral
run`` (a whole agent in the sandbox) and an agent's hooks (a session behind an agent outside
corral's sandbox).

It owns the journal, the decision pipeline, and as asked for: the local API socket the hooks
call, the managed proxy (when the permission profile's network is ``proxy``, its unknown hosts
are the pipeline's network questions and its decisions go to the journal), and an agent
integration (the OTLP import receiver) plugged in through :class:`Integration`, so the
supervisor never imports ``corral.integrations``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

BRIDGE_API_PORT, BRIDGE_OTLP_PORT = 7070, 4318  # loopback ports inside the sandbox

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:  # an interface for the type checker only: typing is not imported at run time
    from typing import Any, Protocol

    class Integration(Protocol):
        """What an agent integration adds to a session (``corral.integrations.session``
        implements it for Codex and Claude Code: their OpenTelemetry export, imported as
        claims)."""

        agent: str

        def start(self, session: Session) -> None:
            """Start serving (after the journal and the pipeline exist)."""

        def stop(self) -> None:
            """Stop serving; called before the journal closes."""

        def sockets(self) -> tuple[Path, ...]:
            """Unix sockets the agent inside the sandbox reaches through loopback bridges."""

        def env(self, endpoint: str | None = None) -> dict[str, str]:
            """The agent's environment for exporting to ``endpoint`` (None: where it listens)."""

        def args(self, endpoint: str | None = None) -> list[str]:
            """Extra agent arguments (put after the program name) for the same."""


def _require_login(cfg: Any, tel: Any, agent: str) -> None:
    """Enforced login (``login.forced_*`` requirements, docs/fleet.md): refuse before anything
    runs unless the user is signed in as required; the refusal is journaled, then raised."""
    req = cfg.requirements
    if req.get("login.forced_method") is None and req.get("login.forced_workspace_id") is None:
        return
    from corral.fleet import LoginRequired, require_login

    try:
        require_login(cfg, Path(cfg.corral_home))
    except LoginRequired as exc:
        try:
            tel.emit("agent.login.refused", {"gen_ai.agent.name": agent,
                                             "login.refusal": exc.message}, wait=True)
        finally:
            tel.close()
        raise


class Session:
    """Open with ``Session.open(cfg, agent, ...)``; always ``close()`` (or use ``with``)."""

    def __init__(self, agent: str, telemetry: Any, pipeline: Any, api: Any, rundir: Path,
                 proxy: Any = None, integration: Integration | None = None) -> None:
        self.agent = agent
        self.telemetry = telemetry
        self.pipeline = pipeline
        self.api = api
        self.rundir = rundir
        self.proxy = proxy
        self.integration = integration
        # Called (once) when integrations.hooks_missing = "stop" finds the hooks inactive:
        # ends the agent (set by corral run).
        self.stop_agent: Callable[[], None] | None = None
        self._hooks_reported = False
        self._lock = threading.Lock()

    @classmethod
    def open(cls, cfg: Any, agent: str, *, approval_policy: Any = "on-request",
             asker: Any | None = None, sandbox_profile: str | None = None,
             reviewer: str = "user", intent: str | None = None, api: bool = True,
             integration: Integration | None = None, socket_dir: Path | None = None,
             network: str | None = None, allow_domains: Sequence[str] = (),
             deny_domains: Sequence[str] = (),
             preset: tuple[str, Sequence[str]] | None = None,
             summary: dict[str, Any] | None = None, defer_to_agent: bool = False,
             model_urls: Sequence[tuple[str, str]] = (),
             forward_for: Sequence[str] | None = None) -> Session:
        """Start the journal, the managed proxy (when the resolved network mode is proxy), the
        pipeline, the API socket (``api``) and the integration.

        ``asker`` answers prompts at the terminal (default: nobody; `corral approve` may still
        answer when ``approvals.queue_timeout_seconds`` is set). ``network`` is an explicit
        mode (a flag); ``preset`` is (agent name, model API hosts) allowed for an agent.
        ``forward_for``: a command whose loopback ``allow_local`` entries (and loopback model
        URLs) the managed proxy forwards into the sandbox at the same address (``corral exec``;
        ``corral run`` adds its agent's own). ``model_urls`` ((url, where) pairs) are the
        agent's configured model URLs, for the credential broker. ``intent`` is the user's
        request as given to corral itself: the only request the reviewer trusts. ``defer_to_agent``: a prompt nobody can answer goes to the agent's own
        approval, recorded as ``deferred_to_agent`` (hook sessions outside ``corral run`` only).
        Sockets live in a private directory under ``socket_dir`` (default:
        ``corral.paths.socket_parent``), never where the sandbox could list them."""
        from corral.paths import socket_parent
        from corral.sandbox import NetworkMode, network_mode
        from corral.supervisor.network import start_proxy
        from corral.supervisor.pipeline import Pipeline, no_terminal
        from corral.telemetry import SessionStart, Telemetry

        tel = Telemetry.open(cfg, agent=agent)
        _require_login(cfg, tel, agent)
        parent = socket_dir or socket_parent(Path(cfg.corral_home))
        rundir = _private_dir(parent)
        server = proxy = None
        try:
            mode = network_mode(cfg, sandbox_profile, network)
            net = None
            holder: list[Any] = []
            if mode is NetworkMode.PROXY:
                proxy, net = start_proxy(
                    cfg, rundir / "p.sock", allow=allow_domains, deny=deny_domains,
                    preset=preset, ask=lambda q: holder[0].decide_network(q),
                    on_decision=lambda d: holder[0].record_network(d), model_urls=model_urls)
                if forward_for is not None:
                    from corral.netproxy.local import for_agent

                    forwards = for_agent(proxy, rundir, forward_for, None, net.bridge_ports)
                    net = net.replace(extra_bridges=net.extra_bridges + forwards)
            pipe = Pipeline(cfg, tel, approval_policy=approval_policy,
                            terminal=asker or no_terminal, sandbox_profile=sandbox_profile,
                            reviewer=reviewer, intent=intent, network=net)
            pipe.defer_to_agent = defer_to_agent
            holder.append(pipe)
            policy_name = approval_policy if isinstance(approval_policy, str) else "granular"
            from corral.sandbox.envpolicy import dropped

            # the variables the sandbox leaves out and why: names only, never a value
            left_out = {} if pipe.plan.full_access else dict(
                dropped(pipe.plan.env_policy, os.environ))
            tel.emit_event(SessionStart.from_summary(
                {**(summary or {}), "approval_policy": approval_policy, "reviewer": reviewer,
                 "profile": pipe.plan.profile, "network": mode.value,
                 "rules": pipe.policy.rule_count, "env_dropped": left_out,
                 # the credentials the proxy holds for the sandbox: names and hosts, no value
                 "secrets_brokered": {c.name: c.hosts for c in getattr(
                     getattr(proxy, "broker", None), "credentials", ())}},
                approval_policy=policy_name, sandbox_profile=pipe.plan.profile,
                network_mode=mode.value, cwd=str(pipe.plan.cwd),
                config_sources=tuple(cfg.sources + cfg.requirements.sources)), wait=api)
            if intent:  # the user's request as given to corral itself (`corral exec --intent`):
                # corral's own record (origin pipeline), the request triage and review trust
                from corral.telemetry import UserPrompt

                tel.emit_event(UserPrompt(prompt=intent), wait=api)
            if api:  # imported only here: `corral exec` has no socket (~10 ms of its start)
                from corral.supervisor.api import SessionAPI

                server = SessionAPI(pipe, rundir / "session.sock")
                server.start()
            session = cls(agent, tel, pipe, server, rundir, proxy, integration)
            if integration is not None:
                integration.start(session)
            return session
        except BaseException:
            if server is not None:
                server.stop()
            if proxy is not None:
                proxy.stop()
            _remove_dir(rundir)
            tel.close()
            raise

    def agent_tool_call(self, evidence: str) -> None:
        """The agent's own telemetry shows a tool call. If no hook has called this session's
        API by then, the hooks are not active (not installed, or not trusted by the agent): its
        tool calls bypass corral's rules and approvals. Said once on the terminal and in the
        journal (``agent.hooks.inactive``); with ``integrations.hooks_missing = "stop"`` the
        agent is ended. Best effort: any command inside holding the session token also counts
        as a call."""
        if self.api is None or self.api.calls:
            return
        with self._lock:
            if self._hooks_reported:
                return
            self._hooks_reported = True
        action = str(self.pipeline.cfg.get("integrations.hooks_missing", "warn") or "warn")
        stop = action == "stop" and self.stop_agent is not None
        line = (f"corral: integrations: {self.agent} ran a tool ({evidence}) but its corral "
                "hooks never called in: its actions bypass corral's rules and approvals "
                f"(`corral install-hooks {self.agent}`, then trust the hooks in the agent)")
        if stop:
            line += '; stopping the agent (integrations.hooks_missing = "stop")'
        import sys

        print(line, file=sys.stderr, flush=True)
        self.telemetry.emit("agent.hooks.inactive", {
            "gen_ai.agent.name": self.agent, "agent.hooks.action": "stop" if stop else "warn",
            "agent.hooks.evidence": evidence}, wait=True)
        if stop and self.stop_agent is not None:
            self.stop_agent()

    @property
    def network(self) -> Any:
        """The sandbox's network plan for this session (the managed proxy's when running)."""
        return self.pipeline.plan.network

    @property
    def env(self) -> dict[str, str]:
        """Variables for the agent's process outside a sandbox: the supervisor socket and token
        for its hooks, and the integration's telemetry export."""
        env = dict(self.api.env) if self.api is not None else {}
        env["CORRAL_SESSION_ID"] = self.telemetry.session_id
        if self.integration is not None:
            env.update(self.integration.env())
        return env

    @property
    def args(self) -> list[str]:
        """Extra agent arguments (Codex: ``-c otel.…`` overrides) to put after the program."""
        return self.integration.args() if self.integration is not None else []

    # -- an agent inside the sandbox: it reaches the sockets through loopback bridges -------

    def bridges(self, api_port: int = BRIDGE_API_PORT, otlp_port: int = BRIDGE_OTLP_PORT,
                ) -> tuple[tuple[int, Path], ...]:
        """(loopback port inside the sandbox, host unix socket) pairs for the sandbox's
        ``NetworkPlan.extra_bridges``: the session API and the integration's socket."""
        out: list[tuple[int, Path]] = []
        if self.api is not None:
            out.append((api_port, Path(self.api.socket_path)))
        if self.integration is not None:
            out += [(otlp_port, p) for p in self.integration.sockets()[:1]]
        return tuple(out)

    def env_in_sandbox(self, api_port: int = BRIDGE_API_PORT,
                       otlp_port: int = BRIDGE_OTLP_PORT) -> dict[str, str]:
        """``env`` as seen from inside the sandbox (the bridges' loopback addresses)."""
        env = dict(self.env)
        if self.api is not None:
            env["CORRAL_SUPERVISOR_SOCKET"] = f"tcp:127.0.0.1:{api_port}"  # as supervisor.api
        if self.integration is not None and self.integration.sockets():
            env.update(self.integration.env(f"http://127.0.0.1:{otlp_port}"))
        return env

    def args_in_sandbox(self, otlp_port: int = BRIDGE_OTLP_PORT) -> list[str]:
        if self.integration is None:
            return []
        if not self.integration.sockets():
            return self.integration.args()
        return self.integration.args(f"http://127.0.0.1:{otlp_port}")

    def close(self) -> None:
        """Stop the integration, the API and the proxy, then commit and sign the journal."""
        if self.integration is not None:
            with contextlib.suppress(Exception):
                self.integration.stop()
        if self.api is not None:
            with contextlib.suppress(Exception):
                self.api.stop()
        if self.proxy is not None:
            with contextlib.suppress(Exception):
                self.proxy.stop()
        _remove_dir(self.rundir)
        with contextlib.suppress(Exception):  # the session's grants database connection
            self.pipeline.close_grants()
        self.telemetry.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def environ_without_session(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ours) without another session's supervisor variables."""
    base = dict(os.environ if env is None else env)
    for key in ("CORRAL_SUPERVISOR_SOCKET", "CORRAL_SUPERVISOR_TOKEN", "CORRAL_SESSION_ID"):
        base.pop(key, None)
    return base


def _private_dir(parent: Path) -> Path:
    """A new 0700 directory for the session's sockets (``tempfile.mkdtemp`` without importing
    tempfile, shutil, bz2, lzma and random on every ``corral exec``)."""
    while True:
        path = parent / f"corral-session-{os.urandom(6).hex()}"
        try:
            path.mkdir(0o700)
        except FileExistsError:
            continue
        return path


def _remove_dir(path: Path) -> None:
    """Remove the session's directory (empty after ``corral exec``: no import for that)."""
    try:
        path.rmdir()
    except FileNotFoundError:
        return
    except OSError:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
