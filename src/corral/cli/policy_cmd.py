"""``corral policy``: check commands against rules files (Codex-compatible) and decide them.

Only typer and the standard library at module level; the rules engine is imported on use.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

policy_app = typer.Typer(
    name="policy",
    help="Command rules: check, decide and test .rules files.",
    no_args_is_help=True,
    add_completion=False,
)

_RULES_OPT = typer.Option("-r", "--rules", metavar="FILE", help="A .rules file (repeatable).")


@policy_app.command("check")
def check(
    command: Annotated[list[str], typer.Argument(metavar="-- CMD...", help="The command to check.")],
    rules: Annotated[list[Path], _RULES_OPT],
    resolve_host_executables: Annotated[
        bool, typer.Option("--resolve-host-executables", help="Basename fallback for absolute paths.")
    ] = False,
    pretty: Annotated[bool, typer.Option("--pretty", help="Pretty-print the JSON.")] = False,
) -> None:
    """Print exactly what `codex execpolicy check` prints for these files and command."""
    from corral.rules.check import run_check
    from corral.rules.check_fast import cache_dir

    code, out, err = run_check([str(p) for p in rules], command, resolve_host_executables, pretty,
                               cache_dir=Path(cache_dir()))
    sys.stdout.write(out)
    sys.stderr.write(err)
    if code:
        raise typer.Exit(code)


@policy_app.command("decide")
def decide_cmd(
    ctx: typer.Context,
    command: Annotated[list[str], typer.Argument(metavar="-- CMD...", help="The command to decide.")],
    rules: Annotated[list[Path] | None, _RULES_OPT] = None,
    approval_policy: Annotated[
        str,
        typer.Option("--approval-policy", help="untrusted | on-request | on-failure | never"),
    ] = "on-request",
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Decide a command the way the supervisor would: every simple command, with provenance."""
    from corral.errors import CorralError
    from corral.rules import APPROVAL_POLICIES, decide, load_policy

    if approval_policy not in APPROVAL_POLICIES:
        raise CorralError("rules", f"unknown approval policy {approval_policy!r}",
                          "use one of " + ", ".join(APPROVAL_POLICIES))
    if rules:
        policy = load_policy(None, list(rules), include_configured=False)
    else:
        from corral.cli.common import load_effective_config

        cfg = load_effective_config(ctx)
        policy = load_policy(cfg)
    for err in policy.load_errors:
        print(f"corral: rules: {err} (every command needs approval until this is fixed)",
              file=sys.stderr)
    result = decide(list(command), policy, approval_policy)
    if as_json:
        print(result.to_json())
    else:
        from corral.display import shown  # the command may be an agent's (issue 21.4)

        print(shown(f"{result.decision.value}: {result.reason}"))
        for m in result.matches:
            why = f" ({m.justification})" if m.justification else ""
            print(shown(f"  {m.decision.value:9} {m.source}: {' '.join(m.command)}{why}"))


@policy_app.command("test")
def test_cmd(
    ctx: typer.Context,
    files: Annotated[
        list[Path] | None,
        typer.Argument(help=".rules files whose examples to run (default: the configured ones)."),
    ] = None,
) -> None:
    """Load each file and run its match/not_match examples; report failures with file:line."""
    from corral.rules.model import Policy
    from corral.rules.starlark_loader import load_rules_file

    if not files:
        from corral.cli.common import load_effective_config
        from corral.rules import rule_files

        files = rule_files(load_effective_config(ctx))
        if not files:
            print("no .rules files configured (system, user or trusted project)")
            return
    failed = 0
    for path in files:
        err = load_rules_file(str(path), Policy())
        if err is None:
            print(f"ok   {path}")
        else:
            failed += 1
            print(f"FAIL {err}")
    if failed:
        print(f"{failed} of {len(files)} file(s) failed", file=sys.stderr)
        raise typer.Exit(1)


@policy_app.command("replay")
def replay_cmd(
    rules: Annotated[list[Path], _RULES_OPT],
    journal: Annotated[
        Path | None, typer.Option("--journal", help="Journal database (default: $CORRAL_HOME's).")
    ] = None,
    approval_policy: Annotated[
        str, typer.Option("--approval-policy", help="untrusted | on-request | on-failure | never")
    ] = "on-request",
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as JSON.")] = False,
) -> None:
    """Re-decide past shell commands from the journal with new rules; list what would change."""
    import json

    from corral.errors import CorralError
    from corral.paths import corral_home
    from corral.rules import APPROVAL_POLICIES, load_policy
    from corral.rules.replay import replay
    from corral.telemetry.journal import Journal, journal_file

    if approval_policy not in APPROVAL_POLICIES:
        raise CorralError("rules", f"unknown approval policy {approval_policy!r}",
                          "use one of " + ", ".join(APPROVAL_POLICIES))
    policy = load_policy(None, list(rules), include_configured=False)
    if policy.load_errors:
        raise CorralError("rules", f"cannot replay with a broken rules file: {policy.load_errors[0]}")
    result = replay(Journal(journal or journal_file(corral_home())).events(), policy,
                    approval_policy)
    if as_json:
        print(json.dumps({"checked": result.checked, "changes": [c.__dict__ for c in result.changes],
                          "unreadable": [list(u) for u in result.unreadable]}, ensure_ascii=False))
        return
    from corral.display import shown  # recorded commands are the agents' (issue 21.4)

    for change in result.changes:
        print(shown(change.line()))
    for seq, text in result.unreadable:
        print(shown(f"#{seq} cannot split the recorded command line: {text}"))
    print(f"{len(result.changes)} of {result.checked} recorded command(s) would be decided "
          "differently", file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add ``corral policy`` to the root app."""
    app.add_typer(policy_app, name="policy")
