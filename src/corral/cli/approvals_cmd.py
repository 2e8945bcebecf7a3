"""``corral grants`` (list, add, revoke) and ``corral approve`` (answer queued questions,
mint and redeem remote approval tokens)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from corral.approvals.model import Choice
    from corral.approvals.queue import PendingItem
    from corral.approvals.store import GrantStore

grants_app = typer.Typer(name="grants", help="Standing approvals: list, add, revoke.",
                         no_args_is_help=True)

_DbOpt = Annotated[
    Path | None,
    typer.Option("--db", help="Grants database (default $CORRAL_HOME/state/grants.db)."),
]


def _store(db: Path | None) -> GrantStore:
    from corral.approvals.store import GrantStore

    return GrantStore(db)


@grants_app.command("list")
def grants_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", help="Include revoked, expired and used grants.")
    ] = False,
    db: _DbOpt = None,
) -> None:
    """Every active grant: id, scope, kind, pattern, who granted it, when, and expiry."""
    import json

    from corral.approvals.model import fmt_time

    with _store(db) as store:
        grants = store.list(active_only=not show_all)
    if as_json:
        for g in grants:
            print(json.dumps(g.to_json()))
        return
    if not grants:
        print("no active grants" if not show_all else "no grants")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from corral.display import shown

    table = Table(box=None, pad_edge=False, highlight=False)
    for col in ("id", "scope", "kind", "pattern", "granted by", "granted at", "expires",
                "where"):
        table.add_column(col, overflow="fold")
    if show_all:
        table.add_column("state")
    for g in grants:
        # the pattern is already shown safely (pattern_text); the place may be the agent's text
        where = shown(g.project or (f"session {g.session_id}" if g.session_id else "everywhere"))
        row = [g.id, g.scope.value, g.kind.value, g.pattern_text(), g.granted_by,
               fmt_time(g.granted_at), fmt_time(g.expires_at) if g.expires_at else "never",
               where]
        if show_all:
            row.append("revoked" if g.revoked_at else "used" if g.consumed_at else
                       "active" if g.active() else "expired")
        # Text, not markup: a pattern or path holding `[conceal]` must not style the table.
        table.add_row(*(Text(cell) for cell in row))
    Console(highlight=False, width=200 if not sys.stdout.isatty() else None).print(table)


@grants_app.command("revoke")
def grants_revoke(
    grant_id: Annotated[str, typer.Argument(help="Grant id (from `corral grants list`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the revoke event.")] = False,
    db: _DbOpt = None,
) -> None:
    """Revoke a grant; a persistent grant's line is removed from rules/default.rules."""
    import json

    with _store(db) as store:
        g = store.revoke(grant_id, by="user")
    if as_json:
        print(json.dumps(g.revoke_event("revoked by user")))
    else:
        print(f"revoked {g.id} ({g.scope.value} {g.kind.value} {g.pattern_text()})")


@grants_app.command("add")
def grants_add(
    pattern: Annotated[list[str], typer.Argument(help="Command prefix (after --), or for "
                                                 "network: HOST PORT|* PROTOCOL|*.")],
    kind: Annotated[str, typer.Option("--kind", help="shell|network|mcp|patch|escalation")] = (
        "shell"),
    scope: Annotated[str, typer.Option("--scope", help="once|session|project|persistent")] = (
        "persistent"),
    session: Annotated[str | None, typer.Option("--session", help="Session id.")] = None,
    project: Annotated[
        Path | None, typer.Option("--project", help="Project directory (project scope).")
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="30m, 1h, 2d, 1w or an ISO time.")
    ] = None,
    note: Annotated[str, typer.Option("--note", help="Free text kept with the grant.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the grant event.")] = False,
    db: _DbOpt = None,
) -> None:
    """Grant something ahead of time (refused for over-broad prefixes)."""
    import json

    from corral.approvals.model import parse_expiry

    exp = parse_expiry(expires) if expires else None
    proj = str(project.resolve()) if project is not None else None
    with _store(db) as store:
        g = store.add(kind, scope, tuple(pattern), session_id=session, project=proj,
                      granted_by="user", expires_at=exp, note=note)
    if as_json:
        print(json.dumps(g.event()))
    else:
        print(f"granted {g.id} ({g.scope.value} {g.kind.value} {g.pattern_text()})")


def _chosen(once: bool, session: bool, project: bool, persistent: bool,
            deny: bool) -> Choice | None:
    from corral.approvals.model import Choice
    from corral.errors import CorralError

    picked = [c for c, on in ((Choice.ONCE, once), (Choice.SESSION, session),
                              (Choice.PROJECT, project), (Choice.PERSISTENT, persistent),
                              (Choice.DENY, deny)) if on]
    if len(picked) > 1:
        raise CorralError("approvals", "give one answer: --once, --session, --project, "
                          "--persistent or --deny")
    return picked[0] if picked else None


def _show_pending(items: list[PendingItem], as_json: bool) -> None:
    import json

    from corral.approvals.model import fmt_time
    from corral.approvals.prompt import describe_action
    from corral.display import shown

    if as_json:
        for item in items:
            print(json.dumps(item.to_json()))
        return
    if not items:
        print("no pending questions")
        return
    for item in items:  # every field the agent could have chosen is shown escaped
        q = item.question()
        print(f"{shown(item.id)}  {describe_action(q)}")
        print(f"    why: {shown(item.reason)}")
        if item.reviewer_view:
            print(f"    reviewer: {shown(item.reviewer_view)}")
        print(f"    session {shown(item.session_id or '-')}  asked {fmt_time(item.created_at)}  "
              f"expires {fmt_time(item.expires_at)}")


def register(app: typer.Typer) -> None:
    """Add ``corral grants`` and ``corral approve`` to the root app."""
    app.add_typer(grants_app)

    @app.command("approve")
    def approve(
        pending_id: Annotated[
            str | None, typer.Argument(help="Pending question id (omit to list them).")
        ] = None,
        once: Annotated[bool, typer.Option("--once", help="Allow this action once.")] = False,
        session: Annotated[bool, typer.Option("--session", help="Allow for the session.")] = (
            False),
        project: Annotated[bool, typer.Option("--project", help="Allow for the project.")] = (
            False),
        persistent: Annotated[
            bool, typer.Option("--persistent", help="Allow always (writes a rule).")
        ] = False,
        deny: Annotated[bool, typer.Option("--deny", help="Deny it.")] = False,
        interactive: Annotated[
            bool, typer.Option("--interactive", "-i", help="Walk through pending questions.")
        ] = False,
        remote_token: Annotated[
            str | None,
            typer.Option("--remote-token", metavar="ID",
                         help="Mint a signed single-use token answering question ID."),
        ] = None,
        expires: Annotated[
            str | None,
            typer.Option("--expires", help="Expiry of the resulting session/project grant "
                         "(30m, 1h, 2d or an ISO time)."),
        ] = None,
        ttl: Annotated[str, typer.Option("--ttl", help="Token lifetime (e.g. 15m).")] = "15m",
        token: Annotated[
            str | None, typer.Option("--token", help="Redeem a remote approval token.")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="List as JSON lines.")] = False,
        db: _DbOpt = None,
    ) -> None:
        """Answer questions agents are waiting on (when no terminal could ask you)."""
        from corral.approvals.queue import PendingQueue
        from corral.errors import CorralError

        choice = _chosen(once, session, project, persistent, deny)
        if expires is not None and (pending_id is None or remote_token or token):
            raise CorralError("approvals", "--expires goes with an answer: corral approve ID "
                              "--session|--project --expires 1h")
        with _store(db) as store:
            queue = PendingQueue(store)
            if token is not None:
                from corral.approvals.tokens import redeem_token

                ans = redeem_token(queue, token)
                print(f"answered {ans.pending_id}: {ans.choice.value} (remote token)")
                return
            if remote_token is not None:
                import time

                from corral.approvals.model import Choice, parse_expiry
                from corral.approvals.tokens import mint_token

                now = time.time()
                print(mint_token(queue, remote_token, choice or Choice.ONCE,
                                 ttl=parse_expiry(ttl, now) - now, now=now))
                return
            if pending_id is not None:
                if choice is None:
                    raise CorralError("approvals", f"say how to answer {pending_id}",
                                      "--once, --session, --project, --persistent or --deny")
                from corral.approvals.model import fmt_time, parse_expiry

                exp = parse_expiry(expires) if expires else None
                item = queue.answer(pending_id, choice, by="user", grant_expires=exp)
                until = f" until {fmt_time(exp)}" if exp else ""
                print(f"answered {item.id}: {choice.value}{until}")
                return
            if choice is not None:
                raise CorralError("approvals", "give the pending question's id to answer",
                                  "run `corral approve` to list them")
            items = queue.pending()
            if not interactive:
                _show_pending(items, as_json)
                return
            _walk(queue, items)


def _walk(queue: object, items: list[PendingItem]) -> None:
    from corral.approvals.prompt import ask_terminal
    from corral.approvals.queue import PendingQueue
    from corral.errors import CorralError

    assert isinstance(queue, PendingQueue)
    if not items:
        print("no pending questions")
        return
    for item in items:
        choice = ask_terminal(item.question())
        if choice is None:
            raise CorralError("approvals", "interactive mode needs a terminal",
                              "answer with `corral approve ID --once|--deny|...`")
        try:
            queue.answer(item.id, choice, by="user")
        except CorralError as exc:
            print(exc.line(), file=sys.stderr)
            continue
        print(f"answered {item.id}: {choice.value}", file=sys.stderr)
