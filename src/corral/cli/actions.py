"""What `corral exec` does once its arguments are parsed, with no typer or click imported.

Shared by the Typer command (``corral.cli.exec_cmd``) and the fast path (``corral.cli.exec_fast``)
that an agent's every action takes, so both run exactly the same code after parsing.
"""

from __future__ import annotations

import sys
from pathlib import Path

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


def pipeline_flags(profile: str | None, approval_policy: str | None,
                   reviewer: str | None) -> dict[str, tuple[str, object]]:
    """The config keys that `corral exec`/`corral run` flags set explicitly (so requirements
    refuse them by name instead of silently replacing them)."""
    flags: dict[str, tuple[str, object]] = {}
    if approval_policy is not None:
        flags["approval_policy"] = ("--approval-policy", approval_policy)
    if reviewer is not None:
        flags["approvals_reviewer"] = ("--reviewer", reviewer)
    if profile is not None:
        flags["default_permissions"] = ("--profile", profile)
    return flags


def workdir_of(control: str, cwd: Path | None) -> Path:
    """The resolved working directory for a command, refused unless it is a directory."""
    from corral.errors import CorralError

    workdir = (cwd or Path.cwd()).resolve()
    if not workdir.is_dir():
        raise CorralError(control, f"--cwd {workdir}: not a directory")
    return workdir


def terminal_asker() -> Any:
    """Who answers at the terminal: the person, or nobody when stdin is not a terminal."""
    if sys.stdin.isatty():
        from corral.approvals import ask_terminal

        return ask_terminal
    from corral.supervisor.pipeline import no_terminal

    return no_terminal


def run_exec(cfg: Any, cmd: list[str], workdir: Path, *, terminal: Any, profile: str | None,
             intent: str | None, escalate: bool, verbose: bool,
             allow_domains: Sequence[str] = (), deny_domains: Sequence[str] = ()) -> int:
    """One action, one session (no API socket); with a proxy network the managed proxy runs
    for this action and asks its network questions through the same approval channels.
    Returns the exit status."""
    from corral.display import shown  # the agent chose the command and paths in these lines
    from corral.supervisor.session import Session

    with Session.open(cfg, "corral-exec", approval_policy=cfg.get("approval_policy"),
                      asker=terminal, sandbox_profile=profile,
                      reviewer=str(cfg.get("approvals_reviewer")), intent=intent, api=False,
                      allow_domains=tuple(allow_domains),
                      deny_domains=tuple(deny_domains), forward_for=cmd) as session:
        outcome = session.pipeline.run(cmd, workdir, escalate=escalate)
    if verbose:
        print(f"corral: decision: {outcome.decision} -> {outcome.verdict}", file=sys.stderr)
    if outcome.message:
        print(shown(outcome.message), file=sys.stderr)
    for v in outcome.violations:
        print(shown(str(v)), file=sys.stderr)
    return int(outcome.exit_code)
