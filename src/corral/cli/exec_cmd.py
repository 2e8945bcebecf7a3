"""``corral exec -- CMD``: one action through the whole pipeline; ``corral demo``: the main job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from corral.cli.common import ApprovalPolicyOption, ProfileOption, ReviewerOption


def register(app: typer.Typer) -> None:
    app.command(
        "exec",
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
        help="Run CMD through rules, approvals, the sandbox and the journal; exits with CMD's "
             "status, or 240 forbidden by policy, 241 denied, 242 approval needed but nobody "
             "could be asked.",
    )(exec_command)
    app.command("demo", help="The main job: govern real commands in a scratch workspace and show "
                             "each decision and the journal.")(demo)


def exec_command(
    ctx: typer.Context,
    cmd: Annotated[list[str], typer.Argument(metavar="-- CMD...", show_default=False)],
    profile: ProfileOption = None,
    approval_policy: ApprovalPolicyOption = None,
    reviewer: ReviewerOption = None,
    cwd: Annotated[Path | None, typer.Option("--cwd", "-C", help="Working directory.")] = None,
    intent: Annotated[str | None, typer.Option(
        "--intent", help="What the user asked for (context for the auto-reviewer).")] = None,
    escalate: Annotated[bool, typer.Option(
        "--escalate", help="Ask to run outside the filesystem boundary (always needs a "
                           "person's approval; secrets stay hidden, network stays managed).")
    ] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Print the decision and its source on stderr.")] = False,
    allow_domain: Annotated[list[str] | None, typer.Option(
        "--allow-domain", help="With a proxy network: also allow this host.")] = None,
    deny_domain: Annotated[list[str] | None, typer.Option(
        "--deny-domain", help="With a proxy network: deny this host.")] = None,
) -> None:
    from corral.cli.actions import run_exec
    from corral.cli.common import pipeline_command

    cmd, workdir, cfg, terminal = pipeline_command(
        ctx, "exec", cmd, "corral exec -- CMD [ARGS...]", cwd=cwd, profile=profile,
        approval_policy=approval_policy, reviewer=reviewer)
    raise typer.Exit(run_exec(cfg, cmd, workdir, terminal=terminal, profile=profile,
                              intent=intent, escalate=escalate, verbose=verbose,
                              allow_domains=allow_domain or (), deny_domains=deny_domain or ()))


def demo(
    keep: Annotated[bool, typer.Option(help="Keep the scratch workspace and its journal.")] = True,
) -> None:
    from corral.supervisor.demo import run_demo

    raise typer.Exit(run_demo(keep=keep))
