"""``corral server``: the compliance log service (init, run, tokens, status, verify)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

server_app = typer.Typer(name="server", help="The compliance log service.",
                         no_args_is_help=True)
token_app = typer.Typer(name="token", help="Bearer tokens: create, list, revoke.",
                        no_args_is_help=True)
server_app.add_typer(token_app)
hold_app = typer.Typer(name="hold", help="Legal holds: create, list, release.",
                       no_args_is_help=True)
server_app.add_typer(hold_app)

_Data = Annotated[Path, typer.Option("--data", help="The server's data directory.")]
_Db = Annotated[
    str | None,
    typer.Option("--database", help="sqlite (default) or a postgresql:// URL; overrides config."),
]


@server_app.command("init")
def init(
    data: _Data,
    database: _Db = None,
    origin: Annotated[str | None, typer.Option("--origin", help="The log's name.")] = None,
) -> None:
    """Create the store, the Ed25519 signing key (0600) and config.toml."""
    from corral.server.cli import init as do

    do(data, database, origin)


@server_app.command("run")
def run(
    data: _Data,
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT")] = "127.0.0.1:4318",
    database: _Db = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key")] = None,
) -> None:
    """Serve OTLP/HTTP ingest, checkpoints and proofs (uvicorn)."""
    from corral.server.cli import run as do

    do(data, listen, database, tls_cert, tls_key)


@token_app.command("create")
def token_create(
    data: _Data,
    scope: Annotated[str, typer.Option("--scope", help="ingest, read, analyst, investigator or admin")],
    name: Annotated[str | None, typer.Option("--name")] = None,
    expires_days: Annotated[int | None, typer.Option("--expires-days", min=1)] = None,
    database: _Db = None,
    event_type: Annotated[list[str] | None, typer.Option(
        "--event-type", help="Read tokens: only these event types (repeatable).")] = None,
    content: Annotated[bool, typer.Option(
        "--content", help="Read tokens: prompts and outputs unredacted.")] = False,
) -> None:
    """Print a new token (one line; only its hash is stored)."""
    from corral.server.cli import token_create as do

    do(data, database, scope, name, expires_days, event_type or [], content)


@token_app.command("list")
def token_list(data: _Data, database: _Db = None) -> None:
    """Tokens: id, scope, state, dates, name."""
    from corral.server.cli import token_list as do

    do(data, database)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="Token id (from token list).")],
    data: _Data,
    database: _Db = None,
) -> None:
    """Revoke a token: refused from the next request on."""
    from corral.server.cli import token_revoke as do

    do(data, database, token_id)


@server_app.command("status")
def status(
    data: _Data,
    database: _Db = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Log size, chain head, latest checkpoint, store size, verifier key."""
    from corral.server.cli import status as do

    do(data, database, as_json)


@server_app.command("verify")
def verify(
    data: _Data,
    database: _Db = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option("--checkpoint", help="A published checkpoint (file or directory)."),
    ] = None,
) -> None:
    """Recompute chain, tree and signatures; one line per problem, exit 1 if any."""
    from corral.server.cli import verify as do

    raise typer.Exit(do(data, database, list(checkpoint or [])))


@server_app.command("verify-proof")
def verify_proof(
    event: Annotated[Path, typer.Option("--event", help="The event (GET /v1/events/SEQ).")],
    proof: Annotated[Path, typer.Option("--proof", help="GET /v1/proofs/inclusion output.")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="A signed checkpoint.")],
    key: Annotated[str, typer.Option("--key", help="Verifier key (or a file holding it).")],
) -> None:
    """Check a downloaded event against a published checkpoint, without the server."""
    from corral.server.cli import verify_proof as do

    raise typer.Exit(do(event, proof, checkpoint, key))


@server_app.command("export")
def export(
    data: _Data,
    user: Annotated[str, typer.Option("--user", help="Whose events.")],
    out: Annotated[Path, typer.Option("--out", help="A new directory for the bundle.")],
    since: Annotated[str | None, typer.Option("--since", help="ISO-8601 or ns.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO-8601 or ns.")] = None,
    database: _Db = None,
) -> None:
    """eDiscovery: a user's events with a checkpoint and inclusion proofs (self-verifying)."""
    from corral.server.cli import export_bundle as do

    do(data, database, user, since, until, out)


@server_app.command("verify-bundle")
def verify_bundle(
    bundle: Annotated[Path, typer.Argument(help="The bundle directory.")],
    key: Annotated[str | None, typer.Option(
        "--key", help="The verifier key you trust (file or text); default: the bundle's.")] = None,
) -> None:
    """Check an eDiscovery bundle offline: hashes, signature, every inclusion proof."""
    from corral.server.cli import verify_bundle as do

    raise typer.Exit(do(bundle, key))


_Since = Annotated[str | None, typer.Option("--since", help="Event time, ISO-8601 or ns.")]
_Until = Annotated[str | None, typer.Option("--until", help="Event time, ISO-8601 or ns.")]
_Reason = Annotated[str, typer.Option("--reason", help="Why (case number, request id).")]


@hold_app.command("create")
def hold_create(
    data: _Data,
    reason: _Reason,
    user: Annotated[str | None, typer.Option("--user", help="The OS user or user.name.")] = None,
    session: Annotated[str | None, typer.Option("--session", help="A session id.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="A device id.")] = None,
    since: _Since = None,
    until: _Until = None,
    database: _Db = None,
) -> None:
    """Keep matching events from retention and erasure (every criterion given must match)."""
    from corral.server.cli import hold_create as do

    do(data, database, reason, user, session, device, since, until)


@hold_app.command("list")
def hold_list(data: _Data, database: _Db = None,
              as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Holds: id, state, who placed them, criteria, reason (the listing is logged)."""
    from corral.server.cli import hold_list as do

    do(data, database, as_json)


@hold_app.command("release")
def hold_release(
    hold_id: Annotated[str, typer.Argument(help="Hold id (from hold list).")],
    data: _Data,
    database: _Db = None,
) -> None:
    """Release a hold: its events fall under retention again."""
    from corral.server.cli import hold_release as do

    do(data, database, hold_id)


@server_app.command("retention")
def retention(
    data: _Data,
    database: _Db = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
) -> None:
    """Delete compliance files past retention now (signed tombstones; `run` does it too)."""
    from corral.server.cli import retention_run as do

    do(data, database, dry_run)


@server_app.command("erase")
def erase(
    data: _Data,
    user: Annotated[str, typer.Option("--user", help="Whose events.")],
    reason: _Reason,
    since: _Since = None,
    until: _Until = None,
    database: _Db = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count.")] = False,
) -> None:
    """Erase a user's events (content cleared, signed tombstone); refused under a hold."""
    from corral.server.cli import erase as do

    do(data, database, user, since, until, reason, dry_run)


def register(app: typer.Typer) -> None:
    from corral.cli.server_fleet_cmd import attach  # enroll-token, devices, policy (issue 16)

    attach(server_app)
    app.add_typer(server_app)
