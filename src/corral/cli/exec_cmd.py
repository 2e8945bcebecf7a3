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
) -> None:
    from corral.cli.common import pipeline_command
    from corral.supervisor.pipeline import Pipeline
    from corral.telemetry import SessionStart, Telemetry

    cmd, workdir, cfg, terminal = pipeline_command(
        ctx, "exec", cmd, "corral exec -- CMD [ARGS...]", cwd=cwd, profile=profile,
        approval_policy=approval_policy, reviewer=reviewer)
    policy_value = cfg.get("approval_policy")
    policy_name = policy_value if isinstance(policy_value, str) else "granular"
    tel = Telemetry.open(cfg, agent="corral-exec")
    try:
        pipeline = Pipeline(
            cfg, tel, approval_policy=policy_value,
            terminal=terminal,
            reviewer=str(cfg.get("approvals_reviewer")), sandbox_profile=profile, intent=intent)
        tel.emit_event(SessionStart.from_summary(
            {"approval_policy": policy_value, "reviewer": pipeline.reviewer_name,
             "profile": pipeline.plan.profile, "network": pipeline.plan.network.mode.value,
             "rules": pipeline.policy.rule_count},
            approval_policy=policy_name, sandbox_profile=pipeline.plan.profile,
            network_mode=pipeline.plan.network.mode.value,
            config_sources=tuple(cfg.sources + cfg.requirements.sources), cwd=str(workdir)))
        outcome = pipeline.run(cmd, workdir, escalate=escalate)
    finally:
        tel.close()
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
