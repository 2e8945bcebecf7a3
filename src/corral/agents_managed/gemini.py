"""Gemini CLI's administrator files: the system settings ``/etc/gemini-cli/settings.json`` (or
where ``GEMINI_CLI_SYSTEM_SETTINGS_PATH`` names, which Gemini CLI 0.61 reads instead) and the
admin policy ``/etc/gemini-cli/policies/corral.toml``.

System settings override the user's and the workspace's. Gemini CLI loads the file only when
it and every parent directory are root-owned and not writable by others, which is how
``corral agents apply`` writes it. Carried over: corral's hooks (``hooksConfig.enabled``),
the forced auth type (``security.auth.enforcedType`` from ``[login.gemini]``),
``security.disableYoloMode`` when requirements do not allow ``never``, and, with
``agents.telemetry = "server"``, the OTel export to the corral server (``telemetry``; the
ingest token comes from ``OTEL_EXPORTER_OTLP_HEADERS`` in the user's environment, never this
world-readable file).

The policy file carries corral's ``forbidden`` prefix rules into Gemini CLI's policy engine:
one ``[[rule]]`` per combination of a pattern's alternatives, ``toolName =
"run_shell_command"``, ``commandPrefix`` the command as a shell spells it (tokens shell-quoted,
as for Claude Code), ``decision = "deny"``, ``priority = 999``, no ``modes`` (so every mode,
yolo too) and a ``denyMessage`` in corral's words. Gemini CLI 0.61 loads every ``*.toml`` in
``/etc/gemini-cli/policies`` (``Storage.getSystemPoliciesDir()``: a fixed path, no variable
moves it) into its Admin tier (final priority 5 + 999/1000), above every User (4.x),
Workspace, extension and settings rule, and only when the directory is root-owned and not
writable by group or others. A ``.toml`` there also makes it ignore ``--admin-policy``. The
file is written even with no forbidden rules (comments only), so removing the last rule
rewrites it. Gemini matches a rule against the whole command, each part of a compound command
(``a && b``) and what a ``bash -c`` wrapper runs; corral's hook still decides every command
with corral's full analysis.
"""

from __future__ import annotations

import json
import os
from typing import Any

from corral.agents_managed.codex import header
from corral.agents_managed.model import Inputs, ManagedFile, command_prefixes

DEFAULT_PATH = "/etc/gemini-cli/settings.json"
PATH_ENV = "GEMINI_CLI_SYSTEM_SETTINGS_PATH"
POLICY_PATH = "/etc/gemini-cli/policies/corral.toml"
POLICY_PRIORITY = 999  # the highest a policy file may give; the Admin tier adds 5


def path() -> str:
    override = os.environ.get(PATH_ENV, "")
    return override if override.startswith("/") else DEFAULT_PATH


def settings(inputs: Inputs) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    hooks = inputs.hooks.get("gemini")
    if hooks:
        doc["hooksConfig"] = {"enabled": True}
        doc["hooks"] = hooks
    security: dict[str, Any] = {}
    auth = inputs.login("gemini", {"enforced_auth_type": "enforcedType"})
    if auth:
        security["auth"] = auth
    allowed = inputs.req("allowed_approval_policies")
    if allowed is not None and "never" not in allowed:
        security["disableYoloMode"] = True
    if security:
        doc["security"] = security
    if inputs.export_to_server:
        doc["telemetry"] = {"enabled": True, "target": "local", "otlpProtocol": "http",
                            "otlpEndpoint": inputs.server_url, "useCollector": False,
                            "logPrompts": inputs.tier >= 2}
    return doc


def deny_rules(inputs: Inputs) -> list[dict[str, Any]]:
    """The policy engine's ``[[rule]]`` tables for corral's forbidden prefix rules (a prefix
    two rules share is written once, with the first rule's justification)."""
    out: dict[str, dict[str, Any]] = {}
    for rule in inputs.forbidden_rules():
        why = " ".join(str(rule.get("justification") or "forbidden by the administrator").split())
        for prefix in command_prefixes(list(rule.get("pattern", []))):
            out.setdefault(prefix, {
                "toolName": "run_shell_command", "commandPrefix": prefix, "decision": "deny",
                "priority": POLICY_PRIORITY,
                "denyMessage": f"corral: rules: `{prefix}` is forbidden by policy "
                               f"({POLICY_PATH}): {why}"})
    return list(out.values())


def policy_text(inputs: Inputs) -> str:
    import tomlkit

    rules = deny_rules(inputs)
    head = header(inputs) + ("" if rules else "# No forbidden prefix rules.\n")
    return head + ("\n" + tomlkit.dumps({"rule": rules}) if rules else "")


def render(inputs: Inputs) -> list[ManagedFile]:
    text = json.dumps(settings(inputs), indent=2, ensure_ascii=False) + "\n"
    return [ManagedFile("gemini", path(), text),
            ManagedFile("gemini", POLICY_PATH, policy_text(inputs))]
