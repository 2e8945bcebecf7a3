"""``corral run -- AGENT``: run a whole agent under one supervised, sandboxed session."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from corral.cli.common import ApprovalPolicyOption, ProfileOption, ReviewerOption


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
        help="Run AGENT in the sandbox with network through the managed proxy, its decisions "
             "through the pipeline and everything journaled; exits with the agent's status.",
    )(run)


def run(
    ctx: typer.Context,
    cmd: Annotated[list[str], typer.Argument(metavar="-- AGENT [ARGS...]", show_default=False)],
    profile: ProfileOption = None,
    approval_policy: ApprovalPolicyOption = None,
    reviewer: ReviewerOption = None,
    allow_domain: Annotated[list[str] | None, typer.Option(
        "--allow-domain", help="Also allow this host (beyond the agent's preset).")] = None,
    deny_domain: Annotated[list[str] | None, typer.Option(
        "--deny-domain", help="Deny this host (even one the preset allows).")] = None,
    intent: Annotated[str | None, typer.Option(
        "--intent", help="What the user asked for (the request the auto-reviewer trusts; "
                         "prompts the agent reports are only claims).")] = None,
    cwd: Annotated[Path | None, typer.Option("--cwd", "-C", help="Workspace.")] = None,
    keep_terminal: Annotated[bool | None, typer.Option(
        "--terminal/--no-terminal",
        help="Give the agent this terminal (default: when it runs its full-screen UI).")] = None,
) -> None:
    from corral.cli.common import pipeline_command
    from corral.integrations.session import integration_for
    from corral.supervisor.run import RunSession

    cmd, _workdir, cfg, terminal = pipeline_command(
        ctx, "run", cmd, "corral run -- codex exec 'fix the tests'", cwd=cwd, profile=profile,
        approval_policy=approval_policy, reviewer=reviewer)
    session = RunSession(
        cfg, list(cmd), approval_policy=cfg.get("approval_policy"),
        reviewer=str(cfg.get("approvals_reviewer")), profile=profile,
        allow_domains=tuple(allow_domain or ()), deny_domains=tuple(deny_domain or ()),
        terminal=terminal, keep_terminal=keep_terminal, intent=intent,
        integration=integration_for(cmd[0]))
    raise typer.Exit(session.run())
