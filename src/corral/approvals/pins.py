"""Pinned MCP tool definitions: what a server's tools looked like when they were approved.

A server that changes its tool list or a tool's description after approval (a "rug pull": a
harmless ``read_file`` that later tells the model to send ``~/.ssh`` somewhere) is caught by
comparing each tool's hash with the pin. The first list a server shows is pinned (trust on
first use, recorded); from then on a changed or added tool needs approval again before its
first call, and that approval re-pins it.

Pins live in ``$CORRAL_HOME/mcp/pins/<server>.json`` (hidden from every sandbox)::

    {"server": "files", "tools": {"read_file": "<sha256>", ...}}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The parts of a tool definition the model reads or that change what a call does.
HASHED_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def tool_hash(tool: dict[str, Any]) -> str:
    """SHA-256 of a tool definition's hashed fields, in canonical JSON."""
    doc = {k: tool[k] for k in HASHED_FIELDS if k in tool}
    data = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


def list_hash(tools: dict[str, str]) -> str:
    """One hash for a whole tool list (name -> tool hash)."""
    data = json.dumps(sorted(tools.items()), separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()


@dataclass(frozen=True)
class ToolsDiff:
    first: bool  # nothing was pinned: this list is now the pin
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def needs_approval(self) -> tuple[str, ...]:
        """Tools that may not be called until a person (or the reviewer) approves again."""
        return () if self.first else (*self.changed, *self.added)

    @property
    def changed_any(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def diff(pinned: dict[str, str] | None, seen: dict[str, str], complete: bool) -> ToolsDiff:
    """Compare a tool list (or one page of it: ``complete`` False) with the pin."""
    if pinned is None:
        return ToolsDiff(True, (), (), ())
    added = tuple(sorted(n for n in seen if n not in pinned))
    changed = tuple(sorted(n for n, h in seen.items() if n in pinned and pinned[n] != h))
    removed = tuple(sorted(n for n in pinned if n not in seen)) if complete else ()
    return ToolsDiff(False, added, changed, removed)


class PinStore:
    """The pins of every server, one file each, written atomically."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home) / "mcp" / "pins"
        self._lock = threading.Lock()

    def path(self, server: str) -> Path:
        safe = _SAFE.sub("_", server) or "_"
        digest = hashlib.sha256(server.encode()).hexdigest()[:8]
        return self.dir / f"{safe}-{digest}.json"

    def load(self, server: str) -> dict[str, str] | None:
        try:
            doc = json.loads(self.path(server).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            from corral.errors import CorralError

            raise CorralError("approvals", f"MCP tool pins for {server!r} unreadable "
                              f"({self.path(server)}: {exc})",
                              "remove the file to pin the server's tools afresh") from None
        tools = doc.get("tools") if isinstance(doc, dict) else None
        if not isinstance(tools, dict):
            return None
        return {str(k): str(v) for k, v in tools.items()}

    def update(self, server: str, tools: dict[str, str], *,
               remove: tuple[str, ...] = ()) -> dict[str, str]:
        """Pin ``tools`` (merged over what is pinned; ``remove`` dropped); returns the pin."""
        with self._lock:
            current = self.load(server) or {}
            current.update(tools)
            for name in remove:
                current.pop(name, None)
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".pin-")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump({"server": server, "tools": current}, f, sort_keys=True,
                              indent=1)
                os.replace(tmp, self.path(server))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            return current
