"""Helpers shared by the command modules (kept import-light)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from corral.config import EffectiveConfig


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
