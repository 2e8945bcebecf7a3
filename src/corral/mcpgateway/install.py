"""``corral install-mcp codex|claude-code|gemini [--user|--project] [--remove]``: rewrite an agent's
MCP server entries so each goes through ``corral mcp proxy NAME``.

Where each agent keeps them:

* Codex: ``[mcp_servers.NAME]`` in ``$CODEX_HOME/config.toml`` (default ``~/.codex``) or
  ``<project>/.codex/config.toml``; ``command``/``args`` (stdio) or ``url`` (streamable HTTP).
* Claude Code: ``mcpServers`` in ``~/.claude.json`` (user) or ``<project>/.mcp.json``;
  ``type`` ``stdio`` (``command``/``args``) or ``http`` (``url``).
* Gemini CLI: ``mcpServers`` in ``~/.gemini/settings.json`` or
  ``<project>/.gemini/settings.json``; ``command``/``args`` or ``httpUrl`` (streamable HTTP).

Each entry keeps its other settings (``env``, ``cwd``, timeouts); its ``env`` names are passed on
to the sandboxed server (``--pass-env``). Entries the gateway cannot carry (SSE servers, HTTP
servers with their own headers or tokens) are left as they are and named. It is idempotent, and
``--remove`` restores the file exactly as it was when nothing else changed it since (else the
original entries, other changes kept). The originals live in
``$CORRAL_HOME/mcp/install/``. Run it on the host: inside ``corral run`` these files are
read-only by design.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.errors import CorralError

AGENTS = ("codex", "claude-code", "gemini")
# What the gateway needs from `corral run` to ask its supervisor. Codex starts MCP servers with
# a short list of variables (HOME, PATH, ...) plus the entry's own: its entries name these in
# ``env_vars`` so a gateway inside the sandbox knows where it is and whom to ask.
SESSION_VARS = ("CORRAL_SANDBOX", "CORRAL_SUPERVISOR_SOCKET", "CORRAL_SUPERVISOR_TOKEN")


@dataclass
class Result:
    path: Path
    wrapped: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)

    @property
    def changed(self) -> bool:
        return bool(self.wrapped or self.restored)


def config_path(agent: str, scope: str, project_root: Path | None = None) -> Path:
    if agent not in AGENTS:
        raise CorralError("mcp", f"unknown agent {agent!r}", "codex, claude-code or gemini")
    root = (project_root or Path.cwd()).resolve()
    home = Path.home()
    if agent == "codex":
        base = root / ".codex" if scope == "project" else Path(
            os.environ.get("CODEX_HOME") or home / ".codex")
        return base / "config.toml"
    if agent == "claude-code":
        return root / ".mcp.json" if scope == "project" else home / ".claude.json"
    return (root if scope == "project" else home) / ".gemini" / "settings.json"


def proxy_command() -> list[str]:
    """How an agent starts the gateway: this Python with ``-m corral`` (no PATH needed)."""
    return [sys.executable, "-m", "corral"]


def _marker(args: Any, name: str) -> bool:
    """Is this entry ours (``... mcp proxy NAME ...``)?"""
    if not isinstance(args, list):
        return False
    return any(args[i:i + 3] == ["mcp", "proxy", name] for i in range(len(args)))


def wrap(agent: str, name: str, entry: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The entry going through the gateway, or (None, why not)."""
    if _marker(entry.get("args"), name):
        return None, "already through corral"
    env = entry.get("env")
    names = sorted(env) if isinstance(env, dict) else []
    if agent == "codex" and isinstance(entry.get("env_vars"), list):
        names += [str(v) for v in entry["env_vars"]]
    passes = [a for n in names for a in ("--pass-env", n)]
    head = [*proxy_command()[1:], "mcp", "proxy", name]
    url_key = {"codex": "url", "claude-code": "url", "gemini": "httpUrl"}[agent]
    out = {k: v for k, v in entry.items()}
    if agent == "codex":
        own = [str(v) for v in entry["env_vars"]] if isinstance(entry.get("env_vars"), list) \
            else []
        out["env_vars"] = [*own, *(v for v in SESSION_VARS if v not in own)]
    if isinstance(entry.get("command"), str):
        args = entry.get("args") or []
        if not isinstance(args, list):
            return None, "args is not a list"
        out["command"] = proxy_command()[0]
        out["args"] = [*head, *passes, "--", entry["command"], *args]
        return out, ""
    url = entry.get(url_key)
    if isinstance(url, str):
        if agent == "claude-code" and entry.get("type") not in (None, "http"):
            return None, f"type {entry.get('type')!r} (only stdio and http pass the gateway)"
        for key in ("headers", "http_headers", "env_http_headers", "bearer_token_env_var",
                    "bearer_token", "oauth", "authProviderType"):
            if entry.get(key):
                return None, f"its {key} would not reach the server through the gateway"
        del out[url_key]
        out.pop("type", None)
        if agent == "claude-code":
            out["type"] = "stdio"
        out["command"] = proxy_command()[0]
        out["args"] = [*head, *passes, "--url", url]
        return out, ""
    if agent == "gemini" and isinstance(entry.get("url"), str):
        return None, "an SSE server (url); only stdio and streamable HTTP (httpUrl) pass"
    return None, "no command or URL"


# -- the files -----------------------------------------------------------------------------


def _state_path(home: Path, agent: str, path: Path) -> Path:
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return home / "mcp" / "install" / f"{agent}-{digest}.json"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except OSError as exc:
        from corral.paths import unreachable

        raise unreachable("mcp", path, exc, "the agent's MCP configuration") from None


def _write(path: Path, text: str) -> None:
    from corral.integrations.install import write_atomic
    from corral.paths import unreachable

    try:
        write_atomic(path, text)
    except OSError as exc:
        raise unreachable("mcp", path, exc, "the agent's MCP configuration") from None


class _Doc:
    """The servers table of one config file, TOML (Codex) or JSON."""

    def __init__(self, agent: str, path: Path, text: str) -> None:
        self.toml = agent == "codex"
        self.path = path
        try:
            if self.toml:
                import tomlkit

                self.doc: Any = tomlkit.parse(text)
            else:
                self.doc = json.loads(text) if text.strip() else {}
        except Exception as exc:
            raise CorralError("mcp", f"{path}: cannot parse: {exc}") from None
        if not isinstance(self.doc, dict):
            raise CorralError("mcp", f"{path}: not a table of settings")
        self.key = "mcp_servers" if self.toml else "mcpServers"

    def servers(self) -> dict[str, Any]:
        table = self.doc.get(self.key)
        return table if isinstance(table, dict) else {}

    def plain(self, value: Any) -> Any:
        return value.unwrap() if hasattr(value, "unwrap") else value

    def set(self, name: str, entry: dict[str, Any]) -> None:
        if self.toml:
            import tomlkit

            if self.key not in self.doc:
                self.doc[self.key] = tomlkit.table(is_super_table=True)
            table = tomlkit.table()
            for k, v in entry.items():
                table[k] = v
            self.doc[self.key][name] = table
        else:
            self.doc.setdefault(self.key, {})[name] = entry

    def text(self) -> str:
        if self.toml:
            import tomlkit

            return tomlkit.dumps(self.doc)
        return json.dumps(self.doc, indent=2) + "\n"


def install_mcp(agent: str, scope: str = "user", remove: bool = False, *,
                project_root: Path | None = None, home: Path | None = None) -> Result:
    """Wrap (or with ``remove`` unwrap) every MCP server entry of the agent's config file."""
    from corral.paths import corral_home

    path = config_path(agent, scope, project_root)
    state_file = _state_path(home or corral_home(), agent, path)
    text = _read(path)
    state = json.loads(_read(state_file) or "{}")
    result = Result(path)
    if remove:
        return _remove(agent, path, text, state, state_file, result)
    doc = _Doc(agent, path, text)
    originals: dict[str, Any] = dict(state.get("entries") or {})
    for name, entry in list(doc.servers().items()):
        plain = doc.plain(entry)
        if not isinstance(plain, dict):
            result.skipped.append((name, "not a table"))
            continue
        new, why = wrap(agent, name, plain)
        if new is None:
            if why != "already through corral":
                result.skipped.append((name, why))
            continue
        originals[name] = plain
        doc.set(name, new)
        result.wrapped.append(name)
    if not result.wrapped:
        return result
    out = doc.text()
    # the whole file comes back byte for byte only while nobody else has changed it
    unchanged = hashlib.sha256(text.encode()).hexdigest() == state.get("written_sha256")
    new_state = {"path": str(path), "entries": originals,
                 "original": (state.get("original") if unchanged else None) if state else text,
                 "written_sha256": hashlib.sha256(out.encode()).hexdigest()}
    _write(state_file, json.dumps(new_state, indent=1))
    _write(path, out)
    return result


def _remove(agent: str, path: Path, text: str, state: dict[str, Any], state_file: Path,
            result: Result) -> Result:
    entries = state.get("entries") or {}
    if not entries:
        return result
    if state.get("original") is not None and \
            hashlib.sha256(text.encode()).hexdigest() == state.get("written_sha256"):
        _write(path, str(state.get("original", "")))  # nothing else changed: byte for byte
        result.restored = sorted(entries)
    else:
        doc = _Doc(agent, path, text)
        for name, entry in entries.items():
            current = doc.servers().get(name)
            if current is not None and _marker(doc.plain(current).get("args"), name):
                doc.set(name, entry)
                result.restored.append(name)
        if result.restored:
            _write(path, doc.text())
    state_file.unlink(missing_ok=True)
    return result
