"""Programs an agent's own settings run, found so they can be locked with the settings.

Locking ``settings.json`` or ``config.toml`` is not enough when they name a script inside the
agent's writable directory (``"command": "~/.claude/hooks/format.sh"``, a status line, Codex's
``notify``): rewriting that script would run arbitrary code the next time the agent starts, and
outside any sandbox if it is started without corral. Plain data in (the files' text), paths out.
"""

from __future__ import annotations

import json
import os
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Files whose "command" strings (anywhere in them) are programs the agent runs.
JSON_SETTINGS = ("settings.json", "settings.local.json", "managed-settings.json", "hooks.json")


def _commands(doc: Any) -> Iterator[str]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "command" and isinstance(value, str):
                yield value
            else:
                yield from _commands(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _commands(item)


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # unbalanced quotes: still look at every word
        return command.split()


def _expand(word: str, cdir: Path, home: Path, config_env: str | None) -> Path | None:
    for prefix in ("$HOME", "${HOME}", "~"):
        if word == prefix or word.startswith(prefix + "/"):
            word = str(home) + word[len(prefix):]
            break
    if config_env:
        for prefix in (f"${config_env}", f"${{{config_env}}}"):
            if word == prefix or word.startswith(prefix + "/"):
                word = str(cdir) + word[len(prefix):]
                break
    return Path(os.path.normpath(word)) if word.startswith("/") else None


def referenced_files(cdir: Path, home: Path, config_env: str | None = None) -> list[Path]:
    """Paths inside ``cdir`` that its settings run (hook commands, status line, notify), in
    order, without duplicates; the settings files themselves are not included."""
    texts: list[Any] = []
    for name in JSON_SETTINGS:
        try:
            texts.append(json.loads((cdir / name).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    commands = [w for doc in texts for c in _commands(doc) for w in _words(c)]
    try:
        toml = tomllib.loads((cdir / "config.toml").read_text(encoding="utf-8"))
        notify = toml.get("notify")
        if isinstance(notify, list):
            commands += [w for w in notify if isinstance(w, str)]
        commands += [w for c in _commands(toml) for w in _words(c)]
    except (OSError, ValueError):
        pass
    out: list[Path] = []
    root = Path(os.path.normpath(cdir))
    for word in commands:
        path = _expand(word, root, home, config_env)
        if path is None or path == root or root not in path.parents:
            continue
        if path.name in JSON_SETTINGS or path.name == "config.toml" or path in out:
            continue
        out.append(path)
    return out
