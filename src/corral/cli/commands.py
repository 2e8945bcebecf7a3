"""The table of ``corral`` commands and the root help, with no imports.

``corral --help`` is answered from here without loading typer or click (they cost ~70 ms of a
~100 ms start): ``root_help`` lays the page out exactly as click does (checked against click's
own output by tests/config/test_cli.py at several terminal widths). The Typer app reads the same
table, so the two can never list different commands.
"""

from __future__ import annotations

ROOT_HELP = "Govern AI coding agents: sandbox, command rules, approvals, managed network, audit."

# Every command: (the module whose ``register(app)`` defines it, its one-line summary for
# ``corral --help``). Order is the order in ``corral --help``. tests/config/test_cli.py checks
# this table against what the modules really register.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("corral.cli.run_cmd", "Run an agent sandboxed, its network managed, all journaled."),
    "exec": ("corral.cli.exec_cmd", "Run CMD through rules, approvals, the sandbox and the log."),
    "demo": ("corral.cli.exec_cmd", "The main job: govern real commands in a scratch workspace."),
    "sandbox": ("corral.cli.sandbox_cmd", "Run CMD inside the sandbox (no rules, no approvals)."),
    "proxy": ("corral.cli.proxy_cmd", "Run the managed network proxy (HTTP/CONNECT, SOCKS5)."),
    "policy": ("corral.cli.policy_cmd", "Command rules: check, decide, test and replay."),
    "review": ("corral.cli.review_cmd", "The deterministic auto-reviewer's verdict on CMD."),
    "approve": ("corral.cli.approvals_cmd", "Answer questions agents are waiting on."),
    "grants": ("corral.cli.approvals_cmd", "Standing approvals: list, add, revoke."),
    "hook": ("corral.cli.integrations_cmd", "Answer one agent hook call (JSON on stdin)."),
    "install-hooks": ("corral.cli.integrations_cmd", "Install corral's hooks into an agent."),
    "mcp": ("corral.cli.mcp_cmd", "The MCP gateway: govern the tools agents call over MCP."),
    "install-mcp": ("corral.cli.mcp_cmd", "Route an agent's MCP servers through corral."),
    "log": ("corral.cli.log_cmd", "What agents did and why (the journal); `log verify`."),
    "forward": ("corral.cli.forward_cmd", "Forward the journal to corral server now (catch up)."),
    "enroll": ("corral.cli.fleet_cmd", "Enrol this machine with corral server (token on stdin)."),
    "login": ("corral.cli.fleet_cmd", "Sign in to your organisation (OIDC device authorization)."),
    "logout": ("corral.cli.fleet_cmd", "Sign out; with --server, forget that server's token."),
    "whoami": ("corral.cli.fleet_cmd", "Who is signed in, and this machine's device."),
    "agents": ("corral.cli.agents_cmd", "The agents' own managed settings, from requirements."),
    "config": ("corral.cli.config_cmd", "Inspect and validate layered configuration."),
    "trust": ("corral.cli.config_cmd", "Trust a project: load its .corral/ config and rules."),
    "untrust": ("corral.cli.config_cmd", "Mark a project untrusted: ignore its .corral/."),
    "doctor": ("corral.cli.config_cmd", "What this machine can enforce, partial controls too."),
    "server": ("corral.cli.server_cmd", "The compliance log service: ingest, verify, proofs."),
    "stats": ("corral.cli.stats_cmd", "Adoption, decisions, network, sandbox; what to tune."),
    "dashboard": ("corral.cli.stats_cmd", "Charts of `corral stats` on 127.0.0.1 (team-level)."),
    "triage": ("corral.cli.triage_cmd", "Explain an endpoint alert with the agents' journal."),
}

# The root options, as the Typer callback in corral.cli.app declares them.
ROOT_OPTIONS: tuple[tuple[str, str], ...] = (
    ("--profile TEXT", "Config profile: selects [profiles.NAME] from config."),
    ("-c, --config KEY=VALUE",
     "Override a config key (dotted path; VALUE parsed as TOML, else a string)."),
    ("-h, --help", "Show this message and exit."),
)


def program_name() -> str:
    """What click calls the program in its usage line: the script's name, or ``python -m
    corral`` when run as a module."""
    import os
    import sys

    main = sys.modules.get("__main__")
    path = sys.argv[0]
    package = getattr(main, "__package__", None)
    if package in (None, ""):
        return os.path.basename(path)
    name = os.path.splitext(os.path.basename(path))[0]
    module = package if name == "__main__" else f"{package}.{name}"
    return f"python -m {module.lstrip('.')}"


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns`` without importing shutil (and fnmatch, ...):
    $COLUMNS, else the terminal on stdout, else 80."""
    import os
    import sys

    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def root_help(prog: str, columns: int) -> str:
    """The root help page at a terminal ``columns`` wide (click's layout rules)."""
    import textwrap

    width = max(min(columns, 80) - 2, 50)

    def dl(rows: list[tuple[str, str]]) -> list[str]:
        first_col = min(max(len(a) for a, _ in rows), 30) + 2
        wrapper = textwrap.TextWrapper(max(width - first_col - 2, 10), replace_whitespace=False)
        out = []
        for term, text in rows:
            lines = wrapper.wrap(text) or [""]
            if len(term) <= first_col - 2:
                out.append(f"  {term}{' ' * (first_col - len(term))}{lines[0]}")
            else:
                out += [f"  {term}", f"{' ' * (first_col + 2)}{lines[0]}"]
            out += [f"{' ' * (first_col + 2)}{line}" for line in lines[1:]]
        return out

    usage_prefix = f"Usage: {prog} "
    usage = textwrap.TextWrapper(width, initial_indent=usage_prefix,
                                 subsequent_indent=" " * len(usage_prefix),
                                 replace_whitespace=False).fill("[OPTIONS] COMMAND [ARGS]...")
    body = textwrap.TextWrapper(width, initial_indent="  ", subsequent_indent="  ",
                                replace_whitespace=False).fill(ROOT_HELP)
    lines = [usage, "", body, "", "Options:", *dl(list(ROOT_OPTIONS)), "", "Commands:",
             *dl([(name, summary) for name, (_, summary) in COMMANDS.items()])]
    return "\n".join(lines) + "\n"
