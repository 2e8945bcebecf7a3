"""``corral sandbox -- CMD``: run one command under the sandbox only (no rules, no approvals)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command(
        "sandbox",
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
        help="Run CMD inside the sandbox (no rules, no approvals); exits with CMD's status.",
    )(sandbox)


def sandbox(
    ctx: typer.Context,
    cmd: Annotated[list[str] | None,
                   typer.Argument(metavar="-- CMD...", show_default=False)] = None,
    profile: Annotated[
        str | None,
        typer.Option("--profile", "-P", "--permission-profile",
                     help="Permission profile (:read-only, :workspace, "
                          ":danger-full-access or a [permissions.NAME] table)."),
    ] = None,
    cwd: Annotated[
        Path | None, typer.Option("--cwd", "-C", help="Working directory (the workspace root).")
    ] = None,
    writable_root: Annotated[
        list[Path] | None,
        typer.Option("--writable-root", help="Extra writable directory (repeatable)."),
    ] = None,
    network: Annotated[
        str | None, typer.Option("--network", help="none | proxy | host")
    ] = None,
    allow_domain: Annotated[
        list[str] | None, typer.Option("--allow-domain", help="Allow a domain (proxy mode).")
    ] = None,
    deny_domain: Annotated[
        list[str] | None, typer.Option("--deny-domain", help="Deny a domain (proxy mode).")
    ] = None,
    explain_env: Annotated[
        bool, typer.Option("--explain-env", help="Name each environment variable left out "
                           "and why (never its value); CMD is then optional.")
    ] = False,
) -> None:
    from corral.cli.common import load_effective_config
    from corral.cli.sandbox_fast import run_sandbox
    from corral.errors import CorralError

    if network is not None and network not in ("none", "proxy", "host"):
        raise CorralError("sandbox", f"--network must be none, proxy or host, got {network!r}")
    cmd = cmd or []
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd and not explain_env:
        raise CorralError("sandbox", "no command given", "corral sandbox -- CMD [ARGS...]")
    workdir = (cwd or Path.cwd()).resolve()
    if not workdir.is_dir():
        raise CorralError("sandbox", f"--cwd {workdir}: not a directory")
    flags: dict[str, tuple[str, object]] = {}
    if profile is not None:
        flags["default_permissions"] = ("--profile", profile)
    cfg = load_effective_config(ctx, workdir, flags)
    raise typer.Exit(run_sandbox(
        cfg, workdir, cmd, profile=profile, writable_roots=writable_root or (),
        network=network, allow_domains=allow_domain or (), deny_domains=deny_domain or (),
        explain_env=explain_env,
    ))
