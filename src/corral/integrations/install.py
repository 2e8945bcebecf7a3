"""``install_hooks``: put corral's hook entries into an agent's configuration, or take them out.

Idempotent and conservative: the user's other settings and hooks stay exactly as they were; our
entries are recognised by their command (it runs ``corral.integrations.hook_main``), replaced on
re-install and removed by ``remove=True``. A file we cannot parse is never overwritten.

* Codex: ``hooks.json`` (``{"hooks": {...}}``) in ``$CODEX_HOME`` (default ``~/.codex``) or
  ``<project>/.codex``; when that layer already has an inline ``[hooks]`` table in
  ``config.toml`` we merge there instead (Codex warns when one layer uses both).
* Claude Code: ``settings.json`` in ``~/.claude`` or ``<project>/.claude``.
* Gemini CLI: ``settings.json`` in ``~/.gemini`` (``$GEMINI_CLI_HOME/.gemini`` when set) or
  ``<project>/.gemini``; its hook timeouts are in milliseconds, and each entry is named
  ``corral`` (Gemini's ``/hooks`` panel shows the name).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from corral.errors import CorralError
from corral.paths import AGENT_CONFIG_DIRS, agent_user_dir

MARKER = "corral.integrations.hook_main"
HOOK_TIMEOUT_S = 600
# Events we register, per agent. Tool events match every tool ("*").
EVENTS: dict[str, tuple[str, ...]] = {
    "codex": ("SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest",
              "PostToolUse", "Stop"),
    "claude-code": ("SessionStart", "UserPromptSubmit", "PreToolUse", "PermissionRequest",
                    "PostToolUse", "SessionEnd"),
    # Not BeforeModel/AfterModel (AfterModel fires per streamed chunk): prompts, tools, lifecycle
    "gemini": ("SessionStart", "BeforeAgent", "BeforeTool", "AfterTool", "SessionEnd"),
}
_TOOL_EVENTS = ("PreToolUse", "PermissionRequest", "PostToolUse", "BeforeTool", "AfterTool")
SCOPES = ("user", "project")


def hook_command(agent: str, python: str | None = None) -> str:
    """The command line the agent runs for each hook call. ``-I`` (isolated) matters: the agent
    runs hooks in the workspace, and without it ``-m`` puts the workspace first on sys.path,
    so a repository's own ``json.py`` would run inside corral's hook."""
    return f"{shlex.quote(python or sys.executable)} -I -m {MARKER} {agent}"


def config_dir(agent: str, scope: str, project_root: Path | None = None,
               home: Path | None = None) -> Path:
    if agent not in EVENTS:
        raise CorralError("integrations", f"unknown agent {agent!r}",
                          hint=f"use one of {', '.join(EVENTS)}")
    if scope not in SCOPES:
        raise CorralError("integrations", f"unknown scope {scope!r}", hint="user or project")
    if scope == "project":
        return (project_root or Path.cwd()) / AGENT_CONFIG_DIRS[agent]
    return agent_user_dir(agent, home)


def _ours(handler: Any) -> bool:
    return isinstance(handler, dict) and MARKER in str(handler.get("command", ""))


def merge_hooks(hooks: dict[str, Any], agent: str, command: str | None,
                ) -> dict[str, Any]:
    """``hooks`` (the ``{"<Event>": [groups]}`` table) without our handlers, plus ours when
    ``command`` is given. Other handlers, groups and events are kept in order."""
    out: dict[str, Any] = {}
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            out[event] = groups
            continue
        kept: list[Any] = []
        for group in groups:
            if isinstance(group, dict) and isinstance(group.get("hooks"), list):
                handlers = [h for h in group["hooks"] if not _ours(h)]
                if not handlers and len(handlers) != len(group["hooks"]):
                    continue  # the group held only our handler
                group = {**group, "hooks": handlers}
            kept.append(group)
        if kept:
            out[event] = kept
    if command is not None:
        for event in EVENTS[agent]:
            ours: dict[str, Any] = {}
            if event in _TOOL_EVENTS:
                ours["matcher"] = "*"
            handler: dict[str, Any] = {"type": "command", "command": command,
                                       "timeout": HOOK_TIMEOUT_S}
            if agent == "gemini":  # milliseconds there
                handler = {"name": "corral", **handler, "timeout": HOOK_TIMEOUT_S * 1000}
            ours["hooks"] = [handler]
            out.setdefault(event, []).append(ours)
    return out


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorralError("integrations", f"{path} is not valid JSON ({exc}); not touching it",
                          hint="fix or move the file, then run install-hooks again") from exc
    if not isinstance(data, dict):
        raise CorralError("integrations", f"{path} is not a JSON object; not touching it")
    hooks = data.get("hooks", {})
    if not isinstance(hooks, dict):
        raise CorralError("integrations", f"{path}: \"hooks\" is not an object; not touching it")
    return data


def _apply_json(path: Path, agent: str, command: str | None) -> bool:
    data = _load_json(path)
    hooks = merge_hooks(data.get("hooks") or {}, agent, command)
    new = dict(data)
    if hooks:
        new["hooks"] = hooks
    else:
        new.pop("hooks", None)
    if new == data and path.exists():
        return False
    if not new and not path.exists():
        return False
    write_atomic(path, json.dumps(new, indent=2, ensure_ascii=False) + "\n")
    return True


def _apply_toml(path: Path, agent: str, command: str | None) -> bool:
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    except (TOMLKitError, UnicodeDecodeError) as exc:
        raise CorralError("integrations", f"{path} is not valid TOML ({exc}); not touching it"
                          ) from exc
    current: Any = doc.get("hooks")
    before: dict[str, Any] = current.unwrap() if hasattr(current, "unwrap") else {}
    plain = dict(before)
    state = plain.pop("state", None)  # Codex's per-hook trust records live under [hooks.state]
    hooks = merge_hooks(plain, agent, command)
    if state is not None:
        hooks["state"] = state
    if hooks == before:
        return False
    if hooks:
        doc["hooks"] = hooks
    else:
        del doc["hooks"]
    write_atomic(path, tomlkit.dumps(doc))
    return True


def _codex_uses_toml(cfg_dir: Path) -> bool:
    """Does this Codex layer keep its hooks inline in config.toml (and not in hooks.json)?"""
    toml_path = cfg_dir / "config.toml"
    if (cfg_dir / "hooks.json").exists() or not toml_path.exists():
        return False
    import tomllib

    try:
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    hooks = data.get("hooks")
    return isinstance(hooks, dict) and any(k != "state" for k in hooks)


def install_hooks(agent: str, scope: str = "user", remove: bool = False, *,
                  project_root: Path | None = None, home: Path | None = None,
                  python: str | None = None) -> tuple[Path, bool]:
    """Install (or with ``remove`` take out) corral's hooks for ``agent`` in ``scope``.

    Returns the file written and whether it changed. Running it twice changes nothing."""
    cfg_dir = config_dir(agent, scope, project_root, home)
    command = None if remove else hook_command(agent, python)
    if agent == "codex":
        if _codex_uses_toml(cfg_dir):
            path = cfg_dir / "config.toml"
            return path, _apply_toml(path, agent, command)
        path = cfg_dir / "hooks.json"
    else:
        path = cfg_dir / "settings.json"
    return path, _apply_json(path, agent, command)
