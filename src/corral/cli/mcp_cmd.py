"""``corral mcp proxy NAME`` (the MCP gateway) and ``corral install-mcp AGENT``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

mcp_app = typer.Typer(name="mcp", help="The MCP gateway: govern the tools agents call over MCP.",
                      no_args_is_help=True)


@mcp_app.command(
    "proxy",
    context_settings={"ignore_unknown_options": True},  # options before `--`, the command after
)
def proxy(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The server's name ([mcp.servers.NAME]).")],
    cmd: Annotated[list[str] | None, typer.Argument(
        metavar="-- COMMAND [ARGS]...", show_default=False)] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="A streamable-HTTP server instead of a command.")] = None,
    pass_env: Annotated[list[str] | None, typer.Option(
        "--pass-env", help="Pass this variable on to the sandboxed server (repeatable).")
    ] = None,
    cwd: Annotated[Path | None, typer.Option("--cwd", "-C", help="Working directory.")] = None,
) -> None:
    """Be the MCP server NAME on stdio for an agent, and its client: every tools/call goes
    through corral's rules, approvals and journal; stdio servers run in the sandbox."""
    from corral.cli.common import load_effective_config
    from corral.mcpgateway import run_proxy
    from corral.mcpgateway.proxy import inside_sandbox

    command = list(cmd or [])
    if command and command[0] == "--":
        command = command[1:]
    # inside corral run the supervisor's configuration decides ($CORRAL_HOME is hidden here)
    cfg = None if inside_sandbox() else load_effective_config(ctx, cwd)
    raise typer.Exit(run_proxy(cfg, name, command, url, cwd=cwd, pass_env=pass_env or ()))


def install_mcp_cmd(
    agent: Annotated[str, typer.Argument(help="codex, claude-code or gemini")],
    project: Annotated[bool, typer.Option("--project", help="This project's MCP config "
                                          "(.codex/config.toml, .mcp.json, .gemini/).")] = False,
    user: Annotated[bool, typer.Option("--user", help="Your user config (default).")] = False,
    remove: Annotated[bool, typer.Option("--remove", help="Restore the original entries.")
    ] = False,
    project_root: Annotated[Path | None, typer.Option(
        "--project-root", help="Project directory for --project (default: current).")] = None,
) -> None:
    """Rewrite the agent's MCP server entries to go through `corral mcp proxy`, idempotently;
    `--remove` restores the originals."""
    from corral.errors import CorralError
    from corral.mcpgateway.install import install_mcp

    if project and user:
        raise CorralError("mcp", "--project and --user are exclusive")
    result = install_mcp(agent, "project" if project else "user", remove,
                         project_root=project_root)
    names = result.restored if remove else result.wrapped
    verb = "restored" if remove else "now through corral"
    if names:
        typer.echo(f"corral: {result.path}: {verb}: {', '.join(names)}")
    else:
        typer.echo(f"corral: {result.path}: already up to date")
    for name, why in result.skipped:
        typer.echo(f"corral: mcp: {name} left as it is: {why}", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(mcp_app)
    app.command("install-mcp")(install_mcp_cmd)
