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

from corral.cli.common import GlobalOptions

# Every command: (the module whose ``register(app)`` defines it, its one-line summary for
# ``corral --help``). Order is the order in ``corral --help``. tests/config/test_cli.py checks
# this table against what the modules really register.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("corral.cli.run_cmd", "Run an agent sandboxed, its network managed, all journaled."),
    "exec": ("corral.cli.exec_cmd", "Run CMD through rules, approvals, the sandbox and the log."),
    "demo": ("corral.cli.exec_cmd", "The main job: govern real commands in a scratch workspace."),
    "sandbox": ("corral.cli.sandbox_cmd", "Run CMD inside the sandbox (no rules, no approvals)."),
    "proxy": ("corral.cli.proxy_cmd", "Run the managed network proxy (HTTP/CONNECT, SOCKS5)."),
    "policy": ("corral.cli.policy_cmd", "Command rules: check, decide, test and replay."),
    "review": ("corral.cli.review_cmd", "The deterministic auto-reviewer's verdict on CMD."),
    "approve": ("corral.cli.approvals_cmd", "Answer questions agents are waiting on."),
    "grants": ("corral.cli.approvals_cmd", "Standing approvals: list, add, revoke."),
    "hook": ("corral.cli.integrations_cmd", "Answer one agent hook call (JSON on stdin)."),
    "install-hooks": ("corral.cli.integrations_cmd", "Install corral's hooks into an agent."),
    "log": ("corral.cli.log_cmd", "What agents did and why (the journal); `log verify`."),
    "forward": ("corral.cli.forward_cmd", "Forward the journal to corral server now (catch up)."),
    "login": ("corral.cli.forward_cmd", "Store a corral server token (stdin) in the OS keyring."),
    "logout": ("corral.cli.forward_cmd", "Forget a stored corral server token."),
    "config": ("corral.cli.config_cmd", "Inspect and validate layered configuration."),
    "trust": ("corral.cli.config_cmd", "Trust a project: load its .corral/ config and rules."),
    "untrust": ("corral.cli.config_cmd", "Mark a project untrusted: ignore its .corral/."),
    "doctor": ("corral.cli.config_cmd", "What this machine can enforce, partial controls too."),
    "server": ("corral.cli.server_cmd", "The compliance log service: ingest, verify, proofs."),
}
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
    help="Govern AI coding agents: sandbox, command rules, approvals, managed network, audit.",
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
