"""``corral config explain|validate``, ``corral trust|untrust``, ``corral doctor``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from corral.cli.common import load_effective_config

config_app = typer.Typer(help="Inspect and validate layered configuration.", no_args_is_help=True)


@config_app.command("explain")
def explain(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(help="Dotted key (or prefix) to explain.")] = None,
    cwd: Annotated[Path | None, typer.Option("--cwd", help="Explain for this directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every effective value, the layer and file:line it came from, and what constrained it."""
    from corral.config.explain import render_explain

    cfg = load_effective_config(ctx, cwd)
    print(render_explain(cfg, key, as_json))


@config_app.command("validate")
def validate_cmd(
    files: Annotated[list[Path], typer.Argument(help="config.toml or requirements.toml files.")],
    kind: Annotated[
        str | None,
        typer.Option("--kind", help="config | project | requirements (default: from the path)."),
    ] = None,
) -> None:
    """Check files against the schema: errors as file:line:col, with did-you-mean hints."""
    from corral.config.explain import validate_file

    if kind not in (None, "config", "project", "requirements"):
        raise typer.BadParameter("expected config, project or requirements", param_hint="--kind")
    bad = 0
    for f in files:
        problems = validate_file(f, kind)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            bad += 1
        else:
            print(f"{f}: ok")
    raise typer.Exit(1 if bad else 0)


def _trust(ctx: typer.Context, path: Path | None, level: str) -> None:
    from corral.config.explain import set_trust
    from corral.config.loader import DEFAULTS, find_project_root
    from corral.paths import corral_home

    target = (path or Path.cwd()).absolute()
    if not target.is_dir():
        raise typer.BadParameter(f"{target} is not a directory", param_hint="PATH")
    root = find_project_root(target, DEFAULTS["project_root_markers"]) or target
    user_config = corral_home() / "config.toml"
    set_trust(user_config, root, level)
    print(f"{root}: {level} (recorded in {user_config})")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")

    @app.command("trust")
    def trust(
        ctx: typer.Context,
        path: Annotated[Path | None, typer.Argument(help="Project (default: current).")] = None,
    ) -> None:
        """Trust a project: its .corral/config.toml and rules are loaded."""
        _trust(ctx, path, "trusted")

    @app.command("untrust")
    def untrust(
        ctx: typer.Context,
        path: Annotated[Path | None, typer.Argument(help="Project (default: current).")] = None,
    ) -> None:
        """Mark a project untrusted: its .corral/ config and rules are ignored."""
        _trust(ctx, path, "untrusted")

    @app.command("doctor")
    def doctor(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
        secrets: Annotated[bool, typer.Option(
            "--secrets", help="List the credential files and secret-bearing variables on this "
            "machine, whether the sandbox hides each, and what the credential broker would "
            "hold (never a value).")] = False,
    ) -> None:
        """What this machine can enforce, and any control that is only partially enforced."""
        from corral.doctor import render, render_secrets, run_checks, secrets_ok, secrets_report

        if secrets:
            report = secrets_report()
            print(render_secrets(report, as_json))
            raise typer.Exit(0 if secrets_ok(report) else 1)

        checks = run_checks()
        print(render(checks, as_json))
        raise typer.Exit(0 if all(c.ok or not c.required for c in checks) else 1)
