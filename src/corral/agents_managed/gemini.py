"""Gemini CLI's system settings file: ``/etc/gemini-cli/settings.json`` (or where
``GEMINI_CLI_SYSTEM_SETTINGS_PATH`` names, which Gemini CLI 0.61 reads instead).

System settings override the user's and the workspace's. Gemini CLI loads the file only when
it and every parent directory are root-owned and not writable by others, which is how
``corral agents apply`` writes it. Carried over: corral's hooks (``hooksConfig.enabled``),
the forced auth type (``security.auth.enforcedType`` from ``[login.gemini]``),
``security.disableYoloMode`` when requirements do not allow ``never``, and, with
``agents.telemetry = "server"``, the OTel export to the corral server (``telemetry``; the
ingest token comes from ``OTEL_EXPORTER_OTLP_HEADERS`` in the user's environment, never this
world-readable file). corral's prefix rules reach Gemini
CLI through corral's hook, not through this file.
"""

from __future__ import annotations

import json
import os
from typing import Any

from corral.agents_managed.model import Inputs, ManagedFile

DEFAULT_PATH = "/etc/gemini-cli/settings.json"
PATH_ENV = "GEMINI_CLI_SYSTEM_SETTINGS_PATH"


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


def render(inputs: Inputs) -> list[ManagedFile]:
    text = json.dumps(settings(inputs), indent=2, ensure_ascii=False) + "\n"
    return [ManagedFile("gemini", path(), text)]
