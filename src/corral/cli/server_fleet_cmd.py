"""``corral server enroll-token | devices | policy``: the fleet (docs/fleet.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_Data = Annotated[Path, typer.Option("--data", help="The server's data directory.")]
_Db = Annotated[
    str | None,
    typer.Option("--database", help="sqlite (default) or a postgresql:// URL; overrides config."),
]

enroll_token_app = typer.Typer(name="enroll-token", no_args_is_help=True,
                               help="Enrolment tokens for machines: create, list, revoke.")
devices_app = typer.Typer(name="devices", help="Enrolled devices: the fleet view; revoke.")
policy_app = typer.Typer(name="policy", no_args_is_help=True,
                         help="Server-managed policy: set (versioned, by group), show, history.")


@enroll_token_app.command("create")
def enroll_token_create(
    data: _Data,
    group: Annotated[list[str] | None, typer.Option(
        "--group", help="Groups (teams) the device joins; repeatable.")] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    uses: Annotated[int | None, typer.Option("--uses", min=1, help="Machines it may enrol.")
                    ] = None,
    expires_days: Annotated[float | None, typer.Option("--expires-days", min=0.001)] = None,
    database: _Db = None,
) -> None:
    """Print a new enrolment token (one line; only its hash is stored)."""
    from corral.server.fleet_cli import enroll_token_create as do

    do(data, database, group or [], name, uses, expires_days)


@enroll_token_app.command("list")
def enroll_token_list(data: _Data, database: _Db = None) -> None:
    """Enrolment tokens: id, state, groups, uses left, dates."""
    from corral.server.fleet_cli import enroll_token_list as do

    do(data, database)


@enroll_token_app.command("revoke")
def enroll_token_revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (from enroll-token list).")],
    data: _Data, database: _Db = None,
) -> None:
    """Refuse further enrolments with this token (enrolled devices stay)."""
    from corral.server.fleet_cli import enroll_token_revoke as do

    do(data, database, token_id)


@devices_app.callback(invoke_without_command=True)
def devices(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option("--data", help="The server's data directory.")
                    ] = None,
    database: _Db = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per device: last seen, corral and agent versions, policy applied, forwarding lag,
    hooks, drift."""
    if ctx.invoked_subcommand is not None:
        return
    if data is None:
        raise typer.BadParameter("--data is required", param_hint="--data")
    from corral.server.fleet_cli import devices_list as do

    do(data, database, as_json)


@devices_app.command("revoke")
def devices_revoke(
    device_id: Annotated[str, typer.Argument(help="Device id (from corral server devices).")],
    data: _Data, database: _Db = None,
) -> None:
    """Revoke a device: its ingest token is refused from its next request."""
    from corral.server.fleet_cli import devices_revoke as do

    do(data, database, device_id)


@policy_app.command("set")
def policy_set(
    files: Annotated[list[Path], typer.Argument(help="Requirements files (TOML), composed.")],
    data: _Data,
    group: Annotated[str, typer.Option(
        "--group", help="* (every device), a group, or device:ID.")] = "*",
    database: _Db = None,
) -> None:
    """Publish requirements (and their rules) as the group's next policy version."""
    from corral.server.fleet_cli import policy_set as do

    do(data, database, files, group)


@policy_app.command("show")
def policy_show(
    data: _Data,
    group: Annotated[str | None, typer.Option("--group")] = None,
    device: Annotated[str | None, typer.Option("--device", help="The composed policy of "
                                               "one device.")] = None,
    database: _Db = None,
) -> None:
    """The current policy of each group, or what one device receives."""
    from corral.server.fleet_cli import policy_show as do

    do(data, database, group, device)


@policy_app.command("history")
def policy_history(
    data: _Data,
    group: Annotated[str | None, typer.Option("--group")] = None,
    database: _Db = None,
) -> None:
    """Every policy version: group, time, author, digest."""
    from corral.server.fleet_cli import policy_history as do

    do(data, database, group)


def attach(server_app: typer.Typer) -> None:
    for sub in (enroll_token_app, devices_app, policy_app):
        server_app.add_typer(sub)
