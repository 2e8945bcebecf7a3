"""corral.integrations: adapters for real agents (Codex, Claude Code, Gemini CLI).

Public surface (import the submodules directly; this package imports nothing, so the hook entry
point ``python -m corral.integrations.hook_main`` stays fast)::

    corral.integrations.hooks.handle(agent, payload) -> (stdout, exit_code)
    corral.integrations.install.install_hooks(agent, scope, remove=False) -> Path
    corral.integrations.otlp_receiver.Receiver(telemetry).start() -> endpoint
    corral.integrations.otel_map.env_for_agent(agent, endpoint) -> dict[str, str]
    corral.integrations.otel_map.args_for_agent(agent, endpoint) -> list[str]
    corral.integrations.session.AgentSession.open(cfg, agent, ...)  # all of the above, wired
"""

AGENTS = ("codex", "claude-code", "gemini")
