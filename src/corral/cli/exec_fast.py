"""A typer-free path for ``corral [ROOT OPTIONS] exec [OPTIONS] -- CMD``: an agent's every
action pays for it, and typer/click cost ~70 ms of imports.

``main(argv)`` handles exactly the grammar of ``corral.cli.exec_cmd`` and returns None for
anything else (help, unknown or combined options, no command), so the caller falls back to the
full CLI, which then also produces the usage errors. After parsing, both run
``corral.cli.actions.run_exec``.
"""

from __future__ import annotations

import sys

from corral.cli.sandbox_fast import parse_command, prepare_cap, run_parsed

_EXEC_OPTS = {
    "--profile": "profile", "-P": "profile", "--approval-policy": "approval_policy",
    "--reviewer": "reviewer", "--cwd": "cwd", "-C": "cwd", "--intent": "intent",
    "--escalate": "escalate", "--verbose": "verbose", "-v": "verbose",
    "--allow-domain": "allow_domain", "--deny-domain": "deny_domain",
}
_FLAGS = frozenset({"escalate", "verbose"})
_REPEATABLE = frozenset({"config", "allow_domain", "deny_domain"})


def main(argv: list[str]) -> int | None:
    """Run ``corral exec`` without typer; None if ``argv`` is not for this path."""
    parsed = parse_command(argv, "exec", _EXEC_OPTS, _FLAGS, _REPEATABLE)
    if parsed is None or not parsed[2]:
        return None
    prepare_cap()  # first: the cgroup move's wait passes while the pipeline loads
    return run_parsed(parsed, _run)


def _run(root: dict[str, list[str]], opts: dict[str, list[str]], cmd: list[str]) -> int:
    from pathlib import Path

    from corral.cli.actions import pipeline_flags, run_exec, terminal_asker, workdir_of
    from corral.config import load_config

    def one(key: str) -> str | None:
        v = opts.get(key)
        return v[-1] if v else None

    profile = one("profile")
    cwd = one("cwd")
    workdir = workdir_of("exec", Path(cwd) if cwd is not None else None)
    cfg = load_config(workdir, overrides=tuple(root.get("config", ())),
                      profile=root["profile"][-1] if root.get("profile") else None,
                      flags=pipeline_flags(profile, one("approval_policy"), one("reviewer")))
    for warning in cfg.warnings:
        print(f"corral: warning: {warning}", file=sys.stderr)
    return run_exec(cfg, cmd, workdir, terminal=terminal_asker(), profile=profile,
                    intent=one("intent"), escalate="escalate" in opts,
                    verbose="verbose" in opts, allow_domains=opts.get("allow_domain", []),
                    deny_domains=opts.get("deny_domain", []))
