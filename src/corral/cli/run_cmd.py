"""``corral run -- AGENT``: run a whole agent under one supervised, sandboxed session."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


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
    profile: Annotated[str | None, typer.Option(
        "--profile", "-P", help="Permission profile (:read-only, :workspace, ...).")] = None,
    approval_policy: Annotated[str | None, typer.Option(
        "--approval-policy", help="untrusted | on-request | on-failure | never")] = None,
    reviewer: Annotated[str | None, typer.Option(
        "--reviewer", help="user | auto_review")] = None,
    allow_domain: Annotated[list[str] | None, typer.Option(
        "--allow-domain", help="Also allow this host (beyond the agent's preset).")] = None,
    cwd: Annotated[Path | None, typer.Option("--cwd", "-C", help="Workspace.")] = None,
) -> None:
    from corral.approvals import ask_terminal
    from corral.cli.common import load_effective_config, pipeline_flags, workdir_of
    from corral.errors import CorralError
    from corral.supervisor.pipeline import no_terminal
    from corral.supervisor.run import RunSession

    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise CorralError("run", "no agent given", "corral run -- codex exec 'fix the tests'")
    workdir = workdir_of("run", cwd)
    flags = pipeline_flags(profile, approval_policy, reviewer)
    cfg = load_effective_config(ctx, workdir, flags)
    session = RunSession(
        cfg, list(cmd), approval_policy=cfg.get("approval_policy"),
        reviewer=str(cfg.get("approvals_reviewer")), profile=profile,
        allow_domains=tuple(allow_domain or ()),
        terminal=ask_terminal if sys.stdin.isatty() else no_terminal)
    raise typer.Exit(session.run())
