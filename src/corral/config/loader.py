"""``load_config``: build the effective configuration from every layer, then apply requirements.

Layers, lowest to highest: built-in defaults; system ``/etc/corral/config.toml``; the
enrolment (``server.url`` and ``server.ca_file`` of the corral server ``corral enroll`` joined); user
``$CORRAL_HOME/config.toml``; the selected profile (``[profiles.NAME]``); trusted project
``.corral/config.toml`` files from the project root down to the working directory; ``-c``
overrides; explicit command-line flags. Everything is computed in memory and validated before
anything is returned, so a bad input never leaves a half-applied config.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from corral.config.enforce import enforce
from corral.config.merge import OriginMaker, deepcopy, dotted, merge_into, split_dotted, strip_keys
from corral.config.model import EffectiveConfig, Origin
from corral.config.requirements import load_requirements
from corral.config.schema import (
    BUILTIN_PROFILES,
    CONFIG_SCHEMA,
    PROFILE_SCHEMA,
    PROJECT_FORBIDDEN,
    Spec,
    validate,
)
from corral.config.toml_io import TomlFile, read_toml_file
from corral.errors import ConfigError
from corral.paths import corral_home, system_dir

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from typing import Any

DEFAULTS: dict[str, Any] = {
    "approval_policy": "on-request",
    "approvals_reviewer": "user",
    "default_permissions": ":workspace",
    "project_root_markers": [".git"],
    "shell_environment_policy": {"inherit": "all"},
    "sandbox": {"network": "none"},
    "network": {"domains": {}, "allow_local": []},
    "telemetry": {"content_tier": 1, "checkpoint_every": 100},
    "review": {"timeout_seconds": 90.0, "on_failure": "ask_user"},
    "rules": {"exec_boundary": "top", "exec_boundary_unavailable": "refuse"},
}


def _check(tf: TomlFile, schema: Spec, prefix: tuple[str, ...] = ()) -> None:
    problems = validate(tf.data, schema)
    if problems:
        path, msg = problems[0]
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" \
            if len(problems) > 1 else ""
        raise ConfigError(f"{tf.where((*prefix, *path))}: {msg}{more}")


def _read_optional(path: Path) -> TomlFile | None:
    return read_toml_file(path) if _present(path) else None


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """``-c dotted.key=value``: the value is parsed as TOML, else taken as a string."""
    if "=" not in text:
        raise ConfigError(f"-c {text}: expected KEY=VALUE")
    key, raw = text.split("=", 1)
    try:
        path = split_dotted(key.strip())
    except ValueError as exc:
        raise ConfigError(f"-c {text}: {exc}") from None
    import tomllib

    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return path, value


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {path[-1]: value}
    for p in reversed(path[:-1]):
        out = {p: out}
    return out


def find_project_root(cwd: Path, markers: Iterable[str]) -> Path | None:
    markers = list(markers)
    for d in (cwd, *cwd.parents):
        for m in markers:
            try:
                if (d / m).exists():
                    return d
            except OSError:
                continue
    return None


def trust_of(projects: Mapping[str, Any], cwd: Path, root: Path | None) -> tuple[bool, str | None]:
    """Trust from ``[projects."<path>"]``: the project root's entry, else the nearest ancestor's."""
    candidates = ([root] if root else []) + [cwd, *cwd.parents]
    for d in candidates:
        entry = projects.get(str(d))
        if isinstance(entry, dict) and "trust_level" in entry:
            return entry["trust_level"] == "trusted", str(d)
    return False, None


def load_config(
    cwd: Path | str | None = None,
    overrides: Iterable[str] = (),
    profile: str | None = None,
    flags: Mapping[str, tuple[str, Any]] | None = None,
    *,
    home: Path | None = None,
    system: Path | None = None,
    euid: int | None = None,
) -> EffectiveConfig:
    """Load the effective config for ``cwd``. Raises ConfigError / RequirementsError (one line)."""
    cwd = Path(cwd or Path.cwd()).absolute()
    home = home or corral_home()
    system = system or system_dir()
    flags = flags or {}
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    warnings: list[str] = []
    sources: list[str] = []

    merge_into(values, origins, deepcopy(DEFAULTS), OriginMaker("default"))

    enrolment = None
    # the record's module (dataclasses, json: ~10 ms) only on an enrolled machine: every
    # `corral sandbox`/`exec` loads the config (path as corral.config.enrolment.enrolment_file)
    if _present(home / "fleet" / "enrolment.json"):
        from corral.config.enrolment import enrolment_file, read_enrolment

        enrolment = read_enrolment(home)
    system_tf = _read_optional(system / "config.toml")
    user_tf = _read_optional(home / "config.toml")
    for name, tf in (("system", system_tf), ("user", user_tf)):
        if name == "user" and enrolment is not None:
            server = {"url": enrolment.server,
                      **({"ca_file": enrolment.ca_file} if enrolment.ca_file else {})}
            merge_into(values, origins, {"server": server},
                       OriginMaker(f"enrolment {enrolment_file(home)}"))
        if tf is None:
            continue
        _check(tf, CONFIG_SCHEMA)
        if name == "user" and "managed" in tf.data:
            warnings.append(f"{tf.where(('managed',))}: `managed` is honoured only in the "
                            "system config; ignored")
            tf.data = {k: v for k, v in tf.data.items() if k != "managed"}
        merge_into(values, origins, tf.data, OriginMaker(name, tf))
        sources.append(str(tf.path))

    parsed_overrides = [(text, *parse_override(text)) for text in overrides]

    # Profile: --profile beats `profile = "..."` from config.
    chosen = profile or values.get("profile")
    if chosen:
        prof = values.get("profiles", {}).get(chosen)
        if prof is None:
            where = ", ".join(sources) or "any config file"
            raise ConfigError(f"profile `{chosen}` is not defined in [profiles] of {where}")
        owner = next(
            (tf for tf in (user_tf, system_tf)
             if tf is not None and chosen in tf.data.get("profiles", {})), None
        )
        merge_into(values, origins, deepcopy(prof),
                   _ProfileOrigin(f"profile {chosen}", owner, chosen))

    # Project layers, gated on trust (trust entries come only from system and user config).
    markers = values.get("project_root_markers", [".git"])
    root = find_project_root(cwd, markers)
    trusted, _ = trust_of(values.get("projects", {}), cwd, root)
    disabled: list[str] = []
    dirs = [cwd] if root is None else [root] + [root / p for p in _descend(cwd.relative_to(root))]
    for d in dirs:
        f = d / ".corral" / "config.toml"
        if not _present(f):
            continue
        if not trusted:
            disabled.append(str(f))
            continue
        tf = read_toml_file(f)
        _check(tf, CONFIG_SCHEMA)
        removed = strip_keys(tf.data, PROJECT_FORBIDDEN)
        for key in removed:
            warnings.append(f"{tf.where(key)}: `{dotted(key)}` may not be set by project config; "
                            "ignored")
        merge_into(values, origins, tf.data, OriginMaker("project", tf))
        sources.append(str(f))
    if disabled:
        warnings.append(
            f"project config not loaded because {root or cwd} is not trusted: "
            f"{', '.join(disabled)} (run `corral trust` to use it)"
        )

    explicit: dict[str, str] = {}
    for text, key_path, value in parsed_overrides:
        merge_into(values, origins, _nest(key_path, value), OriginMaker(f"-c {text}"))
        explicit[dotted(key_path)] = f"-c {text}"
    for flag_key, (flag, flag_value) in flags.items():
        if flag_value is None:
            continue
        key_path = split_dotted(flag_key)
        merge_into(values, origins, _nest(key_path, flag_value), OriginMaker(f"flag {flag}"))
        explicit[dotted(key_path)] = f"{flag} {flag_value}"

    problems = validate(values, CONFIG_SCHEMA)
    if problems:
        path, msg = problems[0]
        origin = _origin_for(origins, path)
        raise ConfigError(f"{origin}: {msg}")

    req_warnings: list[str] = []
    req = load_requirements(
        system, system_tf.data if system_tf else {}, home / "state", euid=euid,
        warnings=req_warnings, enrolment=enrolment,
        credential=(lambda: _device_token(values, home, enrolment)) if enrolment else None,
    )
    warnings.extend(req_warnings)
    if req.restrictive_reason:
        warnings.append(f"REQUIREMENTS: {req.restrictive_reason}; the most restrictive "
                        "settings apply")
    constraints, enforce_warnings = enforce(values, origins, req, explicit)
    warnings.extend(enforce_warnings)
    selected = values.get("default_permissions")
    if selected not in BUILTIN_PROFILES and selected not in values.get("permissions", {}):
        raise ConfigError(
            f"{_origin_for(origins, ('default_permissions',))}: permission profile "
            f"`{selected}` is not defined (built-ins: {', '.join(BUILTIN_PROFILES)}; "
            "or define [permissions.NAME])"
        )

    return EffectiveConfig(
        values=values,
        origins=origins,
        requirements=req,
        constraints=constraints,
        warnings=warnings,
        cwd=cwd,
        project_root=root,
        project_trusted=trusted,
        project_layers_disabled=disabled,
        sources=sources,
        corral_home=home,
        system_dir=system,
    )


def _device_token(values: dict[str, Any], home: Path, enrolment: Any) -> str | None:
    """The enrolled device's credential for fetching its policy (only when a fetch is due)."""
    from corral import credentials
    from corral.config.enrolment import TOKEN_SERVICE

    token, _ = credentials.get(values, home, TOKEN_SERVICE, enrolment.server, "fleet")
    return token or os.environ.get("CORRAL_SERVER_TOKEN") or None


def _present(path: Path) -> bool:
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return True


def _descend(rel: Path) -> list[Path]:
    """``a/b/c`` -> [a, a/b, a/b/c]."""
    parts = rel.parts
    return [Path(*parts[: i + 1]) for i in range(len(parts))]


def _origin_for(origins: dict[str, Origin], path: tuple[str, ...]) -> str:
    probe = path
    while probe:
        o = origins.get(dotted(probe))
        if o is not None:
            if o.file:
                return f"{o.file}:{o.line}" if o.line else o.file
            return o.layer
        probe = probe[:-1]
    return "config"


class _ProfileOrigin(OriginMaker):
    """Profile keys live under ``profiles.NAME`` in their file: look their lines up there."""

    def __init__(self, layer: str, file: TomlFile | None, name: str) -> None:
        super().__init__(layer, file)
        self.name = name

    def __call__(self, path: tuple[str, ...]) -> Origin:
        if self.file is None:
            return Origin(self.layer)
        return Origin(self.layer, str(self.file.path),
                      self.file.line_of(("profiles", self.name, *path)))


__all__ = ["DEFAULTS", "PROFILE_SCHEMA", "find_project_root", "load_config", "parse_override"]
