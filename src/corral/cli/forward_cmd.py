"""``corral forward``: catch up with corral server (login and logout: corral.cli.fleet_cmd)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_ServerOpt = Annotated[
    str | None, typer.Option("--server", help="Server URL (default: server.url from config).")]


def register(app: typer.Typer) -> None:
    @app.command("forward")
    def forward(
        ctx: typer.Context,
        server: _ServerOpt = None,
        retry_for: Annotated[float, typer.Option(
            "--retry-for", min=0, help="Seconds to keep retrying an unreachable or busy server.")
        ] = 30.0,
        journal: Annotated[Path | None, typer.Option(
            "--journal", help="Journal file (default $CORRAL_HOME/journal/journal.db).")] = None,
        status: Annotated[bool, typer.Option(
            "--status", help="Only say how far the server has acknowledged; send nothing.")
        ] = False,
    ) -> None:
        """Forward the journal to corral server now; exit 0 once all of it is acknowledged."""
        from corral.cli.common import load_effective_config
        from corral.forward import Forwarder, resolve
        from corral.paths import corral_home
        from corral.telemetry.journal import journal_file

        cfg = load_effective_config(ctx)
        home = corral_home()
        settings = resolve(cfg, home, server)
        path = journal or journal_file(home)
        fwd = Forwarder(settings, path, home=home)
        if status:
            try:
                lag = fwd.lag()
            finally:
                fwd.close()
            print(f"{settings.url}: acknowledged through seq {lag[0]} of {lag[1]} "
                  f"({lag[1] - lag[0]} records behind)")
            return
        try:
            stats = fwd.catch_up(retry_for)
        finally:
            fwd.close()
        print(f"forwarded {stats.records} records and {stats.checkpoints} checkpoints to "
              f"{settings.url}; acknowledged through seq {stats.seq}")
