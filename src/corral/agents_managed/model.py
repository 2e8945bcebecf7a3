"""Plain data in, files out: what the agents' managed settings are generated from.

``Inputs`` is everything the renderers read, taken once from corral's effective configuration
(``inputs_from_config``): the composed requirements (``cfg.requirements.data``) and where they
came from, the corral server that collects telemetry, the content tier, where credentials go,
and, per agent, corral's hook table (built by the caller from ``corral.integrations.install``,
so this package never imports the session side).
"""

from __future__ import annotations

import copy
import itertools
import shlex
from dataclasses import dataclass, field
from typing import Any

from corral.config.model import get_path

AGENTS = ("codex", "claude-code", "gemini")
# corral's built-in permission profiles and the Codex sandbox mode each one is
BUILTIN_SANDBOX_MODES = {":read-only": "read-only", ":workspace": "workspace-write",
                         ":danger-full-access": "danger-full-access"}
MAX_EXPANSIONS = 256  # one rule's alternatives, multiplied out


class RenderError(Exception):
    """A requirement that cannot be carried into an agent's settings (one line: which, why)."""


@dataclass(frozen=True)
class Inputs:
    requirements: dict[str, Any]  # cfg.requirements.data: the composed admin constraints
    sources: tuple[str, ...] = ()  # the requirement sources, lowest first
    restrictive_reason: str | None = None  # set when the most restrictive settings are in force
    server_url: str | None = None  # the corral server (telemetry goes to {server_url}/v1/logs)
    tier: int = 1  # content tier: prompts and tool output only at 2
    credentials_store: str = "keyring"
    hooks: dict[str, dict[str, Any]] = field(default_factory=dict)  # agent -> its hooks table
    otel_headers_command: str | None = None  # prints {"Authorization": ...} (Claude Code)

    def req(self, dotted: str, default: Any = None) -> Any:
        return get_path(self.requirements, dotted, default)

    def login(self, agent: str, keys: dict[str, str]) -> dict[str, Any]:
        """``[login.<agent>]`` keys renamed as the agent spells them (a one-or-list value
        stays a string or becomes a list of strings)."""
        out: dict[str, Any] = {}
        for ours, theirs in keys.items():
            value = self.req(f"login.{agent}.{ours}")
            if value:
                out[theirs] = value if isinstance(value, str) else [str(v) for v in value]
        return out

    @property
    def managed_hooks_only(self) -> bool:
        """``allow_managed_hooks_only`` from requirements; when they do not say, true whenever
        corral's hook is one of the managed hooks (a user's own hook table cannot then run
        corral's hook a second time, or run around it)."""
        value = self.req("allow_managed_hooks_only")
        return bool(value) if value is not None else any(self.hooks.values())

    @property
    def export_to_server(self) -> bool:
        """``agents.telemetry = "server"`` (and a server to send to): the managed files send
        the agents' own OTel logs straight to the corral server. The default, ``sessions``,
        leaves them to corral's sessions, which import them into the journal (forwarded to the
        server): managed settings outrank what ``corral run`` gives an agent, so an export
        set here would take the agents' telemetry away from its session."""
        return self.req("agents.telemetry", "sessions") == "server" and bool(self.server_url)

    def forbidden_rules(self) -> list[dict[str, Any]]:
        return [r for r in self.prefix_rules() if r.get("decision") == "forbidden"]

    def prefix_rules(self) -> list[dict[str, Any]]:
        rules = self.req("rules.prefix_rules", [])
        return [{k: v for k, v in r.items() if not k.startswith("_")}
                for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []

    def allowed_sandbox_modes(self) -> list[str] | None:
        """The Codex sandbox modes for corral's allowed permission profiles (built-ins only:
        a profile of corral's own has no Codex counterpart, so it allows nothing there)."""
        profiles = self.req("allowed_permission_profiles")
        if profiles is None:
            return None
        names = [k for k, v in profiles.items() if v] if isinstance(profiles, dict) \
            else list(profiles)
        modes = [BUILTIN_SANDBOX_MODES[n] for n in names if n in BUILTIN_SANDBOX_MODES]
        if "read-only" not in modes:  # Codex always allows it; say so rather than imply not
            modes.insert(0, "read-only")
        return modes


def command_prefixes(pattern: list[Any]) -> list[str]:
    """The command line prefix for every combination of a prefix rule pattern's alternatives,
    each token shell-quoted (``shlex.quote``): the command as a shell would spell it, so
    ``shlex.split`` gives the pattern's tokens back. RenderError for an empty pattern or
    alternative list, or one that multiplies out to more than MAX_EXPANSIONS prefixes."""
    choices = [[str(t) for t in tok] if isinstance(tok, list) else [str(tok)] for tok in pattern]
    if not choices or any(not c for c in choices):
        raise RenderError(f"prefix rule pattern {pattern!r} is empty or has an empty "
                          "alternative list")
    count = 1
    for c in choices:
        count *= len(c)
    if count > MAX_EXPANSIONS:
        raise RenderError(f"prefix rule pattern {pattern!r} expands to {count} command "
                          f"prefixes (more than {MAX_EXPANSIONS}); split the rule")
    return [" ".join(shlex.quote(t) for t in combo) for combo in itertools.product(*choices)]


@dataclass(frozen=True)
class ManagedFile:
    agent: str
    path: str  # the production path, absolute (e.g. /etc/codex/requirements.toml)
    text: str


def inputs_from_config(cfg: Any, hooks: dict[str, dict[str, Any]] | None = None,
                       otel_headers_command: str | None = None) -> Inputs:
    """The inputs from an ``EffectiveConfig`` (requirements win over config for the tier and
    the server, as they do everywhere else)."""
    from corral.credentials import store_of
    from corral.forward.settings import configured_url

    req = cfg.requirements
    tier = req.get("telemetry.content_tier")
    if tier is None:
        tier = cfg.get("telemetry.content_tier", 1)
    return Inputs(
        requirements=copy.deepcopy(req.data), sources=tuple(req.sources),
        restrictive_reason=req.restrictive_reason, server_url=configured_url(cfg),
        tier=int(tier), credentials_store=store_of(cfg),
        hooks=dict(hooks or {}), otel_headers_command=otel_headers_command)
