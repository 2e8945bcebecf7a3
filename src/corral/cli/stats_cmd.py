"""``corral stats`` (numbers for tuning a rollout) and ``corral dashboard`` (the same, charted,
on 127.0.0.1)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from corral.analytics import RollupStore

_JournalOpt = Annotated[Path | None, typer.Option(
    "--journal", help="Journal file (default $CORRAL_HOME/journal/journal.db).")]
_Since = Annotated[str | None, typer.Option(
    "--since", help="From (7d, 24h, 2026-12-01, 2026-12-01T09:00; UTC).")]
_Until = Annotated[str | None, typer.Option("--until", help="Until (exclusive), as --since.")]


def register(app: typer.Typer) -> None:
    @app.command("stats")
    def stats(
        ctx: typer.Context,
        since: _Since = None,
        until: _Until = None,
        by: Annotated[str | None, typer.Option(
            "--by", help="Break down by team, agent, repo or user.")] = None,
        team: Annotated[str | None, typer.Option("--team", help="Only this team.")] = None,
        agent: Annotated[str | None, typer.Option("--agent", help="Only this agent.")] = None,
        repo: Annotated[str | None, typer.Option("--repo", help="Only this repository.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        journal: _JournalOpt = None,
        server: Annotated[str | None, typer.Option(
            "--server", help="The fleet: corral server's store (an analyst token, investigator "
                             "for --by user; CORRAL_SERVER_TOKEN or corral login).")] = None,
    ) -> None:
        """Adoption, tools, decisions, network, sandbox and what to tune, from the journal
        (or, with --server, from the fleet's log)."""
        import json

        from corral.analytics import JournalSource, Query, Settings, compute
        from corral.analytics.query import BY
        from corral.analytics.report import parse_time, render_all
        from corral.cli.common import load_effective_config
        from corral.errors import CorralError

        if by is not None and by not in BY:
            raise CorralError("analytics", f"--by must be one of {', '.join(BY)}, got {by!r}")
        cfg = load_effective_config(ctx)
        q = Query(since_ns=parse_time(since) if since else None,
                  until_ns=parse_time(until) if until else None,
                  team=team, agent=agent, repo=repo, by=by)
        if server is not None:
            if journal is not None:
                raise CorralError("analytics", "--server and --journal exclude each other")
            from corral.cli.server_client import request

            params = {k: str(v) for k, v in (("since", q.since_ns), ("until", q.until_ns),
                                              ("team", team), ("agent", agent), ("repo", repo),
                                              ("by", by)) if v is not None}
            out = request(cfg, "analytics", server, "GET", "/analytics/api/stats",
                          params=params)
        else:
            settings = Settings.from_config(cfg)
            path = _journal(journal)
            store = _store(path)
            try:
                store.refresh(JournalSource(path), settings)
                out = compute(store, q, settings)
            finally:
                store.close()
        if as_json:
            print(json.dumps(out, indent=2, sort_keys=True))
        else:
            sys.stdout.write(render_all(out))

    @app.command("dashboard")
    def dashboard(
        ctx: typer.Context,
        port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                          help="Port on 127.0.0.1 (0: any free port).")] = 8787,
        investigator: Annotated[bool, typer.Option(
            "--investigator", help="Also allow per-user views, with a one-time token.")] = False,
        journal: _JournalOpt = None,
    ) -> None:
        """Charts of `corral stats` on http://127.0.0.1:PORT (team-level by default)."""
        import secrets
        import socket

        import uvicorn

        from corral.analytics import JournalSource, Settings
        from corral.analytics.web import make_app
        from corral.cli.common import load_effective_config

        settings = Settings.from_config(load_effective_config(ctx))
        path = _journal(journal)
        source = JournalSource(path)
        store = _store(path)
        store.refresh(source, settings)  # fail before listening: a missing journal is one line
        token = secrets.token_urlsafe(32) if investigator else None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            sock.close()
            store.close()
            from corral.errors import CorralError

            raise CorralError("analytics", f"cannot listen on 127.0.0.1:{port}: "
                              f"{exc.strerror or exc}", hint="choose another --port, or 0") from None
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        print(f"corral dashboard: {url}" + (f"#token={token}" if token else ""), flush=True)
        app_ = make_app(source, store, settings, investigator_token=token)
        server = uvicorn.Server(uvicorn.Config(app_, log_level="warning", lifespan="off"))
        try:
            server.run(sockets=[sock])
        finally:
            store.close()


def _journal(journal: Path | None) -> Path:
    from corral.paths import corral_home
    from corral.telemetry.journal import journal_file

    return journal or journal_file(corral_home())


def _store(journal: Path) -> RollupStore:
    from corral.analytics import JournalSource, RollupStore, rollup_path

    JournalSource(journal).last_seq()  # no journal: one line, and no rollup file created
    return RollupStore.open(rollup_path(journal))
