"""``corral agents apply|check``: the agents' own administrator settings, generated from
corral's effective requirements (docs/managed-agents.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

agents_app = typer.Typer(name="agents", no_args_is_help=True,
                         help="The agents' own managed settings, from corral's requirements.")

SESSION = "agents-managed"
_AgentOpt = Annotated[list[str] | None, typer.Option(
    "--agent", help="codex | claude-code | gemini (repeatable; default: all three).")]
_RootOpt = Annotated[Path | None, typer.Option(
    "--root", help="Write under DIR instead of / (tests, images; env CORRAL_AGENTS_ROOT).")]


def _root(root: Path | None) -> Path:
    from corral.agents_managed.files import default_root

    return root.absolute() if root is not None else default_root()


def _generate(ctx: typer.Context, agent: list[str] | None) -> tuple[Any, Any, list[Any]]:
    """(cfg, inputs, files) for the chosen agents."""
    import shlex

    from corral.agents_managed import AGENTS, RenderError, inputs_from_config, render
    from corral.cli.common import load_effective_config
    from corral.errors import CorralError
    from corral.integrations.install import hook_command, merge_hooks

    chosen = tuple(dict.fromkeys(agent or AGENTS))
    for a in chosen:
        if a not in AGENTS:
            raise CorralError("agents", f"unknown agent {a!r}", hint=f"use {', '.join(AGENTS)}")
    cfg = load_effective_config(ctx)
    hooks = {a: merge_hooks({}, a, hook_command(a)) for a in chosen}
    helper = f"{shlex.quote(sys.executable)} -I -m corral agents otel-headers"
    inputs = inputs_from_config(cfg, hooks, helper)
    if inputs.restrictive_reason:
        print(f"corral: warning: agents: the most restrictive settings are in force "
              f"({inputs.restrictive_reason}); the agents get those", file=sys.stderr)
    try:
        return cfg, inputs, render(inputs, chosen)
    except RenderError as exc:
        raise CorralError("agents", str(exc)) from None


def _journal(cfg: Any, name: str, attrs: dict[str, Any]) -> None:
    from corral.paths import corral_home
    from corral.telemetry import Telemetry

    tel = Telemetry.open(cfg, SESSION, agent="corral", home=corral_home())
    try:
        tel.emit(name, attrs, wait=True)
    finally:
        tel.close()


@agents_app.command("apply")
def apply_cmd(ctx: typer.Context, agent: _AgentOpt = None, root: _RootOpt = None,
              dry_run: Annotated[bool, typer.Option(
                  "--dry-run", help="Show the diff; write nothing.")] = False) -> None:
    """Generate the agents' managed files, show the unified diff, write them (root:root 0644,
    atomically)."""
    import json

    from corral.agents_managed import NeedsRoot, apply, plan
    from corral.agents_managed.files import check_writable, sha256
    from corral.errors import CorralError

    cfg, inputs, files = _generate(ctx, agent)
    base = _root(root)
    changes = plan(base, files)
    for c in changes:
        if c.diff:
            sys.stdout.write(c.diff if c.diff.endswith("\n") else c.diff + "\n")
    changed = [c for c in changes if c.changed]
    if dry_run:
        print(f"dry run: {len(changed)} of {len(changes)} files would change; nothing written")
        return
    try:
        check_writable(base, changes)
    except NeedsRoot as exc:
        raise CorralError("agents", str(exc)) from None
    # the record first: a change nobody can find in the journal is not made
    _journal(cfg, "agents.managed_settings.applied", {
        "agents.managed.root": str(base),
        "agents.managed.files": json.dumps([c.file.path for c in changed]),
        "agents.managed.sha256": json.dumps({c.file.path: sha256(c.file.text.encode())
                                             for c in changes}, sort_keys=True),
        "agents.managed.sources": json.dumps(list(inputs.sources)),
        "agents.managed.restrictive": inputs.restrictive_reason or ""})
    written = apply(base, changes, inputs.sources)
    names = {c.file.path for c in written}
    for c in changes:
        state = "written" if c.file.path in names else "unchanged"
        print(f"{c.file.path}: {state} ({c.file.agent})")


@agents_app.command("check")
def check_cmd(ctx: typer.Context, agent: _AgentOpt = None, root: _RootOpt = None) -> None:
    """Report drift: a managed file missing, changed by hand, or behind the requirements
    (exit 1 when there is any)."""
    import json

    from corral.agents_managed import check

    cfg, _, files = _generate(ctx, agent)
    base = _root(root)
    drift = check(base, files)
    _journal(cfg, "agents.managed_settings.drift" if drift else
             "agents.managed_settings.checked", {
                 "agents.managed.root": str(base),
                 "agents.managed.files": json.dumps([f.path for f in files]),
                 "agents.managed.drift": json.dumps([d.line() for d in drift]),
                 "agents.managed.drift_count": len(drift)})
    for d in drift:
        print(d.line())
    if drift:
        raise typer.Exit(1)
    print(f"managed agent settings match the requirements ({len(files)} files)")


@agents_app.command("otel-headers", hidden=True)
def otel_headers(ctx: typer.Context) -> None:
    """Print the ingest token's header as JSON (Claude Code's otelHeadersHelper)."""
    import json

    from corral.cli.common import load_effective_config
    from corral.forward.settings import resolve
    from corral.paths import corral_home

    settings = resolve(load_effective_config(ctx), corral_home())
    print(json.dumps({"Authorization": f"Bearer {settings.token}"}))


def register(app: typer.Typer) -> None:
    app.add_typer(agents_app)
