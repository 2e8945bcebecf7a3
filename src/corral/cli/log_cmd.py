"""``corral log``: show the journal (timeline, JSON lines, follow) and ``corral log verify``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

log_app = typer.Typer(
    name="log",
    help="Show what agents did and why (the journal); `corral log verify` checks its integrity.",
    invoke_without_command=True,
    no_args_is_help=False,
)

_JournalOpt = Annotated[
    Path | None,
    typer.Option("--journal", help="Journal file (default $CORRAL_HOME/journal/journal.db)."),
]


def _journal_path(journal: Path | None) -> Path:
    from corral.paths import corral_home
    from corral.telemetry.journal import journal_file

    return journal or journal_file(corral_home())


@log_app.callback()
def show(
    ctx: typer.Context,
    session: Annotated[str | None, typer.Option("--session", help="Only this session.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print events as JSON lines.")] = False,
    last: Annotated[
        int | None, typer.Option("--last", min=1, help="Only the last N sessions.")
    ] = None,
    journal: _JournalOpt = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Show imported agent records in full (raw form).")] = False,
) -> None:
    """Timeline per session: each prompt, then each action with its decision, source and result."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console

    from corral.display import shown
    from corral.telemetry.journal import Journal
    from corral.telemetry.timeline import describe, session_tree, to_json_line

    path = _journal_path(journal)
    j = Journal(path)
    console = Console(highlight=False)
    head = j.last_seq()  # --follow prints what is committed after this
    sessions = [session] if session else [s for s, _, _ in j.sessions()]
    if last is not None and not session:
        sessions = sessions[-last:]
    if as_json:
        if session or last is None:  # journal order
            for ev in j.events(session, until_seq=head):
                print(to_json_line(ev))
        else:
            for sid in sessions:
                for ev in j.events(sid, until_seq=head):
                    print(to_json_line(ev))
    else:
        for sid in sessions:
            tree = session_tree(j.events(sid, until_seq=head), verbose=verbose)
            if tree is None:
                console.print(f"no events for session {sid}")
                continue
            console.print(tree)
        if not sessions:
            console.print("journal is empty")
    if not follow:
        return
    sys.stdout.flush()
    seen = head
    try:
        while True:
            time.sleep(0.25)
            for ev in j.events(session, after_seq=seen):
                seen = ev.seq or seen
                if as_json:
                    print(to_json_line(ev), flush=True)
                else:
                    line = describe(ev, verbose=verbose)
                    line.append(f"  [{shown(ev.session_id)} {shown(ev.call_id or '')}]",
                                style="dim")
                    console.print(line)
                    sys.stdout.flush()
    except KeyboardInterrupt:
        return


@log_app.command("verify")
def verify(journal: _JournalOpt = None) -> None:
    """Check the hash chain and signed checkpoints; exit 1 and say where if anything was changed."""
    from corral.paths import corral_home
    from corral.telemetry.journal import Journal
    from corral.telemetry.keys import load_public_key

    path = _journal_path(journal)
    home = corral_home() if journal is None else path.parent.parent
    res = Journal(path).verify(load_public_key(home))
    if res.ok:
        print(f"journal OK: {path}: {res.records} records, {res.checkpoints} signed checkpoints "
              f"(last at seq {res.last_checkpoint_seq})")
        if res.last_seq > res.last_checkpoint_seq:
            print(f"note: {res.last_seq - res.last_checkpoint_seq} records after the last "
                  "checkpoint are chained but not yet signed")
        return
    for p in res.problems:
        print(f"corral: telemetry: journal verification failed: {p.line()}", file=sys.stderr)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``corral log`` (with ``verify``) to the root app."""
    app.add_typer(log_app)
