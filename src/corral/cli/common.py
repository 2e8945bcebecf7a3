"""Helpers shared by the command modules (kept import-light)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from corral.cli.actions import pipeline_flags, workdir_of

if TYPE_CHECKING:
    from corral.config import EffectiveConfig

__all__ = ["pipeline_flags", "workdir_of"]  # shared with the typer-free fast paths


# Options shared by the commands that run actions through the pipeline (exec, run).
ProfileOption = Annotated[str | None, typer.Option(
    "--profile", "-P", help="Permission profile (:read-only, :workspace, ...).")]
ApprovalPolicyOption = Annotated[str | None, typer.Option(
    "--approval-policy", help="untrusted | on-request | on-failure | never")]
ReviewerOption = Annotated[str | None, typer.Option("--reviewer", help="user | auto_review")]


@dataclass(frozen=True)
class GlobalOptions:
    profile: str | None = None
    overrides: tuple[str, ...] = ()


def global_options(ctx: typer.Context) -> GlobalOptions:
    root = ctx.find_root()
    obj = root.obj
    return obj if isinstance(obj, GlobalOptions) else GlobalOptions()


def load_effective_config(
    ctx: typer.Context,
    cwd: Path | None = None,
    flags: dict[str, tuple[str, object]] | None = None,
) -> EffectiveConfig:
    """Load the layered config for a command and print its warnings to stderr.

    ``flags`` maps config keys to (flag name, value) for values the user chose explicitly on
    this command line (e.g. ``{"approval_policy": ("--approval-policy", "never")}``): a flag
    that requirements forbid is a hard error rather than a silent fallback.
    """
    from corral.config import load_config

    opts = global_options(ctx)
    cfg = load_config(
        cwd or Path.cwd(), overrides=opts.overrides, profile=opts.profile, flags=flags or {}
    )
    for warning in cfg.warnings:
        print(f"corral: warning: {warning}", file=sys.stderr)
    return cfg


def pipeline_command(
    ctx: typer.Context, control: str, cmd: list[str], usage: str, *, cwd: Path | None,
    profile: str | None, approval_policy: str | None, reviewer: str | None,
) -> tuple[list[str], Path, EffectiveConfig, Any]:
    """What `corral exec` and `corral run` share: the command after ``--`` (refused when
    empty), the working directory, the config with the explicit flags, and who answers at the
    terminal (nobody when stdin is not a terminal)."""
    from corral.cli.actions import terminal_asker
    from corral.errors import CorralError

    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise CorralError(control, "nothing to run", usage)
    workdir = workdir_of(control, cwd)
    cfg = load_effective_config(ctx, workdir, pipeline_flags(profile, approval_policy, reviewer))
    return cmd, workdir, cfg, terminal_asker()
