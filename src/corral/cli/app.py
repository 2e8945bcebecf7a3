"""The ``corral`` command. Thin: parses arguments and calls the packages.

Each command group lives in its own small module that imports only typer at module level, and
only the module of the command being run is loaded and turned into click objects (building all
of them evaluates every signature: ~80 ms on every start). The packages doing the work are
imported inside the commands.
"""

from __future__ import annotations

import functools
import importlib
import sys
from typing import Annotated

import click
import typer
import typer.main
from typer.core import TyperGroup

from corral.cli.commands import COMMANDS, ROOT_HELP
from corral.cli.common import GlobalOptions

COMMAND_MODULES = tuple(dict.fromkeys(module for module, _ in COMMANDS.values()))


@functools.cache
def module_commands(module: str) -> dict[str, click.Command]:
    """The click commands one module registers (built on first use)."""
    sub = typer.Typer()
    importlib.import_module(module).register(sub)
    return dict(typer.main.get_group(sub).commands)


class _LazyGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        return module_commands(entry[0]).get(cmd_name) if entry else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, summary) for name, (_, summary) in COMMANDS.items()])


app = typer.Typer(
    name="corral",
    cls=_LazyGroup,
    help=ROOT_HELP,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    # Plain click help: rendering help through rich costs ~70 ms of imports on every --help.
    rich_markup_mode=None,
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


def main() -> None:
    from corral.errors import CorralError

    try:
        app()
    except CorralError as exc:
        print(exc.line(), file=sys.stderr)
        sys.exit(exc.exit_code)
    except OSError as exc:  # corral's own files out of reach (inside the sandbox...): one line
        from corral.paths import unreachable

        cmd = next((a for a in sys.argv[1:] if a in COMMANDS), "corral")
        control = _CONTROLS.get(COMMANDS[cmd][0] if cmd in COMMANDS else "", cmd)
        err = unreachable(control, exc.filename or "?", exc)
        print(err.line(), file=sys.stderr)
        sys.exit(err.exit_code)


# The control each command module speaks for, in refusal lines.
_CONTROLS = {"corral.cli.log_cmd": "telemetry", "corral.cli.approvals_cmd": "approvals",
             "corral.cli.config_cmd": "config", "corral.cli.integrations_cmd": "integrations",
             "corral.cli.policy_cmd": "rules", "corral.cli.proxy_cmd": "network"}
