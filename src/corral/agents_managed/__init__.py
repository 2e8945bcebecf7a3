"""The agents' own administrator settings, generated from corral's effective requirements
(``corral agents apply`` / ``corral agents check``; docs/managed-agents.md).

Public surface: ``inputs_from_config(cfg, hooks, otel_headers_command) -> Inputs`` (plain data),
``render(inputs, agents) -> [ManagedFile]`` (pure), ``plan(root, files) -> [Change]`` (unified
diffs), ``apply(root, changes, sources)`` (root-owned 0644 atomic writes and the manifest),
``check(root, files) -> [Drift]``. Codex: ``/etc/codex/requirements.toml`` and
``managed_config.toml``; Claude Code: ``/etc/claude-code/managed-settings.json``; Gemini CLI:
``/etc/gemini-cli/settings.json`` and the admin policy ``/etc/gemini-cli/policies/corral.toml``.
"""

from __future__ import annotations

from corral.agents_managed import claude, codex, gemini
from corral.agents_managed.files import Change, Drift, NeedsRoot, apply, check, plan
from corral.agents_managed.model import AGENTS, Inputs, ManagedFile, RenderError, inputs_from_config

_RENDERERS = {"codex": codex.render, "claude-code": claude.render, "gemini": gemini.render}


def render(inputs: Inputs, agents: tuple[str, ...] = AGENTS) -> list[ManagedFile]:
    """Every managed file of ``agents``, in a fixed order. RenderError names a requirement
    that cannot be carried over."""
    out: list[ManagedFile] = []
    for agent in agents:
        out += _RENDERERS[agent](inputs)
    return out


__all__ = ["AGENTS", "Change", "Drift", "Inputs", "ManagedFile", "NeedsRoot", "RenderError",
           "apply", "check", "inputs_from_config", "plan", "render"]
