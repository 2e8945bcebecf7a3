"""Plain data for configuration: the effective values, where each came from, what constrained it."""

from __future__ import annotations

from pathlib import Path

from corral.record import Frozen, Record

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from typing import Any

_MISSING = object()


class Origin(Frozen):
    """Where a value came from: a layer name and, for files, the file and line."""

    _fields = ("layer", "file", "line")
    layer: str
    file: str | None
    line: int | None

    def __init__(self, layer: str, file: str | None = None, line: int | None = None) -> None:
        self._set(layer=layer, file=file, line=line)

    def describe(self) -> str:
        if self.file is None:
            return self.layer
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{self.layer} ({where})"


class Constraint(Frozen):
    """A requirement that limited a key: which file set it and what it allows."""

    _fields = ("key", "source", "allowed", "note")
    key: str
    source: str
    allowed: tuple[str, ...]
    note: str

    def __init__(self, key: str, source: str, allowed: tuple[str, ...] = (),
                 note: str = "") -> None:
        self._set(key=key, source=source, allowed=allowed, note=note)


def get_path(data: dict[str, Any], dotted: str | tuple[str, ...], default: Any = None) -> Any:
    parts = tuple(dotted.split(".")) if isinstance(dotted, str) else dotted
    cur: Any = data
    for part in parts:
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


class Requirements(Record):
    """Admin constraints merged from every requirements source (see ``corral.config.requirements``).

    ``restrictive_reason`` is set when requirements could not be trusted or read and the most
    restrictive settings are in force instead.
    """

    _fields = ("data", "origins", "sources", "restrictive_reason")

    def __init__(self, data: dict[str, Any] | None = None, origins: dict[str, str] | None = None,
                 sources: list[str] | None = None, restrictive_reason: str | None = None) -> None:
        self.data: dict[str, Any] = {} if data is None else data
        self.origins: dict[str, str] = {} if origins is None else origins
        self.sources: list[str] = [] if sources is None else sources
        self.restrictive_reason = restrictive_reason

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


class EffectiveConfig(Record):
    """The merged configuration every control reads.

    ``values`` is the merged TOML tree after requirements were applied; ``origins`` maps each
    dotted leaf key to the layer it came from; ``constraints`` names the requirement behind any
    key that requirements limited.
    """

    _fields = ("values", "origins", "requirements", "constraints", "warnings", "cwd",
               "project_root", "project_trusted", "project_layers_disabled", "sources",
               "corral_home", "system_dir")

    def __init__(
        self, values: dict[str, Any], origins: dict[str, Origin], requirements: Requirements,
        constraints: dict[str, Constraint] | None = None, warnings: list[str] | None = None,
        cwd: Path | None = None, project_root: Path | None = None, project_trusted: bool = False,
        project_layers_disabled: list[str] | None = None, sources: list[str] | None = None,
        corral_home: Path | None = None, system_dir: Path | None = None,
    ) -> None:
        self.values = values
        self.origins = origins
        self.requirements = requirements
        self.constraints: dict[str, Constraint] = {} if constraints is None else constraints
        self.warnings: list[str] = [] if warnings is None else warnings
        self.cwd = Path.cwd() if cwd is None else cwd
        self.project_root = project_root
        self.project_trusted = project_trusted
        self.project_layers_disabled: list[str] = (
            [] if project_layers_disabled is None else project_layers_disabled)
        self.sources: list[str] = [] if sources is None else sources
        self.corral_home = Path.home() if corral_home is None else corral_home
        self.system_dir = Path("/etc/corral") if system_dir is None else system_dir

    def get(self, dotted: str, default: Any = None) -> Any:
        return get_path(self.values, dotted, default)

    def origin(self, dotted: str) -> Origin | None:
        return self.origins.get(dotted)
