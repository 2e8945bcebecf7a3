"""``corral review -- CMD``: the deterministic auto-reviewer's verdict on one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command(
        "review",
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
        help="Print the deterministic auto-reviewer's verdict on CMD (nothing runs). Exit status "
             "0 when it would allow CMD, 1 when it would deny it. Review a shell script with "
             "-- bash -lc 'SCRIPT'.",
    )(review_command)


def review_command(
    cmd: Annotated[list[str], typer.Argument(metavar="-- CMD...", show_default=False)],
    intent: Annotated[str | None, typer.Option(
        "--intent", help="The user's request, to judge whether CMD is what was asked for.")] = None,
    cwd: Annotated[Path | None, typer.Option(
        "--cwd", "-C", help="Working directory (the workspace); default: the current one.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")] = False,
) -> None:
    from corral.errors import CorralError
    from corral.review.deterministic import DeterministicReviewer
    from corral.review.model import ReviewRequest

    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise CorralError("review", "no command given", "corral review [--intent TEXT] -- CMD...")
    workdir = (cwd or Path.cwd()).absolute()
    review = DeterministicReviewer().review(
        ReviewRequest(argv=tuple(cmd), cwd=str(workdir), kind="shell", intent=intent))
    if as_json:
        print(review.to_json())
    else:
        from corral.display import shown  # the rationale quotes the command (issue 21.4)

        print(shown(f"{review.outcome} (risk {review.risk_level}, user authorization "
                    f"{review.user_authorization}): {review.rationale}"))
    raise typer.Exit(0 if review.outcome == "allow" else 1)
