"""A typer-free path for ``corral [ROOT OPTIONS] sandbox [OPTIONS] -- CMD``.

Importing typer/click costs ~70 ms, more than the sandbox itself; an agent runs many commands.
``main(argv)`` handles exactly the grammar of ``corral.cli.sandbox_cmd`` and returns None for
anything else (help, unknown options), so the caller falls back to the full CLI, which then
also produces the usage errors. Wire it in before importing ``corral.cli.app``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from typing import Any

_ROOT_OPTS = {"-c": "config", "--config": "config", "--profile": "profile"}
_SB_OPTS = {
    "--profile": "profile", "-P": "profile", "--permission-profile": "profile",
    "--cwd": "cwd", "-C": "cwd", "--writable-root": "writable_root", "--network": "network",
    "--allow-domain": "allow_domain", "--deny-domain": "deny_domain",
    "--explain-env": "explain_env",
}
_REPEATABLE = {"config", "writable_root", "allow_domain", "deny_domain"}
_FLAGS = {"explain_env"}


def _take(argv: list[str], i: int, table: dict[str, str], into: dict[str, list[str]],
          flags: frozenset[str] | set[str] = _FLAGS,
          repeatable: frozenset[str] | set[str] = _REPEATABLE) -> int | None:
    """Parse one option at argv[i]; the index after it, or None if not ours/invalid."""
    arg = argv[i]
    name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
    key = table.get(name)
    if key is None:
        return None
    if key in flags:
        if eq:
            return None
        into[key] = ["1"]
        return i + 1
    if not eq:
        if i + 1 >= len(argv):
            return None
        value = argv[i + 1]
        i += 1
    if key not in repeatable and key in into:
        into[key] = []  # last one wins, as in click
    into.setdefault(key, []).append(value)
    return i + 1


def parse_command(argv: list[str], command: str, table: dict[str, str],
                  flags: frozenset[str] | set[str] = _FLAGS,
                  repeatable: frozenset[str] | set[str] = _REPEATABLE,
                  ) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]] | None:
    """(root options, the command's options, the command line after them) for
    ``corral [ROOT OPTIONS] COMMAND [OPTIONS] [--] CMD...``, or None when anything else is
    there (help, an unknown or combined option): the full CLI answers those."""
    root: dict[str, list[str]] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        nxt = _take(argv, i, _ROOT_OPTS, root)
        if nxt is None:
            return None
        i = nxt
    if i >= len(argv) or argv[i] != command:
        return None
    i += 1
    opts: dict[str, list[str]] = {}
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":
        nxt = _take(argv, i, table, opts, flags, repeatable)
        if nxt is None:
            return None  # --help, unknown option: let the full CLI answer
        i = nxt
    if i < len(argv) and argv[i] == "--":
        i += 1
    return root, opts, argv[i:]


def parse(argv: list[str]) -> tuple[dict[str, list[str]], dict[str, list[str]], list[str]] | None:
    """(root options, sandbox options, command) or None when this is not a plain sandbox call."""
    parsed = parse_command(argv, "sandbox", _SB_OPTS)
    if parsed is None:
        return None
    root, opts, cmd = parsed
    return (root, opts, cmd) if cmd or "explain_env" in opts else None


Parsed = tuple[dict[str, list[str]], dict[str, list[str]], list[str]]


def run_parsed(parsed: Parsed, run: Callable[[dict[str, list[str]], dict[str, list[str]],
                                             list[str]], int]) -> int:
    """Run a fast path's command; a refusal is its one line and exit status, as in the CLI."""
    from corral.errors import CorralError

    try:
        return run(*parsed)
    except CorralError as exc:
        print(exc.line(), file=sys.stderr)
        return exc.exit_code


def main(argv: list[str]) -> int | None:
    """Run ``corral sandbox`` without typer; None if ``argv`` is not for this path."""
    parsed = parse(argv)
    if parsed is None:
        return None
    if parsed[2]:
        prepare_cap()
    return run_parsed(parsed, _run)


def prepare_cap() -> None:
    """Start entering a pids cgroup for the command now (``corral.sandbox.pidcap.prepare``),
    before anything else is imported: the kernel's wait for that move (~6-15 ms here, an RCU
    grace period) then passes while the modules load and the config and plan are made, instead
    of in front of the spawn. pidcap itself imports no pathlib for this reason."""
    if sys.platform == "linux":
        from corral.sandbox import pidcap

        pidcap.prepare()


def _run(root: dict[str, list[str]], opts: dict[str, list[str]], cmd: list[str]) -> int:
    from pathlib import Path

    from corral.config import load_config
    from corral.errors import CorralError

    def one(key: str) -> str | None:
        v = opts.get(key)
        return v[-1] if v else None

    network = one("network")
    if network is not None and network not in ("none", "proxy", "host"):
        raise CorralError("sandbox", f"--network must be none, proxy or host, got {network!r}")
    workdir = Path(one("cwd") or Path.cwd()).resolve()
    if not workdir.is_dir():
        raise CorralError("sandbox", f"--cwd {workdir}: not a directory")
    profile = one("profile")
    flags: dict[str, tuple[str, object]] = {}
    if profile is not None:
        flags["default_permissions"] = ("--profile", profile)
    root_profile = root["profile"][-1] if root.get("profile") else None
    cfg = load_config(workdir, overrides=tuple(root.get("config", ())),
                      profile=root_profile, flags=flags)
    for warning in cfg.warnings:
        print(f"corral: warning: {warning}", file=sys.stderr)
    return run_sandbox(cfg, workdir, cmd, profile=profile,
                       writable_roots=[Path(p) for p in opts.get("writable_root", [])],
                       network=network, allow_domains=opts.get("allow_domain", []),
                       deny_domains=opts.get("deny_domain", []),
                       explain_env="explain_env" in opts)


def run_sandbox(cfg: Any, workdir: Path, cmd: list[str], *, profile: str | None,
                writable_roots: Sequence[Path], network: str | None,
                allow_domains: Sequence[str], deny_domains: Sequence[str],
                explain_env: bool = False) -> int:
    """Plan, start the managed proxy if the network mode is ``proxy``, run, report.
    ``explain_env``: first name each variable the environment policy leaves out and why
    (never a value); without ``cmd``, only that."""
    from corral.errors import CorralError
    from corral.sandbox import NetworkMode, Sandbox, network_mode, plan_from_config

    def plan(proxy: Any = None) -> Any:
        return plan_from_config(cfg, workdir, profile=profile, writable_roots=writable_roots,
                                network=network, allow_domains=allow_domains,
                                deny_domains=deny_domains, proxy=proxy)

    if explain_env:
        import os

        from corral.sandbox.envpolicy import dropped

        p = plan()
        for name, why in ([] if p.full_access else dropped(p.env_policy, os.environ)):
            print(f"corral: sandbox: env: {name} left out: {why}", file=sys.stderr)
        if not cmd:
            return 0

    if network_mode(cfg, profile, network) is not NetworkMode.PROXY:
        if allow_domains or deny_domains:
            raise CorralError("sandbox", "--allow-domain/--deny-domain only apply with "
                              "--network proxy", "add --network proxy")
        return run_plan(Sandbox(plan(), one_shot=True, defer_cleanup=False), cmd, workdir)
    from corral.cli.sandbox_net import managed_proxy

    with managed_proxy(cfg, allow_domains, deny_domains, cmd) as net:
        return run_plan(Sandbox(plan(net), one_shot=True, defer_cleanup=False), cmd, workdir)


def run_plan(sb: object, cmd: list[str], workdir: Path) -> int:
    """Run and report, shared with the typer command: weaker-mode warning, violations, status."""
    from corral.sandbox import Sandbox

    assert isinstance(sb, Sandbox)
    plan = sb.plan
    if plan.full_access:
        print(f"corral: sandbox: warning: profile {plan.profile} runs the command without a "
              "sandbox", file=sys.stderr)
    if sb.weaker_mode is not None:
        where = f" in {plan.allow_weaker_source}" if plan.allow_weaker_source else ""
        print(f"corral: sandbox: warning: running in weaker mode '{sb.weaker_mode}' "
              f"(accepted by sandbox.allow_weaker{where})", file=sys.stderr)
    result = sb.run(cmd, workdir)
    sb.close()
    for v in result.violations:
        print(v.line(), file=sys.stderr)
    for w in result.warnings:
        print(w, file=sys.stderr)
    rc = result.returncode
    return 128 - rc if rc < 0 else rc
