"""Explaining and editing config: every effective value with its origin and constraint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.config.merge import dotted, split_dotted
from corral.config.model import EffectiveConfig
from corral.config.schema import CONFIG_SCHEMA, PROJECT_FORBIDDEN, REQUIREMENTS_SCHEMA, validate
from corral.config.toml_io import read_toml_file
from corral.errors import ConfigError


@dataclass(frozen=True)
class ExplainRow:
    key: str
    value: Any
    origin: str
    constraint: str | None


def _leaves(value: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict) and value:
        out: list[tuple[tuple[str, ...], Any]] = []
        for k, v in value.items():
            out.extend(_leaves(v, (*path, k)))
        return out
    return [(path, value)]


def explain_rows(cfg: EffectiveConfig, key: str | None = None) -> list[ExplainRow]:
    prefix: tuple[str, ...] = split_dotted(key) if key else ()
    rows = []
    for path, value in _leaves(cfg.values, ()):
        if path[: len(prefix)] != prefix:
            continue
        k = dotted(path)
        origin = None
        probe = path
        while probe and origin is None:
            origin = cfg.origins.get(dotted(probe))
            probe = probe[:-1]
        constraint = None
        for ckey, c in cfg.constraints.items():
            if k == ckey or k.startswith(ckey + "."):
                allowed = f"allowed: {', '.join(c.allowed)}; " if c.allowed else ""
                note = f"{c.note}; " if c.note else ""
                constraint = f"{allowed}{note}set by {c.source}"
        rows.append(ExplainRow(k, value, origin.describe() if origin else "default", constraint))
    if key and not rows:
        raise ConfigError(f"no effective config key `{key}`")
    return rows


def render_explain(cfg: EffectiveConfig, key: str | None, as_json: bool) -> str:
    from corral.sandbox.credentials import reallow_warnings

    rows = explain_rows(cfg, key)
    warnings = [*cfg.warnings, *reallow_warnings(cfg.get("permissions"))]
    if as_json:
        return json.dumps(
            {
                "values": [r.__dict__ for r in rows],
                "sources": cfg.sources,
                "requirements": cfg.requirements.sources,
                "restrictive_reason": cfg.requirements.restrictive_reason,
                "project_root": str(cfg.project_root) if cfg.project_root else None,
                "project_trusted": cfg.project_trusted,
                "warnings": warnings,
            },
            indent=2,
            default=str,
        )
    lines = []
    for r in rows:
        lines.append(f"{r.key} = {json.dumps(r.value, default=str)}")
        lines.append(f"    from: {r.origin}")
        if r.constraint:
            lines.append(f"    constrained: {r.constraint}")
    lines.append("")
    proj = cfg.project_root or cfg.cwd
    lines.append(f"project: {proj} ({'trusted' if cfg.project_trusted else 'not trusted'})")
    lines.append(f"config files: {', '.join(cfg.sources) or '(none)'}")
    reqs = ", ".join(cfg.requirements.sources) or "(none)"
    lines.append(f"requirements: {reqs}")
    if cfg.requirements.restrictive_reason:
        lines.append(f"REQUIREMENTS REFUSED: {cfg.requirements.restrictive_reason}; "
                     "most restrictive settings apply")
    lines += [f"warning: {w}" for w in warnings[len(cfg.warnings):]]
    return "\n".join(lines)


def detect_kind(path: Path) -> str:
    if path.name == "requirements.toml" or path.parent.name == "managed":
        return "requirements"
    if path.parent.name == ".corral":
        return "project"
    return "config"


def validate_file(path: Path, kind: str | None = None) -> list[str]:
    """Every problem in a config or requirements file as ``file:line:col: message``."""
    kind = kind or detect_kind(path)
    try:
        tf = read_toml_file(path)
    except ConfigError as exc:
        return [exc.message]
    schema = REQUIREMENTS_SCHEMA if kind == "requirements" else CONFIG_SCHEMA
    out = [f"{tf.where(p)}: {m}" for p, m in validate(tf.data, schema)]
    if kind == "project":
        for key in PROJECT_FORBIDDEN:
            cur: Any = tf.data
            for part in key:
                cur = cur.get(part) if isinstance(cur, dict) else None
            if cur is not None:
                out.append(f"{tf.where(key)}: `{dotted(key)}` may not be set by project config")
    return out


def set_trust(user_config: Path, project: Path, level: str) -> None:
    """Write ``[projects."<project>"] trust_level = level`` into the user config, keeping its
    formatting and comments (tomlkit). A config that cannot be read or written (inside the
    sandbox it is hidden) is one refusal line, not a traceback."""
    try:
        _set_trust(user_config, project, level)
    except OSError as exc:
        from corral.paths import unreachable

        raise unreachable("config", user_config, exc, "the user config") from None


def _set_trust(user_config: Path, project: Path, level: str) -> None:
    import tomlkit

    text = ""
    if user_config.exists():
        read_toml_file(user_config)  # refuse to edit a file we could not load
        text = user_config.read_text(encoding="utf-8")
    doc = tomlkit.parse(text)
    projects = doc.get("projects")
    if projects is None:
        projects = tomlkit.table(is_super_table=True)
        doc["projects"] = projects
    entry = projects.get(str(project))
    if entry is None:
        entry = tomlkit.table()
        projects[str(project)] = entry
    entry["trust_level"] = level
    user_config.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = user_config.with_name(user_config.name + ".tmp")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    tmp.replace(user_config)
