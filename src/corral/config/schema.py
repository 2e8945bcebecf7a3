"""The schemas of config.toml and requirements.toml, and a validator with positions.

A small hand-written schema language (plain classes) rather than pydantic: it keeps ``corral`` cold start fast
and lets every error carry ``file:line:col`` and a did-you-mean for unknown keys.
"""

from __future__ import annotations

from collections.abc import Callable

APPROVAL_POLICIES = ("untrusted", "on-request", "on-failure", "never")
REVIEWERS = ("user", "auto_review")
BUILTIN_PROFILES = (":read-only", ":workspace", ":danger-full-access")
EXEC_BOUNDARY_MODES = ("off", "top", "all")
EXEC_BOUNDARY_UNAVAILABLE = ("refuse", "warn")


def _close_matches(word: str, options: Any, n: int = 1, cutoff: float = 0.6) -> list[str]:
    import difflib  # only when there is a typo to suggest a fix for

    return difflib.get_close_matches(word, options, n=n, cutoff=cutoff)


class Spec:
    name = "value"

    def check(self, value: Any, path: tuple[str, ...], report: Report) -> None:
        raise NotImplementedError


Report = Callable[[tuple[str, ...], str], None]


def _type_name(value: Any) -> str:
    return {
        bool: "boolean", int: "integer", float: "float", str: "string", list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)


class Str(Spec):
    name = "string"

    def check(self, value: Any, path: tuple[str, ...], report: Report) -> None:
        if not isinstance(value, str):
            report(path, f"expected a string, got {_type_name(value)}")


class Bool(Spec):
    name = "boolean"

    def check(self, value: Any, path: tuple[str, ...], report: Report) -> None:
        if not isinstance(value, bool):
            report(path, f"expected true or false, got {_type_name(value)}")


class Num(Spec):
    name = "number"

    def __init__(self, lo: float | None = None, hi: float | None = None,
                 integer: bool = True) -> None:
        self.lo, self.hi, self.integer = lo, hi, integer

    def check(self, value: Any, path: tuple[str, ...], report: Report) -> None:
        ok_types: tuple[type, ...] = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            kind = "an integer" if self.integer else "a number"
            report(path, f"expected {kind}, got {_type_name(value)}")
            return
        v = float(value)  # type: ignore[arg-type]  # an int or float, checked above
        if (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi):
            report(path, f"{value} is out of range [{self.lo}, {self.hi}]")


class Enum(Spec):
    def __init__(self, values: tuple[str, ...], why: str = "") -> None:
        self.values, self.why = values, why

    @property
    def name(self) -> str:  # type: ignore[override]
        return " | ".join(repr(v) for v in self.values)

    def check(self, value: Any, path: tuple[str, ...], report: Report) -> None:
        if not isinstance(value, str) or value not in self.values:
            allowed = ", ".join(f'"{v}"' for v in self.values)
            close = _close_matches(str(value), self.values, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            why = f"; {self.why}" if self.why else ""
            report(path, f"invalid value {value!r}: expected one of {allowed}{hint}{why}")


class List(Spec):
    name = "array"

    def __init__(self, item: Spec) -> None:
        self.item = item

    def check(self, value: Any, path: tuple[str, ...], report: Report) -> None:
        if not isinstance(value, list):
            report(path, f"expected an array, got {_type_name(value)}")
            return
        for i, v in enumerate(value):
            self.item.check(v, (*path, str(i)), report)


class Map(Spec):
    """A table with arbitrary keys (domains, paths, profile names) and values of one kind."""

    name = "table"

    def __init__(self, value: Spec) -> None:
        self.value = value

    def check(self, value: Any, path: tuple[str, ...], report: Report) -> None:
        if not isinstance(value, dict):
            report(path, f"expected a table, got {_type_name(value)}")
            return
        for k, v in value.items():
            self.value.check(v, (*path, k), report)


class OneOf(Spec):
    def __init__(self, options: tuple[Spec, ...]) -> None:
        self.options = options

    def check(self, value: Any, path: tuple[str, ...], report: Report) -> None:
        results: list[tuple[Spec, list[tuple[tuple[str, ...], str]]]] = []
        for opt in self.options:
            found: list[tuple[tuple[str, ...], str]] = []
            opt.check(value, path, lambda p, m, f=found: f.append((p, m)))  # type: ignore[misc]
            if not found:
                return
            results.append((opt, found))
        # Report the error of the option whose kind matches the value (a string for an enum, a
        # table for a table...), so the message is specific; else list what was expected.
        for opt, found in results:
            if _kind_matches(opt, value):
                p, m = found[0]
                report(p, m)
                return
        names = " or ".join(getattr(o, "name", "value") for o in self.options)
        report(path, f"expected {names}, got {_type_name(value)}")


def _kind_matches(spec: Spec, value: Any) -> bool:
    if isinstance(spec, Str | Enum):
        return isinstance(value, str)
    if isinstance(spec, Table | Map):
        return isinstance(value, dict)
    if isinstance(spec, List):
        return isinstance(value, list)
    return False


class Table(Spec):
    name = "table"

    def __init__(self, fields: dict[str, Spec] | None = None) -> None:
        self.fields = fields or {}

    def check(self, value: Any, path: tuple[str, ...], report: Report) -> None:
        if not isinstance(value, dict):
            report(path, f"expected a table, got {_type_name(value)}")
            return
        for k, v in value.items():
            spec = self.fields.get(k)
            if spec is None:
                close = _close_matches(k, list(self.fields), n=1, cutoff=0.6)
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                report((*path, k), f"unknown key `{'.'.join((*path, k))}`{hint}")
                continue
            spec.check(v, (*path, k), report)


# --- config.toml -------------------------------------------------------------------------------

EXPORTER = Table({
    "endpoint": Str(),
    "headers": Map(Str()),
    "timeout_seconds": Num(0, 600, integer=False),
    "protocol": Enum(("http/protobuf", "http/json", "grpc")),
    "tls": Table({"ca_file": Str(), "client_cert": Str(), "client_key": Str()}),
})

DOMAIN_DECISION = Enum(("allow", "deny", "limited"))
MCP_DECISION = Enum(("allow", "prompt", "forbidden"))

_permission_profile = Table({
    "extends": Str(),
    "filesystem": Map(Enum(("read", "write", "deny"))),
    "network": Table({"mode": Enum(("none", "proxy", "host")), "domains": Map(DOMAIN_DECISION)}),
    "description": Str(),
    "allow_credentials": List(Str()),  # credential catalogue ids re-allowed (docs/sandbox.md)
})

_CREDENTIAL_FILE = Table({"id": Str(), "path": Str(), "paths": List(Str()), "tool": Str(),
                          "reason": Str()})

# issue 18: the credential broker at the managed proxy (docs/network.md)
_BROKERED = Table({
    "kind": Enum(("api_key", "git", "npm", "pip")),
    "hosts": List(Str()),
    "source": Str(),  # env:NAME | keyring:SERVICE/USER
    "env": Str(),
    "username": Str(),
    "index_url": Str(),
})

_settings: dict[str, Spec] = {
    "approval_policy": OneOf((
        Enum(APPROVAL_POLICIES),
        Table({"granular": Table({
            k: Bool() for k in (
                "sandbox_approval", "rules", "mcp_elicitations", "request_permissions",
                "network", "escalation", "patch",
            )
        })}),
    )),
    "approvals_reviewer": Enum(REVIEWERS),
    "default_permissions": Str(),
    "permissions": Map(_permission_profile),
    "filesystem": Table({"deny_read": List(Str())}),
    "shell_environment_policy": Table({
        "inherit": Enum(("all", "core", "none")),
        "exclude": List(Str()),
        "include_only": List(Str()),
        "set": Map(Str()),
        "ignore_default_excludes": Bool(),
        "keep_secrets": List(Str()),  # names kept although their value looks like a secret
    }),
    "sandbox": Table({
        "network": Enum(("none", "proxy", "host")),
        "writable_roots": List(Str()),
        "exclude_tmpdir": Bool(),
        "exclude_slash_tmp": Bool(),
        "allow_weaker": List(Str()),
        # tasks (processes and threads) one sandboxed command may have; 0 = no cap
        "max_processes": Num(0, 4_194_304),
        "credential_files": List(_CREDENTIAL_FILE),  # more for the credential catalogue
    }),
    "network": Table({
        "domains": Map(DOMAIN_DECISION),
        "allow_local": List(Str()),
        "allow_udp": Bool(),
        "ask_timeout_seconds": Num(0, 3600, integer=False),
        "idle_timeout_seconds": Num(0, 86400, integer=False),
    }),
    "telemetry": Table({
        "content_tier": Num(0, 2),
        "checkpoint_every": Num(1, 1_000_000),
        "exporter": EXPORTER,
        # per session and channel: what the agent's reports and OTLP imports may add
        "import_max_records": Num(0, 10_000_000),
        "import_max_bytes": Num(0, 1 << 40),
    }),
    "review": Table({
        "model": Str(),
        "base_url": Str(),
        "api_key_env": Str(),
        "timeout_seconds": Num(0, 3600, integer=False),
        "max_consecutive_denials": Num(1, 1000),
        "on_failure": Enum(("deny", "ask_user")),
    }),
    # issue 14: AI security triage (docs/triage.md)
    "triage": Table({
        "model": Str(),
        "base_url": Str(),
        "api_key_env": Str(),
        "timeout_seconds": Num(0, 3600, integer=False),
        "min_confidence": Num(0, 1, integer=False),
        "window_seconds": Num(1, 86_400 * 7, integer=False),
        "history_events": Num(0, 10_000_000),
    }),
    # corral run: an agent whose hooks never call in (not installed, or not trusted)
    "integrations": Table({"hooks_missing": Enum(("warn", "stop"))}),
    "login": Table({
        "method": Str(),
        "workspace_id": Str(),
        "credentials_store": Enum(("keyring", "file", "auto", "ephemeral")),
    }),
    "project_root_markers": List(Str()),
    # corral run: decide the programs the agent starts at the exec boundary (docs/rules.md)
    "rules": Table({
        "exec_boundary": Enum(EXEC_BOUNDARY_MODES),
        "exec_boundary_unavailable": Enum(EXEC_BOUNDARY_UNAVAILABLE),
    }),
    # issue 17: the MCP gateway (`corral mcp proxy NAME`, docs/mcp.md)
    "mcp": Table({"servers": Map(Table({
        "default": MCP_DECISION,
        "tools": Map(MCP_DECISION),  # tool name pattern (fnmatch) -> decision
        "resources": Map(MCP_DECISION),  # resources/read: URI pattern -> decision
        "prompts": Map(MCP_DECISION),  # prompts/get: prompt name pattern -> decision
        "profile": Str(),  # permission profile a stdio server runs under
        "timeout_seconds": Num(0, 86_400, integer=False),  # per request; 0: no limit
        "max_message_bytes": Num(1024, 1 << 30),
    }))}),
    "approvals": Table({
        # How long a question waits for `corral approve` when no terminal is attached
        # (0: do not queue; the action is refused as "nobody could be asked").
        "queue_timeout_seconds": Num(0, 86_400, integer=False),
    }),
}

PROFILE_SCHEMA = Table(dict(_settings))

CONFIG_SCHEMA = Table({
    **_settings,
    "profile": Str(),
    "profiles": Map(PROFILE_SCHEMA),
    "projects": Map(Table({"trust_level": Enum(("trusted", "untrusted"))})),
    # corral server (issue 12): where the journal is forwarded, where login keeps the token
    "server": Table({"url": Str(), "ca_file": Str()}),
    "credentials": Table({"store": Enum(("keyring", "file", "auto"))}),
    "secrets": Table({"broker": Table({
        "enabled": Bool(),
        "upstream_ca_file": Str(),
        "credentials": Map(_BROKERED),
    })}),
    # corral stats / dashboard (issue 15): team -> users, or the event attribute naming a team
    "analytics": Table({
        "teams": Map(List(Str())),
        "team_attribute": Str(),
        "suggest_min_count": Num(1, 1_000_000),
    }),
    "managed": Table({
        "requirements_bundle_url": Str(),
        "requirements_bundle_public_key": Str(),
        "requirements_bundle_ca_file": Str(),
        "requirements_bundle_refresh_seconds": Num(0, 86_400 * 30),
    }),
})

# Keys a project's .corral/config.toml may never set: where data goes, who answers, who you are,
# and which projects are trusted. Matched by prefix.
PROJECT_FORBIDDEN = (
    ("telemetry", "exporter"),
    ("review", "base_url"),
    ("review", "api_key_env"),
    ("review", "model"),
    ("triage", "base_url"),
    ("triage", "api_key_env"),
    ("triage", "model"),
    ("login",),
    ("projects",),
    ("profiles",),
    ("profile",),
    ("managed",),
    ("server",),
    ("credentials",),
    ("secrets",),  # where a secret may be sent is the user's and the admin's to say
    ("analytics",),  # a repository may not move its users into another team
)

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from typing import Any

# --- requirements.toml -------------------------------------------------------------------------

REQUIREMENTS_SCHEMA = Table({
    "allowed_approval_policies": List(Enum(APPROVAL_POLICIES)),
    "allowed_permission_profiles": OneOf((List(Str()), Map(Bool()))),
    "allowed_approvals_reviewers": List(Enum(REVIEWERS)),
    "default_permissions": Str(),
    "network": Table({
        "managed_domains_only": Bool(),
        "domains": Map(DOMAIN_DECISION),
        "allow_local": List(Str()),
    }),
    "login": Table({
        "forced_method": Str(),
        "forced_workspace_id": OneOf((Str(), List(Str()))),
        # the ID-token claim that names the organisation or workspace (docs/fleet.md)
        "workspace_claim": Str(),
        # the agents' own sign-in, carried into their managed settings (docs/managed-agents.md)
        "codex": Table({
            "forced_login_method": Enum(("chatgpt", "api")),
            "forced_chatgpt_workspace_id": OneOf((Str(), List(Str()))),
        }),
        "claude_code": Table({
            "force_login_method": Enum(("claudeai", "console")),
            "force_login_org_uuid": OneOf((Str(), List(Str()))),
        }),
        "gemini": Table({"enforced_auth_type": Str()}),
    }),
    "rules": Table({
        "prefix_rules": List(Table({
            "pattern": List(OneOf((Str(), List(Str())))),
            "decision": Enum(
                ("prompt", "forbidden"),
                why="requirements may only tighten: `allow` is not permitted here",
            ),
            "justification": Str(),
        })),
        # the exec boundary: the modes a user may choose, and what happens where it is missing
        "allowed_exec_boundary": List(Enum(EXEC_BOUNDARY_MODES)),
        "allowed_exec_boundary_unavailable": List(Enum(EXEC_BOUNDARY_UNAVAILABLE)),
    }),
    "filesystem": Table({"deny_read": List(Str())}),
    # credential files hidden everywhere; no profile can re-allow them
    "sandbox": Table({"credential_files": List(_CREDENTIAL_FILE)}),
    "allow_managed_hooks_only": Bool(),
    "review": Table({"policy": Str()}),  # the admin's policy text for the LLM reviewer
    "telemetry": Table({
        "content_tier": Num(0, 2),
        "exporter": EXPORTER,
    }),
    # the agent's key stays outside the sandbox (docs/network.md, the credential broker)
    "secrets": Table({"broker": Table({"required": Bool()})}),
    "server": Table({"url": Str(), "ca_file": Str()}),  # forwarding every machine's journal is not optional
    "mcp": Table({"allowed_servers": List(Str())}),  # MCP servers the gateway may start
    # the agents' managed settings (`corral agents apply`, docs/managed-agents.md): whether
    # they send their own OTel logs straight to the corral server, above corral's sessions
    "agents": Table({"telemetry": Enum(("sessions", "server"))}),
})


def validate(data: dict[str, Any], schema: Spec) -> list[tuple[tuple[str, ...], str]]:
    """All schema problems in ``data`` as (key path, message) pairs."""
    problems: list[tuple[tuple[str, ...], str]] = []
    schema.check(data, (), lambda p, m: problems.append((p, m)))
    return problems
