"""The ``corral`` command. Thin: parses arguments and calls the packages.

Each command group lives in its own small module that imports only typer at module level, so
``corral --help`` stays fast; the packages doing the work are imported inside the commands.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

from corral.cli.common import GlobalOptions

app = typer.Typer(
    name="corral",
    help="Govern AI coding agents: sandbox, command rules, approvals, managed network, audit.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    # Plain click help: rendering help through rich costs ~70 ms of imports on every --help.
    rich_markup_mode=None,
)

# Command modules, each exposing ``register(app)``. Order is the order in ``corral --help``.
COMMAND_MODULES = (
    "corral.cli.exec_cmd",
    "corral.cli.run_cmd",
    "corral.cli.policy_cmd",
    "corral.cli.sandbox_cmd",
    "corral.cli.proxy_cmd",
    "corral.cli.log_cmd",
    "corral.cli.config_cmd",
    "corral.cli.approvals_cmd",
    "corral.cli.integrations_cmd",
    "corral.cli.review_cmd",
)


@app.callback()
def _root(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option("--profile", help="Config profile: selects [profiles.NAME] from config."),
    ] = None,
    config_override: Annotated[
        list[str] | None,
        typer.Option(
            "-c",
            "--config",
            metavar="KEY=VALUE",
            help="Override a config key (dotted path; VALUE parsed as TOML, else a string).",
        ),
    ] = None,
) -> None:
    ctx.obj = GlobalOptions(profile=profile, overrides=tuple(config_override or ()))


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    from corral.errors import CorralError

    try:
        app()
    except CorralError as exc:
        print(exc.line(), file=sys.stderr)
        sys.exit(exc.exit_code)
