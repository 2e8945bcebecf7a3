"""Record the user's trust in corral's Codex hooks, where Codex itself keeps it.

Codex runs a non-managed hook only after the user trusts its exact definition: it compares the
hook's current hash with ``[hooks.state."<key>"] trusted_hash`` in the user's ``config.toml``.
A freshly installed hook is therefore inactive, silently, until someone opens ``/hooks`` in the
TUI. ``corral install-hooks codex`` is that someone: the user asked for these hooks.

The key and hash are Codex's own: they are read from Codex's app-server (``hooks/list``, the
JSON-RPC API its own UI uses), never recomputed here, and after writing the trust record the
same API is asked again, so "trusted" is what Codex itself reports. Only corral's own hook
entries are ever trusted; other hooks keep whatever state the user gave them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.errors import CorralError
from corral.integrations.install import MARKER

APP_SERVER_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class CodexHook:
    """One hook as Codex lists it."""

    key: str
    current_hash: str
    trust: str  # managed | untrusted | trusted | modified
    command: str
    source_path: str

    @property
    def ours(self) -> bool:
        return MARKER in self.command


def find_codex() -> str | None:
    return shutil.which("codex")


class _AppServer:
    """A short-lived ``codex app-server`` spoken to over stdio (one JSON object per line)."""

    def __init__(self, codex: str, env: dict[str, str]) -> None:
        self._proc = subprocess.Popen([codex, "app-server"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True, env=env)
        self._next = 0

    def request(self, method: str, params: dict[str, Any]) -> Any:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._next += 1
        rid = self._next
        self._proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method,
                                           "params": params}) + "\n")
        self._proc.stdin.flush()
        deadline = time.monotonic() + APP_SERVER_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line:
                raise CorralError("integrations", f"codex app-server ended during {method}")
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("id") == rid:
                if "error" in msg:
                    raise CorralError("integrations",
                                      f"codex app-server refused {method}: {msg['error']}")
                return msg.get("result")
        raise CorralError("integrations", f"codex app-server did not answer {method} in time")

    def notify(self, method: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}) + "\n")
        self._proc.stdin.flush()

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait()


def list_hooks(codex: str, codex_home: Path, cwd: Path) -> list[CodexHook]:
    """Every hook Codex would load for ``cwd`` with this ``CODEX_HOME``."""
    env = dict(os.environ, CODEX_HOME=str(codex_home))
    server = _AppServer(codex, env)
    try:
        server.request("initialize", {"clientInfo": {"name": "corral", "version": "1"}})
        server.notify("initialized")
        result = server.request("hooks/list", {"cwds": [str(cwd)]})
    finally:
        server.close()
    out: list[CodexHook] = []
    for entry in (result or {}).get("data", []):
        for h in entry.get("hooks", []):
            out.append(CodexHook(str(h.get("key", "")), str(h.get("currentHash", "")),
                                 str(h.get("trustStatus", "")), str(h.get("command", "")),
                                 str(h.get("sourcePath", ""))))
    return out


def _record_trust(config: Path, hooks: list[CodexHook]) -> None:
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    from corral.integrations.install import write_atomic

    text = config.read_text(encoding="utf-8") if config.exists() else ""
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise CorralError("integrations", f"{config} is not valid TOML ({exc}); not touching it"
                          ) from exc
    table: Any = doc.setdefault("hooks", tomlkit.table())
    state: Any = table.setdefault("state", tomlkit.table())
    for h in hooks:
        entry = tomlkit.table()
        entry["trusted_hash"] = h.current_hash
        entry["enabled"] = True
        state[h.key] = entry
    write_atomic(config, tomlkit.dumps(doc))


def trust_corral_hooks(codex_home: Path, cwd: Path, codex: str | None = None
                       ) -> list[CodexHook]:
    """Trust corral's own hooks in Codex's user config; returns them as Codex now lists them.

    Raises CorralError (one line) when Codex cannot be asked or does not confirm the trust."""
    codex = codex or find_codex()
    if codex is None:
        raise CorralError("integrations", "codex is not on PATH, so the new hooks could not be "
                          "trusted for it", hint="trust them in Codex with /hooks, or rerun "
                          "install-hooks where codex is on PATH")
    ours = [h for h in list_hooks(codex, codex_home, cwd) if h.ours]
    if not ours:
        raise CorralError("integrations", "Codex does not list corral's hooks (are hooks "
                          "disabled in its config?)")
    pending = [h for h in ours if h.trust not in ("trusted", "managed")]
    if pending:
        _record_trust(codex_home / "config.toml", pending)
    after = [h for h in list_hooks(codex, codex_home, cwd) if h.ours]
    untrusted = [h.key for h in after if h.trust not in ("trusted", "managed")]
    if untrusted:
        raise CorralError("integrations", f"Codex still reports corral's hooks as untrusted: "
                          f"{', '.join(untrusted)}")
    return after
