"""What an agent integration adds to the supervisor's ``Session``: ``TelemetryImport`` (the OTLP
receiver for Codex's, Claude Code's and Gemini CLI's own telemetry, and the environment and arguments that
point the agent at it), plugged in through ``corral.supervisor.session.Integration`` so the
supervisor never imports this package; ``AgentSession.open``: a hook session with it attached.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from corral.errors import CorralError
from corral.integrations.otel_map import args_for_agent, env_for_agent
from corral.supervisor.session import Session, environ_without_session

__all__ = ["AgentSession", "TelemetryImport", "agent_of", "environ_without_session",
           "integration_for", "make_pipeline", "with_agent_args"]
AGENT_NAMES = {"codex": "codex", "claude": "claude-code", "claude-code": "claude-code",
               "gemini": "gemini"}


def agent_of(argv0: str) -> str | None:
    """Which integration an agent command line needs (``codex``, ``claude`` -> claude-code)."""
    return AGENT_NAMES.get(Path(argv0).name)


def integration_for(argv0: str, *, on_socket: bool = True) -> TelemetryImport | None:
    """The telemetry import for an agent command line, or None for an agent without one."""
    agent = agent_of(argv0)
    return TelemetryImport(agent, on_socket=on_socket) if agent else None


def with_agent_args(argv: list[str], agent: str, extra: list[str]) -> list[str]:
    """``argv`` with ``extra`` right after the program name (Codex takes ``-c`` globally)."""
    return [argv[0], *extra, *argv[1:]] if extra else list(argv)


class TelemetryImport:
    """The integration a governed Codex or Claude Code session plugs into
    ``corral.supervisor.session.Session``: the OTLP receiver that imports the agent's own
    telemetry as its claims, and the environment and arguments that point the agent at it."""

    def __init__(self, agent: str, *, on_socket: bool = False) -> None:
        if agent not in ("codex", "claude-code", "gemini"):
            raise CorralError("integrations", f"no telemetry import for agent {agent!r}",
                              hint="codex, claude-code or gemini, or receive_telemetry=False")
        self.agent = agent
        self.on_socket = on_socket
        self.receiver: Any = None
        self.endpoint: str | None = None
        self._tier = 0

    def start(self, session: Any) -> None:
        from corral.integrations.otlp_receiver import Receiver
        from corral.telemetry.quota import Quota, limits_from_config

        tel = session.telemetry
        self._tier = tel.tier
        # On a socket no token is needed (its mode and the peer uid authenticate), so none
        # reaches Codex's command line, which every local user can read. On TCP, Codex (whose
        # exporter only takes `-c` arguments) gets no token either: the receiver takes only this
        # user's processes instead.
        codex_tcp = self.agent == "codex" and not self.on_socket
        self.receiver = Receiver(tel, unix_socket=session.rundir / "otlp.sock"
                                 if self.on_socket else None,
                                 quota=Quota(tel, "import", *limits_from_config(
                                     session.pipeline.cfg)),
                                 token="" if codex_tcp else None, same_user_only=codex_tcp,
                                 on_record=lambda m: _tool_call(session, m))
        self.endpoint = self.receiver.start()

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()

    def sockets(self) -> tuple[Path, ...]:
        sock = self.receiver.unix_socket if self.receiver is not None else None
        return (Path(sock),) if sock is not None else ()

    def _url(self, endpoint: str | None) -> str | None:
        url = endpoint or self.endpoint
        return url if url is not None and url.startswith("http") else None

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        url = self._url(endpoint)
        if url is None or self.receiver is None:
            return {}
        return env_for_agent(self.agent, url, token=self.receiver.token, tier=self._tier)

    def args(self, endpoint: str | None = None) -> list[str]:
        url = self._url(endpoint)
        if url is None or self.receiver is None:
            return []
        return args_for_agent(self.agent, url, token=self.receiver.token, tier=self._tier)


def _tool_call(session: Any, m: Any) -> None:
    """An imported record of a tool the agent ran: the session checks its hooks called in."""
    if m.name == "agent.tool.result":
        session.agent_tool_call(str(m.attributes.get("agent.import.event") or m.name))


class AgentSession(Session):
    """A ``Session`` for an agent's hooks with its telemetry import: open with
    ``AgentSession.open(cfg, "codex", ...)`` (kept as the integrations' entry point)."""

    @classmethod
    def open(cls, cfg: Any, agent: str, *,  # type: ignore[override]
             approval_policy: Any = "on-request", asker: Any | None = None,
             sandbox_profile: str | None = None, receive_telemetry: bool = True,
             socket_dir: Path | None = None, receiver_on_socket: bool = False,
             reviewer: str = "user", intent: str | None = None) -> AgentSession:
        """The session, API socket and (optionally) the OTLP receiver; see ``Session.open``."""
        integration = TelemetryImport(agent, on_socket=receiver_on_socket) \
            if receive_telemetry else None
        session = super().open(cfg, agent, approval_policy=approval_policy, asker=asker,
                               sandbox_profile=sandbox_profile, reviewer=reviewer,
                               intent=intent, integration=integration,
                               socket_dir=socket_dir or Path(tempfile.gettempdir()),
                               summary={"agent": agent}, defer_to_agent=True)
        assert isinstance(session, AgentSession)
        return session

    @property
    def receiver(self) -> Any:
        """The OTLP receiver (None without telemetry import)."""
        imp = self.integration
        return imp.receiver if isinstance(imp, TelemetryImport) else None

    @property
    def endpoint(self) -> str | None:
        imp = self.integration
        return imp.endpoint if isinstance(imp, TelemetryImport) else None


def make_pipeline(cfg: Any, tel: Any, approval_policy: Any, asker: Any | None,
                  sandbox_profile: str | None, reviewer: str = "user",
                  intent: str | None = None) -> Any:
    """The session's pipeline; ``asker`` answers at the terminal (default: nobody there)."""
    from corral.supervisor.pipeline import Pipeline, no_terminal

    pipe = Pipeline(cfg, tel, approval_policy=approval_policy, terminal=asker or no_terminal,
                    sandbox_profile=sandbox_profile, reviewer=reviewer, intent=intent)
    pipe.defer_to_agent = True  # a hook session: the agent has its own approval
    return pipe
