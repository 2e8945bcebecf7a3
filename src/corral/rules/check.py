"""``corral policy check``: the Codex ``execpolicy check`` contract, as a pure function."""

from __future__ import annotations

from collections.abc import Sequence

from corral.rules.model import Policy, codex_json
from corral.rules.starlark_loader import load_rules_file


def run_check(
    files: Sequence[str], argv: Sequence[str], resolve_host_executables: bool = False,
    pretty: bool = False,
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) exactly as ``codex execpolicy check`` would produce them.

    stdout and the exit code are byte-identical to Codex; on a bad file the first stderr line is
    identical and the cause names ``file:line`` in our own words.
    """
    policy = Policy()
    for path in files:
        err = load_rules_file(path, policy)
        if err is not None:
            verb = "read" if err.message.startswith("cannot read") else "parse"
            return 1, "", f"Error: failed to {verb} policy at {path}\n\nCaused by:\n    {err}\n"
    return 0, codex_json(policy.check(list(argv), resolve_host_executables), pretty) + "\n", ""
