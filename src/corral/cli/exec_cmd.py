"""``corral exec -- CMD``: one action through the whole pipeline; ``corral demo``: the main job."""

from __future__ import annotations

import sys
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
    from corral.cli.common import pipeline_command
    from corral.supervisor.session import Session

    cmd, workdir, cfg, terminal = pipeline_command(
        ctx, "exec", cmd, "corral exec -- CMD [ARGS...]", cwd=cwd, profile=profile,
        approval_policy=approval_policy, reviewer=reviewer)
    # One action, one session: no API socket; with a proxy network the managed proxy runs for
    # this action and asks its network questions through the same approval channels.
    with Session.open(cfg, "corral-exec", approval_policy=cfg.get("approval_policy"),
                      asker=terminal, sandbox_profile=profile,
                      reviewer=str(cfg.get("approvals_reviewer")), intent=intent, api=False,
                      allow_domains=tuple(allow_domain or ()),
                      deny_domains=tuple(deny_domain or ())) as session:
        outcome = session.pipeline.run(cmd, workdir, escalate=escalate)
    if verbose:
        print(f"corral: decision: {outcome.decision} -> {outcome.verdict}", file=sys.stderr)
    from corral.display import shown  # the agent chose the command and paths in these lines

    if outcome.message:
        print(shown(outcome.message), file=sys.stderr)
    for v in outcome.violations:
        print(shown(str(v)), file=sys.stderr)
    raise typer.Exit(outcome.exit_code)


def demo(
    keep: Annotated[bool, typer.Option(help="Keep the scratch workspace and its journal.")] = True,
) -> None:
    from corral.supervisor.demo import run_demo

    raise typer.Exit(run_demo(keep=keep))
