"""``corral hook AGENT`` (one hook call on stdin) and ``corral install-hooks AGENT``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_AGENT_HELP = "codex, claude-code or gemini"


def hook(agent: Annotated[str, typer.Argument(help=_AGENT_HELP)]) -> None:
    """Answer one agent hook call (JSON on stdin) with the session supervisor's decision.

    Installed hooks call the faster `python -m corral.integrations.hook_main AGENT` directly;
    this command does the same thing."""
    from corral.integrations.hook_main import main

    raise typer.Exit(main([agent]))


def install_hooks_cmd(
    agent: Annotated[str, typer.Argument(help=_AGENT_HELP)],
    project: Annotated[bool, typer.Option("--project", help="This project's config "
                                          "(<project>/.codex, .claude or .gemini).")] = False,
    user: Annotated[bool, typer.Option("--user", help="Your user config (default).")] = False,
    remove: Annotated[bool, typer.Option("--remove", help="Take corral's hooks out.")] = False,
    project_root: Annotated[Path | None, typer.Option(
        "--project-root", help="Project directory for --project (default: current).")] = None,
) -> None:
    """Write (or merge) corral's hooks into the agent's configuration, idempotently; other
    settings and hooks are kept. `--remove` takes only corral's entries out."""
    from corral.errors import CorralError
    from corral.integrations.install import install_hooks

    if project and user:
        raise CorralError("integrations", "--project and --user are exclusive")
    scope = "project" if project else "user"
    path, changed = install_hooks(agent, scope, remove, project_root=project_root)
    verb = ("removed corral hooks from" if remove else "installed corral hooks in") if changed \
        else "already up to date:"
    typer.echo(f"corral: {verb} {path}")
    if not remove and agent == "codex":
        _trust_for_codex(path.parent, project_root if project else None)


def _trust_for_codex(cfg_dir: Path, project_root: Path | None) -> None:
    """Codex runs a new user hook only once it is trusted: record that trust where Codex keeps
    it (its user config), or say plainly that the hooks are inactive."""
    import os

    from corral.errors import CorralError
    from corral.integrations.codex_trust import trust_corral_hooks

    codex_home = Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex") \
        if project_root is not None else cfg_dir
    cwd = (project_root or Path.cwd()).resolve()
    try:
        hooks = trust_corral_hooks(codex_home, cwd)
    except CorralError as exc:
        typer.echo(f"corral: integrations: warning: the hooks are installed but INACTIVE: "
                   f"{exc.message}; Codex will run with no corral rules or approvals until "
                   f"they are trusted (/hooks in Codex)", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"corral: Codex trusts corral's {len(hooks)} hooks (recorded in "
               f"{codex_home / 'config.toml'})")


def register(app: typer.Typer) -> None:
    app.command("hook")(hook)
    app.command("install-hooks")(install_hooks_cmd)
