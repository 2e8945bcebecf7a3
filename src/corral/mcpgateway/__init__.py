"""corral.mcpgateway: govern the tools agents call over MCP (docs/mcp.md).

Public surface::

    run_proxy(cfg, name, command=(), url=None, cwd=None, pass_env=()) -> exit status
        `corral mcp proxy`: the agent's MCP server on stdio, the real server's client
    Gateway(server, agent, upstream, decider).run()     the message pump (channels in, out)
    install_mcp(agent, scope, remove) -> Result          `corral install-mcp`

The decisions are the pipeline's (``Pipeline.decide_mcp``, ``supervisor.mcp``); the tool rules
are ``corral.rules.mcp``; pins are ``corral.approvals.pins``. The SDK (``mcp``) is imported only
when a gateway runs.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Gateway", "install_mcp", "run_proxy"]


def __getattr__(name: str) -> Any:
    if name == "run_proxy":
        from corral.mcpgateway.proxy import run_proxy

        return run_proxy
    if name == "Gateway":
        from corral.mcpgateway.gateway import Gateway

        return Gateway
    if name == "install_mcp":
        from corral.mcpgateway.install import install_mcp

        return install_mcp
    raise AttributeError(name)
