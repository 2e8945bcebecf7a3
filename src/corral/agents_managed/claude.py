"""Claude Code's administrator file: ``/etc/claude-code/managed-settings.json``.

* ``forceLoginMethod`` / ``forceLoginOrgUUID`` from ``[login.claude_code]``;
* ``permissions.deny``: each of corral's ``forbidden`` prefix rules as ``Bash(<prefix>:*)``
  (one rule per combination of a pattern's alternatives), each deny-read glob as ``Read(...)``;
  ``permissions.disableBypassPermissionsMode`` when requirements do not allow ``never``;
* corral's hook as a managed hook, with ``allowManagedHooksOnly``;
* with ``agents.telemetry = "server"``: ``env`` for the OTel export to the corral server, and
  ``otelHeadersHelper``, a command that prints the ingest token's header as JSON, so the token
  is never written in this file (managed ``env`` outranks the environment ``corral run`` gives
  Claude Code, hence not by default).

A ``Bash(...:*)`` rule's content is a literal prefix of the command line (Claude Code reads a
``*`` before ``:*`` literally); ``\\``, ``(`` and ``)`` are escaped the way Claude Code escapes
them. Tokens are shell-quoted (``shlex.quote``): the prefix is the command as a shell would
spell it, so quoting it back (``shlex.split``) gives the pattern's tokens again.
"""

from __future__ import annotations

import json
from typing import Any

from corral.agents_managed.model import Inputs, ManagedFile, command_prefixes

PATH = "/etc/claude-code/managed-settings.json"


def escape(content: str) -> str:
    return content.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def unescape(content: str) -> str:
    out, i = [], 0
    while i < len(content):
        if content[i] == "\\" and i + 1 < len(content) and content[i + 1] in "\\()":
            out.append(content[i + 1])
            i += 2
        else:
            out.append(content[i])
            i += 1
    return "".join(out)


def bash_rules(pattern: list[Any]) -> list[str]:
    """``Bash(<prefix>:*)`` for every combination of the pattern's alternatives."""
    return [f"Bash({escape(prefix)}:*)" for prefix in command_prefixes(pattern)]


def read_rule(glob: str) -> str:
    """A deny-read glob as Claude Code's ``Read`` rule (``//`` marks an absolute path)."""
    path = "/" + glob if glob.startswith("/") else glob
    return f"Read({escape(path)})"


def settings(inputs: Inputs) -> dict[str, Any]:
    doc: dict[str, Any] = inputs.login("claude_code", {
        "force_login_method": "forceLoginMethod", "force_login_org_uuid": "forceLoginOrgUUID"})
    deny: list[str] = []
    for rule in inputs.forbidden_rules():
        for r in bash_rules(list(rule.get("pattern", []))):
            if r not in deny:
                deny.append(r)
    deny += [read_rule(str(g)) for g in inputs.req("filesystem.deny_read") or []]
    perms: dict[str, Any] = {}
    if deny:
        perms["deny"] = deny
    allowed = inputs.req("allowed_approval_policies")
    if allowed is not None and "never" not in allowed:
        perms["disableBypassPermissionsMode"] = "disable"
    if perms:
        doc["permissions"] = perms
    hooks = inputs.hooks.get("claude-code")
    if hooks:
        doc["hooks"] = hooks
    if hooks or inputs.req("allow_managed_hooks_only") is not None:
        doc["allowManagedHooksOnly"] = inputs.managed_hooks_only
    if inputs.export_to_server:
        assert inputs.server_url is not None
        from corral.integrations.otel_map import env_for_agent

        doc["env"] = env_for_agent("claude-code", inputs.server_url, tier=inputs.tier)
        if inputs.otel_headers_command:
            doc["otelHeadersHelper"] = inputs.otel_headers_command
    return doc


def render(inputs: Inputs) -> list[ManagedFile]:
    text = json.dumps(settings(inputs), indent=2, ensure_ascii=False) + "\n"
    return [ManagedFile("claude-code", PATH, text)]
