"""Plain data for configuration: the effective values, where each came from, what constrained it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_MISSING = object()


@dataclass(frozen=True)
class Origin:
    """Where a value came from: a layer name and, for files, the file and line."""

    layer: str
    file: str | None = None
    line: int | None = None

    def describe(self) -> str:
        if self.file is None:
            return self.layer
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{self.layer} ({where})"


@dataclass(frozen=True)
class Constraint:
    """A requirement that limited a key: which file set it and what it allows."""

    key: str
    source: str
    allowed: tuple[str, ...] = ()
    note: str = ""


def get_path(data: dict[str, Any], dotted: str | tuple[str, ...], default: Any = None) -> Any:
    parts = tuple(dotted.split(".")) if isinstance(dotted, str) else dotted
    cur: Any = data
    for part in parts:
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


@dataclass
class Requirements:
    """Admin constraints merged from every requirements source (see ``corral.config.requirements``).

    ``restrictive_reason`` is set when requirements could not be trusted or read and the most
    restrictive settings are in force instead.
    """

    data: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    restrictive_reason: str | None = None

    def get(self, dotted: str, default: Any = None) -> Any:
        return get_path(self.data, dotted, default)

    def source_of(self, dotted: str) -> str:
        """The requirement source (file or bundle) that set ``dotted``, or the nearest parent."""
        parts = dotted.split(".")
        while parts:
            key = ".".join(parts)
            if key in self.origins:
                return self.origins[key]
            parts.pop()
        return self.sources[-1] if self.sources else "requirements"

    @property
    def prefix_rules(self) -> list[dict[str, Any]]:
        rules = self.get("rules.prefix_rules", [])
        return list(rules) if isinstance(rules, list) else []

    @property
    def deny_read(self) -> list[str]:
        paths = self.get("filesystem.deny_read", [])
        return list(paths) if isinstance(paths, list) else []


@dataclass
class EffectiveConfig:
    """The merged configuration every control reads.

    ``values`` is the merged TOML tree after requirements were applied; ``origins`` maps each
    dotted leaf key to the layer it came from; ``constraints`` names the requirement behind any
    key that requirements limited.
    """

    values: dict[str, Any]
    origins: dict[str, Origin]
    requirements: Requirements
    constraints: dict[str, Constraint] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    cwd: Path = field(default_factory=Path.cwd)
    project_root: Path | None = None
    project_trusted: bool = False
    project_layers_disabled: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    corral_home: Path = field(default_factory=Path.home)
    system_dir: Path = field(default_factory=lambda: Path("/etc/corral"))

    def get(self, dotted: str, default: Any = None) -> Any:
        return get_path(self.values, dotted, default)

    def origin(self, dotted: str) -> Origin | None:
        return self.origins.get(dotted)
