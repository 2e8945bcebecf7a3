"""``corral run -- AGENT``: a whole agent process under one supervised session.

The supervisor (this process, outside the sandbox) owns the journal, the grants, the managed
proxy and the session API. The agent runs inside the sandbox with:

- network only through the managed proxy (its preset's model API hosts allowed; unknown hosts
  go to the approval pipeline as network questions; every decision is journaled);
- the session API reachable on loopback port ``SESSION_API_PORT`` (bridged to the supervisor's
  unix socket), so ``corral hook ...`` inside can ask for decisions;
- its own configuration directory writable (sessions, logs, caches) but the files that grant it
  permissions (``config.toml``, ``hooks.json``, ``rules/``, ``settings.json``, ...) read-only,
  and *missing* ones impossible to create: each gets a read-only placeholder for the run (a file
  meaning "nothing configured" in its format, ``{}`` or empty TOML; an empty directory for
  ``rules/``), removed afterwards if it is still exactly what corral made
  (``corral.sandbox.locked``). If a placeholder cannot be made, the run is refused;
- the agent's own *state* file read-only too when it also holds permissions: Claude Code's
  ``~/.claude.json`` carries per-project ``allowedTools``, ``mcpServers`` (commands Claude Code
  runs, outside any sandbox when it is next started without corral), trust and MCP approvals.
  Nothing of it is kept from a run, harmless counters and tips included: Claude Code writes it as
  a temporary file in the same directory renamed over it, which the read-only home directory
  stops anyway (it falls back to writing in place only when the rename fails), so a private
  writable copy would only ever receive what the agent's *commands* write there. Its legacy
  ``.config.json`` (read instead of ``~/.claude.json`` when it exists and is writable or not
  empty) gets an *empty* read-only placeholder, the one stand-in Claude Code skips. A moved
  config dir (``$CLAUDE_CONFIG_DIR``, ``$CODEX_HOME``) is passed on as the absolute path locked.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from corral.supervisor.session import Integration

from corral.supervisor.network import HTTP_PORT, SOCKS_PORT

PROXY_PORTS = (HTTP_PORT, SOCKS_PORT)  # the managed proxy's loopback ports inside the sandbox
SESSION_API_PORT = 7878  # inside the sandbox's own network namespace
OTLP_PORT = 4318


@dataclass(frozen=True)
class AgentPreset:
    """What an agent needs to work: model API hosts, its config dir and the files in it that
    set its own permissions (kept read-only)."""

    name: str
    hosts: tuple[str, ...] = ()
    config_dir: str | None = None
    locked_files: tuple[str, ...] = ()
    # The agent's own credentials: passed through although the environment policy strips
    # *KEY*/*TOKEN* variables from everything else the sandbox runs.
    credential_env: tuple[str, ...] = ()
    # The variable that moves the config dir (the agent reads it inside the sandbox too).
    config_env: str | None = None
    # The config dir's name inside the directory ``config_env`` names, when that variable names
    # its parent (Gemini CLI: $GEMINI_CLI_HOME/.gemini); None: it names the config dir itself.
    config_subdir: str | None = None
    # State files that also grant permissions, locked like ``locked_files`` (a `{}` placeholder
    # where a missing one could be created): in the directory ``config_env`` names when set,
    # else in the home directory (Claude Code's ``.claude.json`` and its OAuth variants).
    state_files: tuple[str, ...] = ()
    # Names in the config dir whose placeholder is an *empty* file: the agent skips an empty
    # read-only file but would take `{}` for a config (Claude Code's legacy ``.config.json``).
    empty_locked: tuple[str, ...] = ()
    # Arguments that mean "no full-screen UI" (a batch subcommand as the first argument, or a
    # flag anywhere): without one, the agent gets the terminal when corral has one.
    batch_commands: tuple[str, ...] = ()
    batch_flags: tuple[str, ...] = ()
    # Its login files in the config dir: hidden from every sandbox by the credential catalogue,
    # re-allowed for the agent's own run only (it cannot reach its model without them).
    login_files: tuple[str, ...] = ()
    # A prefix under which the session's variables are passed too, for an agent that strips
    # others from its hooks' environment (Gemini CLI keeps only GEMINI_CLI_* when it redacts).
    hook_env_prefix: str | None = None

    def interactive(self, argv: list[str]) -> bool:
        if not (self.batch_commands or self.batch_flags):
            return False  # an agent we know nothing about: detached, as any sandboxed command
        if len(argv) > 1 and argv[1] in self.batch_commands:
            return False
        return not any(a in self.batch_flags or a.split("=", 1)[0] in self.batch_flags
                       for a in argv[1:])


# Claude Code 2.1's global config: ``.claude{suffix}.json`` in $CLAUDE_CONFIG_DIR, else in HOME;
# the suffix follows the OAuth environment (prod: none; CLAUDE_CODE_CUSTOM_OAUTH_URL: custom).
CLAUDE_STATE_FILES = (".claude.json", ".claude-custom-oauth.json", ".claude-staging-oauth.json",
                      ".claude-local-oauth.json")

PRESETS: dict[str, AgentPreset] = {
    "codex": AgentPreset(
        "codex", ("api.openai.com", "chatgpt.com", "auth.openai.com"), "~/.codex",
        ("config.toml", "hooks.json", "requirements.toml", "managed_config.toml", "rules"),
        credential_env=("OPENAI_API_KEY", "CODEX_API_KEY"), config_env="CODEX_HOME",
        batch_commands=("exec", "e", "login", "logout", "mcp", "mcp-server", "app-server",
                        "completion", "sandbox", "debug", "apply", "a", "execpolicy",
                        "features", "help"),
        batch_flags=("--help", "-h", "--version", "-V"), login_files=("auth.json",)),
    "claude": AgentPreset(
        "claude-code", ("api.anthropic.com", "statsig.anthropic.com", "console.anthropic.com"),
        "~/.claude", ("settings.json", "settings.local.json", "managed-settings.json",
                      # grant tools in their front matter, or carry hooks and MCP servers
                      "commands", "agents", "skills", "plugins"),
        credential_env=("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"),
        config_env="CLAUDE_CONFIG_DIR", state_files=CLAUDE_STATE_FILES,
        empty_locked=(".config.json",),
        batch_commands=("mcp", "config", "doctor", "update", "install", "setup-token",
                        "migrate-installer", "plugin"),
        batch_flags=("-p", "--print", "--help", "-h", "--version", "-v"),
        login_files=(".credentials.json",)),
    "gemini": AgentPreset(
        "gemini", ("generativelanguage.googleapis.com", "oauth2.googleapis.com",
                   "cloudcode-pa.googleapis.com"), "~/.gemini",
        ("settings.json",  # hooks, MCP servers, tools.allowed, telemetry, auth
         "trustedFolders.json",  # a trusted folder's own .gemini/settings.json is loaded
         # allow rules; hooks and MCP servers; commands that run `!{shell}`; skills' scripts;
         # subagents (their tools)
         "policies", "extensions", "commands", "skills", "agents"),
        credential_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"), config_env="GEMINI_CLI_HOME",
        config_subdir=".gemini",
        empty_locked=(".env",),  # variables Gemini loads (GOOGLE_GEMINI_BASE_URL...)
        batch_commands=("mcp", "extensions", "skills", "hooks", "update"),
        batch_flags=("-p", "--prompt", "--help", "-h", "--version", "-v"),
        login_files=("oauth_creds.json", "google_accounts.json", "gemini-credentials.json",
                     "mcp-oauth-tokens.json", "a2a-oauth-tokens.json", ".env"),
        hook_env_prefix="GEMINI_CLI_"),
}


def preset_for(argv0: str) -> AgentPreset:
    return PRESETS.get(Path(argv0).name, AgentPreset(Path(argv0).name))


def _hold_terminal_signals() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGQUIT)}


def _report_nested_config(before: Any, telemetry: Any) -> None:
    """What the run planted or changed below the workspace top (``sub/.codex``, ``sub/.envrc``):
    the sandbox locks these names only at the top, so each one is reported and journaled."""
    from corral.sandbox.audit import changes, snapshot
    from corral.telemetry.schema import ConfigChange

    for change in changes(before, snapshot(before.root)):
        print(change.line(), file=sys.stderr)
        telemetry.emit_event(ConfigChange(
            key="workspace.nested_agent_config", new_value=change.kind, trigger="agent",
            origin=change.path))


def _report_sandbox(sb: Any, result: Any, git_before: Any, telemetry: Any) -> None:
    """The sandbox's own warnings (weaker mode, a git repository created during the run...)
    and every way git could now find planted code (``corral.sandbox.gitguard``, which moves
    such a unit aside): each printed and journaled."""
    from corral.sandbox.gitguard import review
    from corral.telemetry.schema import ConfigChange

    warnings = list(result.warnings)
    if sb.weaker_mode is not None:
        where = sb.plan.allow_weaker_source
        warnings.insert(0, f"corral: sandbox: warning: running in weaker mode "
                        f"'{sb.weaker_mode}' (accepted by sandbox.allow_weaker"
                        f"{' in ' + where if where else ''})")
    for w in warnings:
        print(w, file=sys.stderr)
        telemetry.emit_event(ConfigChange(key="sandbox.warning", new_value=w,
                                          trigger="sandbox"))
    for f in review(git_before):
        print(f.line(), file=sys.stderr)
        what = f.kind + (f"; moved to {f.moved_to}" if f.moved_to else "")
        telemetry.emit_event(ConfigChange(
            key="workspace.git_indirection", new_value=what + (f"; runs {f.risk}" if f.risk
                                                              else ""),
            trigger="agent", origin=f.path))


def _lock_files(plan: Any, preset: AgentPreset, home: Path) -> Any:
    """Writable agent dir; the permission files in it read-only, existing or not (a missing one
    gets a read-only placeholder meaning "nothing configured", so it cannot be created)."""
    from corral.sandbox.locked import Locked, symlinked
    from corral.sandbox.profiles import Access, FsEntry
    from corral.supervisor.agent_scripts import referenced_files

    if preset.config_dir is None:
        return plan
    moved = _moved_config_dir(preset)
    cdir = moved or Path(os.path.abspath(os.path.expanduser(preset.config_dir)))
    extra: list[Any] = []
    locked: tuple[Locked, ...] = ()
    if cdir.is_dir():
        extra.append(FsEntry(cdir, Access.WRITE))
        locked = tuple(Locked.infer(cdir / f) for f in preset.locked_files)
        locked += tuple(Locked(cdir / f, b"") for f in preset.empty_locked)
        # and the programs those settings run from inside the directory (hook scripts...)
        locked += tuple(Locked(p, None if p.is_dir() else b"")
                        for p in referenced_files(
                            cdir, home, None if preset.config_subdir else preset.config_env))
    # In the home directory too when moved: a run without the variable would read it there.
    sdirs = [Path(os.path.abspath(home))] + ([cdir] if moved else [])
    locked += tuple(Locked.infer(d / f) for d in sdirs for f in preset.state_files)
    for link in symlinked(locked):
        print(f"corral: sandbox: warning: {link} is a symlink: its target is read-only in "
              "the sandbox, but the link itself can be replaced from inside (make it a "
              "regular file to lock it)", file=sys.stderr)
    # Not in the plan's writable *roots*; the launcher still carves protected names (.codex,
    # .git/hooks...) out of every writable entry, so their placeholders appear in the agent's
    # directory during a run and are removed after it like all others.
    return plan.replace(entries=plan.entries + tuple(extra), locked=plan.locked + locked)


def _own_login(plan: Any, preset: AgentPreset) -> Any:
    """Re-allow exactly this agent's login files (in the config dir it uses) from the credential
    catalogue: other agents' logins and every other credential stay hidden. Until corral holds
    the login itself (issue 18 item 4), the agent's commands can read this file too."""
    from corral.sandbox.credentials import reallow

    if preset.config_dir is None or not preset.login_files:
        return plan
    cdir = _moved_config_dir(preset) or Path(
        os.path.abspath(os.path.expanduser(preset.config_dir)))
    entries, locked = reallow(plan.entries, plan.locked, [cdir / f for f in preset.login_files])
    return plan.replace(entries=entries, locked=locked)


def _moved_env(preset: AgentPreset) -> Path | None:
    """What the user's ``config_env`` names (absolute), or None if it is not set."""
    moved = os.environ.get(preset.config_env or "")
    return Path(os.path.abspath(os.path.expanduser(moved))) if moved else None


def _moved_config_dir(preset: AgentPreset) -> Path | None:
    """The config dir the user's ``config_env`` moves (absolute), or None if it is not set."""
    from corral.paths import moved_config_dir

    return moved_config_dir(preset.config_env, preset.config_subdir)


def _config_env(preset: AgentPreset) -> dict[str, str]:
    """The agent inside sees the very directory that was locked: the variable passed on as that
    absolute path (the environment policy may drop it, and a relative one would resolve
    elsewhere, e.g. in the writable workspace)."""
    moved = _moved_env(preset)
    return {preset.config_env: str(moved)} if preset.config_env and moved else {}


class RunSession:
    """One agent run: a ``supervisor.Session`` (journal, pipeline, session API, managed proxy,
    the agent's integration) plus the sandboxed agent process."""

    def __init__(self, cfg: Any, argv: list[str], *, approval_policy: Any, reviewer: str,
                 profile: str | None, allow_domains: tuple[str, ...] = (),
                 deny_domains: tuple[str, ...] = (), terminal: Any = None,
                 keep_terminal: bool | None = None, intent: str | None = None,
                 integration: Integration | None = None) -> None:
        self.cfg = cfg
        self.argv = argv
        self.preset = preset_for(argv[0])
        self.approval_policy = approval_policy
        self.reviewer = reviewer
        self.profile = profile
        self.allow_domains = allow_domains
        self.deny_domains = deny_domains
        self.terminal = terminal
        # None: the agent keeps the terminal when it is interactive and there is one.
        self.keep_terminal = keep_terminal
        self.intent = intent  # the user's request, from corral's own command line (trusted)
        # codex / claude-code: their telemetry import (the caller plugs it in: the supervisor
        # does not import corral.integrations)
        self.integration = integration

    def _agent_has_terminal(self) -> bool:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            return False
        if self.keep_terminal is not None:
            return self.keep_terminal
        return self.preset.interactive(self.argv)

    def run(self) -> int:
        from corral.netproxy.local import for_agent as local_forwards  # allow_local on loopback
        from corral.sandbox import NetworkPlan, Sandbox, gitguard, plan_from_config
        from corral.sandbox.audit import snapshot
        from corral.supervisor.execboundary import open_boundary
        from corral.supervisor.session import Session

        cfg = self.cfg
        keep_terminal = self._agent_has_terminal()
        asker = self.terminal
        if keep_terminal:  # a full-screen agent owns the keyboard: corral must not prompt on it
            from corral.supervisor.pipeline import no_terminal

            asker = no_terminal
            print("corral: run: the agent has this terminal; answer corral's questions with "
                  "`corral approve` in another one", file=sys.stderr)
        sockets = _socket_parent(cfg)
        agent = self.integration.agent if self.integration is not None else self.preset.name
        session = Session.open(
            cfg, agent, approval_policy=self.approval_policy, asker=asker,
            sandbox_profile=self.profile, reviewer=self.reviewer, intent=self.intent,
            integration=self.integration, socket_dir=sockets, network="proxy",
            allow_domains=self.allow_domains, deny_domains=self.deny_domains,
            preset=(self.preset.name, self.preset.hosts), summary={"agent": agent},
            model_urls=_model_urls(self.argv, self.preset))
        # The agent shares the terminal's foreground process group, so Ctrl-C and Ctrl-\ reach
        # this process too: the agent decides what they mean, and the journal is closed properly
        # even when they come while it is being shut down. (A handler, not SIG_IGN: the agent
        # starts with the default disposition, which exec resets handlers to.)
        restore = _hold_terminal_signals() if keep_terminal else {}
        boundary = None
        try:
            proxied = session.network
            net = NetworkPlan(
                mode=proxied.mode, proxy_socket=proxied.proxy_socket,
                proxy_env=proxied.proxy_env, bridge_ports=proxied.bridge_ports,
                allow_domains=proxied.allow_domains, deny_domains=proxied.deny_domains,
                extra_bridges=session.bridges(SESSION_API_PORT, OTLP_PORT) + local_forwards(
                    session.proxy, session.rundir, self.argv, self.preset,
                    (HTTP_PORT, SOCKS_PORT, SESSION_API_PORT, OTLP_PORT)),
                ro_files=proxied.ro_files,
            )
            plan = plan_from_config(cfg, cfg.cwd, profile=self.profile, network="proxy",
                                    proxy=net)
            plan = _hide_sockets(_lock_files(_own_login(plan, self.preset), self.preset,
                                             Path.home()), sockets).replace(
                keep_terminal=keep_terminal)
            # the agent's key, unless the credential broker holds it (then the proxy
            # variables carry its placeholder under the same name)
            env = {**{k: os.environ[k] for k in self.preset.credential_env
                      if k in os.environ and k not in proxied.proxy_env},
                   **_config_env(self.preset),
                   **session.env_in_sandbox(SESSION_API_PORT, OTLP_PORT),
                   **session.telemetry.stamp_env(None)}
            if self.preset.hook_env_prefix:  # as corral.insandbox.hook_main reads them back
                env.update({self.preset.hook_env_prefix + k: v for k, v in env.items()
                            if k.startswith("CORRAL_SUPERVISOR_")})
                env[self.preset.hook_env_prefix + "CORRAL_SANDBOX"] = "1"
            extra = session.args_in_sandbox(OTLP_PORT)
            # only a known agent's launcher starts "its own" binary by name (Codex's native
            # codex); any other program's children are its tool calls (python3 agent.py)
            boundary = open_boundary(cfg, session, (self.preset.name,)
                                     if self.preset.name in PRESETS else ())
            if boundary is not None:
                plan = plan.replace(exec_socket=boundary.socket_path)
            # Codex takes ``-c`` globally: the integration's arguments go right after the program
            argv = [self.argv[0], *extra, *self.argv[1:]]
            before = snapshot(Path(cfg.cwd))
            git_before = gitguard.snapshot(Path(cfg.cwd))
            plan = plan.replace(locked=plan.locked + gitguard.locks(git_before))
            with Sandbox(plan) as sb:
                session.stop_agent = _stopper(sb)
                result = sb.run(argv, cfg.cwd, env)
            for v in result.violations:
                print(v.line(), file=sys.stderr)
            _report_sandbox(sb, result, git_before, session.telemetry)
            _report_nested_config(before, session.telemetry)
            return int(result.returncode)
        finally:
            if boundary is not None:
                boundary.close()
            session.close()
            for sig, handler in restore.items():
                signal.signal(sig, handler)


def _model_urls(argv: list[str], preset: AgentPreset) -> list[tuple[str, str]]:
    """The model URLs the agent is configured with (its arguments, config file, *_BASE_URL
    variables): the credential broker holds its key only if they are the key's hosts."""
    from corral.netproxy.local import agent_config_files, model_urls

    return model_urls(argv, os.environ, agent_config_files(
        preset.config_dir, preset.config_env, preset.config_subdir))


def _stopper(sb: Any) -> Any:
    """A function that ends the agent ``sb.run`` is about to start (SIGTERM to the sandbox's
    bwrap, which takes its whole process tree with it): the run's spawn is remembered."""
    spawned: list[Any] = []
    spawn = sb.spawn

    def remembering(*args: Any, **kwargs: Any) -> Any:
        proc = spawn(*args, **kwargs)
        spawned.append(proc)
        return proc

    sb.spawn = remembering

    def stop() -> None:
        for proc in spawned:
            if proc.poll() is None:
                proc.terminate()

    return stop


def _socket_parent(cfg: Any) -> Path:
    """Where the session's private socket directory goes: $CORRAL_HOME/state, or with a long
    CORRAL_HOME a private runtime directory (``corral.paths.socket_parent``), which
    :func:`_hide_sockets` keeps out of the sandbox's sight."""
    from corral.paths import socket_parent

    return socket_parent(Path(cfg.corral_home))


def _hide_sockets(plan: Any, parent: Path) -> Any:
    """Deny the socket parent inside the sandbox unless it is already hidden as part of
    $CORRAL_HOME: this session's and every other session's sockets stay out of sight (the
    agent reaches its own only through the bridges corral mounts in /dev/corral)."""
    from corral.sandbox.profiles import Access, FsEntry, is_under

    if is_under(parent, plan.corral_home):
        return plan
    return plan.replace(entries=(*plan.entries, FsEntry(parent, Access.DENY, enforced=True)))
