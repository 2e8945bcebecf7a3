"""What the configuration says about one MCP tool call (plain data in, decision out).

``[mcp.servers.NAME]`` in config.toml::

    default = "prompt"                                   # tools no pattern names
    tools = { "read_*" = "allow", "delete_*" = "forbidden" }

Patterns are shell-style (``fnmatch``, case-sensitive) over the tool's name. When several
match, the strictest wins (forbidden > prompt > allow), as for command rules. A server with no
table, or a tool no pattern names on a server with no ``default``, is ``allow`` with the source
``default``: the approval policy still decides whether to ask (``untrusted`` asks before every
MCP call).

``resources`` and ``prompts`` tables decide ``resources/read`` (by URI) and ``prompts/get`` (by
prompt name) the same way, but only where a pattern matches: with no match the request passes
undecided (it is still recorded), since reading a resource or a prompt runs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from corral.types import RuleDecision

DECISIONS = ("allow", "prompt", "forbidden")
# the MCP method -> the table of [mcp.servers.NAME] that decides it
TABLES = {"tools/call": "tools", "resources/read": "resources", "prompts/get": "prompts"}


@dataclass(frozen=True)
class McpRuling:
    decision: RuleDecision
    source: str | None  # "mcp.servers.NAME.tools.PATTERN", "mcp.servers.NAME.default" or None
    reason: str


def server_table(cfg: Any, server: str) -> dict[str, Any]:
    """``[mcp.servers.NAME]`` (an empty table when not configured)."""
    servers = cfg.get("mcp.servers") or {}
    table = servers.get(server) if isinstance(servers, dict) else None
    return table if isinstance(table, dict) else {}


def mcp_ruling(cfg: Any, server: str, tool: str, method: str = "tools/call") -> McpRuling | None:
    """The configured decision for ``tool`` on ``server`` (for ``resources/read`` the URI, for
    ``prompts/get`` the prompt's name). None: a resource or prompt no pattern names (undecided;
    a tool always has a ruling)."""
    table = server_table(cfg, server)
    base = f"mcp.servers.{server}"
    key = TABLES[method]
    patterns = table.get(key) or {}
    matched = [(pattern, RuleDecision(str(d))) for pattern, d in patterns.items()
               if str(d) in DECISIONS and fnmatchcase(tool, pattern)]
    if matched:
        pattern, decision = max(matched, key=lambda m: m[1].severity)
        what = {"tools": "tool", "resources": "resource", "prompts": "prompt"}[key]
        return McpRuling(decision, f"{base}.{key}.{pattern}",
                         f'{what} {tool!r} matches "{pattern}" = "{decision.value}"')
    if key != "tools":
        return None
    default = table.get("default")
    if isinstance(default, str) and default in DECISIONS:
        return McpRuling(RuleDecision(default), f"{base}.default",
                         f'{base}.default = "{default}"')
    return McpRuling(RuleDecision.ALLOW, None, f"no [{base}] rule names this tool")


def server_refusal(cfg: Any, server: str) -> str | None:
    """Why ``server`` may not start under the requirements' ``mcp.allowed_servers`` (None: it
    may). An unset list allows every server; an empty one allows none."""
    allowed = cfg.requirements.get("mcp.allowed_servers")
    if allowed is None:
        return None
    if isinstance(allowed, list) and server in allowed:
        return None
    where = cfg.requirements.source_of("mcp.allowed_servers")
    names = ", ".join(str(a) for a in allowed) if isinstance(allowed, list) and allowed \
        else "none"
    return (f"MCP server {server!r} is not in mcp.allowed_servers ({where}; allowed: "
            f"{names}): it does not start")
