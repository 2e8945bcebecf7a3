"""``AgentSession``: everything a governed agent needs from outside its sandbox, in one object —
the journal, the decision pipeline, the session's local API socket (for the hooks) and the OTLP
receiver (for the agent's own telemetry) — plus the environment and arguments that point the
agent at them. ``corral run`` is this plus a sandboxed spawn of the agent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from corral.errors import CorralError
from corral.integrations.otel_map import args_for_agent, env_for_agent

BRIDGE_API_PORT, BRIDGE_OTLP_PORT = 7070, 4318  # loopback ports inside the sandbox
AGENT_NAMES = {"codex": "codex", "claude": "claude-code", "claude-code": "claude-code"}


def agent_of(argv0: str) -> str | None:
    """Which integration an agent command line needs (``codex``, ``claude`` -> claude-code)."""
    return AGENT_NAMES.get(Path(argv0).name)


def with_agent_args(argv: list[str], agent: str, extra: list[str]) -> list[str]:
    """``argv`` with ``extra`` right after the program name (Codex takes ``-c`` globally)."""
    return [argv[0], *extra, *argv[1:]] if extra else list(argv)


class AgentSession:
    """Open with ``AgentSession.open(cfg, "codex", ...)``; always ``close()``."""

    def __init__(self, agent: str, telemetry: Any, pipeline: Any, api: Any,
                 receiver: Any | None, rundir: Path) -> None:
        self.agent = agent
        self.telemetry = telemetry
        self.pipeline = pipeline
        self.api = api
        self.receiver = receiver
        self.rundir = rundir
        self.endpoint = receiver.start() if receiver is not None else None

    @classmethod
    def open(cls, cfg: Any, agent: str, *, approval_policy: Any = "on-request",
             asker: Any | None = None, sandbox_profile: str | None = None,
             receive_telemetry: bool = True, socket_dir: Path | None = None,
             receiver_on_socket: bool = False, reviewer: str = "user",
             network_mode: str | None = None, intent: str | None = None) -> AgentSession:
        """Start the journal, pipeline, API socket and (optionally) the OTLP receiver.

        ``asker`` answers prompts: a callable ``question -> corral.approvals.Choice | None``
        (default: nobody at a terminal; `corral approve` may still answer when
        ``approvals.queue_timeout_seconds`` is set, else the prompt goes to the agent's own
        approval).
        The socket lives in a private directory under ``socket_dir`` (default: the system temp
        directory), never under CORRAL_HOME, which the sandbox hides. With
        ``receiver_on_socket`` the OTLP receiver listens on a unix socket next to it, for an
        agent inside a sandbox that reaches both through loopback bridges (see ``bridges``).
        ``intent`` is the user's request as given to corral itself: the only request the
        reviewer trusts (prompts the agent reports are claims)."""
        from corral.integrations.otlp_receiver import Receiver
        from corral.supervisor.api import SessionAPI
        from corral.telemetry import SessionStart, Telemetry
        from corral.telemetry.quota import Quota, limits_from_config

        if receive_telemetry and agent not in ("codex", "claude-code"):
            raise CorralError("integrations", f"no telemetry import for agent {agent!r}",
                              hint="codex or claude-code, or receive_telemetry=False")
        tel = Telemetry.open(cfg, agent=agent)
        rundir = Path(tempfile.mkdtemp(prefix="corral-session-", dir=socket_dir))
        api = None
        try:
            pipe = make_pipeline(cfg, tel, approval_policy, asker, sandbox_profile, reviewer,
                                 intent)
            network = network_mode or pipe.plan.network.mode.value
            policy_name = approval_policy if isinstance(approval_policy, str) else "granular"
            tel.emit_event(SessionStart.from_summary(
                {"agent": agent, "approval_policy": approval_policy, "reviewer": reviewer,
                 "profile": pipe.plan.profile, "network": network,
                 "rules": pipe.policy.rule_count},
                approval_policy=policy_name, sandbox_profile=pipe.plan.profile,
                network_mode=network, cwd=str(pipe.plan.cwd),
                config_sources=tuple(cfg.sources + cfg.requirements.sources)), wait=True)
            api = SessionAPI(pipe, rundir / "session.sock")
            api.start()
            receiver = None
            if receive_telemetry:
                # On a socket no token is needed (its mode and the peer uid authenticate), so
                # none reaches Codex's command line, which every local user can read.
                # On TCP, Codex (whose exporter only takes `-c` arguments) gets no token
                # either: the receiver takes only this user's processes instead.
                codex_tcp = agent == "codex" and not receiver_on_socket
                receiver = Receiver(tel, unix_socket=rundir / "otlp.sock"
                                    if receiver_on_socket else None,
                                    quota=Quota(tel, "import", *limits_from_config(cfg)),
                                    token="" if codex_tcp else None,
                                    same_user_only=codex_tcp)
            return cls(agent, tel, pipe, api, receiver, rundir)
        except BaseException:
            if api is not None:
                api.stop()
            shutil.rmtree(rundir, ignore_errors=True)
            tel.close()
            raise

    @property
    def env(self) -> dict[str, str]:
        """Variables for the agent's process: the supervisor socket and token for its hooks,
        and (Claude Code) where to export its telemetry."""
        env = dict(self.api.env)
        env["CORRAL_SESSION_ID"] = self.telemetry.session_id
        if self.endpoint is not None and self.endpoint.startswith("http") and \
                self.receiver is not None:
            env.update(env_for_agent(self.agent, self.endpoint, token=self.receiver.token,
                                     tier=self.telemetry.tier))
        return env

    @property
    def args(self) -> list[str]:
        """Extra agent arguments (Codex: ``-c otel.…`` overrides) to put after the program."""
        if self.endpoint is None or not self.endpoint.startswith("http") or \
                self.receiver is None:
            return []
        return args_for_agent(self.agent, self.endpoint, token=self.receiver.token,
                              tier=self.telemetry.tier)

    # -- an agent inside the sandbox: it reaches both sockets through loopback bridges -------

    def bridges(self, api_port: int = BRIDGE_API_PORT, otlp_port: int = BRIDGE_OTLP_PORT,
                ) -> tuple[tuple[int, Path], ...]:
        """(loopback port inside the sandbox, host unix socket) pairs, for the sandbox's
        ``NetworkPlan.extra_bridges``: the session API, and the receiver when it listens on a
        socket (``receiver_on_socket=True``)."""
        out: list[tuple[int, Path]] = [(api_port, Path(self.api.socket_path))]
        if self.receiver is not None and self.receiver.unix_socket is not None:
            out.append((otlp_port, Path(self.receiver.unix_socket)))
        return tuple(out)

    def env_in_sandbox(self, api_port: int = BRIDGE_API_PORT,
                       otlp_port: int = BRIDGE_OTLP_PORT) -> dict[str, str]:
        """``env`` as seen from inside the sandbox (the bridges' loopback addresses)."""
        env = dict(self.env)
        env["CORRAL_SUPERVISOR_SOCKET"] = f"tcp:127.0.0.1:{api_port}"  # as supervisor.api
        if self.receiver is not None and self.receiver.unix_socket is not None:
            env.update(env_for_agent(self.agent, f"http://127.0.0.1:{otlp_port}",
                                     token=self.receiver.token, tier=self.telemetry.tier))
        return env

    def args_in_sandbox(self, otlp_port: int = BRIDGE_OTLP_PORT) -> list[str]:
        if self.receiver is None or self.receiver.unix_socket is None:
            return self.args
        return args_for_agent(self.agent, f"http://127.0.0.1:{otlp_port}",
                              token=self.receiver.token, tier=self.telemetry.tier)

    def close(self) -> None:
        """Stop accepting hook calls and telemetry, then commit and sign the journal."""
        with contextlib.suppress(Exception):
            if self.receiver is not None:
                self.receiver.stop()
        with contextlib.suppress(Exception):
            self.api.stop()
        shutil.rmtree(self.rundir, ignore_errors=True)
        self.telemetry.close()

    def __enter__(self) -> AgentSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_pipeline(cfg: Any, tel: Any, approval_policy: Any, asker: Any | None,
                  sandbox_profile: str | None, reviewer: str = "user",
                  intent: str | None = None) -> Any:
    """The session's pipeline; ``asker`` answers at the terminal (default: nobody there)."""
    from corral.supervisor.pipeline import Pipeline, no_terminal

    return Pipeline(cfg, tel, approval_policy=approval_policy, terminal=asker or no_terminal,
                    sandbox_profile=sandbox_profile, reviewer=reviewer, intent=intent)


def environ_without_session(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: ours) without another session's supervisor variables."""
    base = dict(os.environ if env is None else env)
    for key in ("CORRAL_SUPERVISOR_SOCKET", "CORRAL_SUPERVISOR_TOKEN", "CORRAL_SESSION_ID"):
        base.pop(key, None)
    return base
