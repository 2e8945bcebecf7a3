"""Where rules come from: system, user, trusted project, requirements, and ``-r`` files.

A file that fails to load keeps its error (file:line) on the policy and contributes no rules;
the other files still load. Parsed policies are cached by file identity (path, mtime, size).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from corral.rules.model import Policy, RulesLoadError
from corral.rules.starlark_loader import _BuiltinError, build_prefix_rules, load_rules_file
from corral.types import RuleDecision

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:
    from typing import Any

    from corral.config import EffectiveConfig

_cache: dict[tuple[Any, ...], Policy] = {}


def _rules_in(folder: Path) -> list[Path]:
    """``<folder>/*.rules``: non-recursive, sorted by name, regular files only."""
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError:
        return []
    return [p for p in entries if p.suffix == ".rules" and p.is_file()]


def rule_files(cfg: EffectiveConfig | None) -> list[Path]:
    """Configured rule files, lowest precedence first (order only affects report order)."""
    from corral import paths

    system = Path(cfg.system_dir) if cfg is not None else paths.system_dir()
    home = Path(cfg.corral_home) if cfg is not None else paths.corral_home()
    files = _rules_in(system / "rules") + _rules_in(home / "rules")
    if cfg is not None and cfg.project_trusted and cfg.project_root is not None:
        root = Path(cfg.project_root).resolve()
        cwd = Path(cfg.cwd).resolve()
        chain = [root]
        if cwd != root and root in cwd.parents:
            rel = cwd.relative_to(root)
            cur = root
            for part in rel.parts:
                cur = cur / part
                chain.append(cur)
        for d in chain:
            files += _rules_in(d / ".corral" / "rules")
    return files


def _stat_key(path: Path) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
        return (str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        return (str(path), -1, -1)


def _token(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, dict):
        if "token" in value and isinstance(value["token"], str):
            return (value["token"],)
        if "any_of" in value and isinstance(value["any_of"], list) and value["any_of"] and all(
                isinstance(v, str) for v in value["any_of"]):
            return tuple(value["any_of"])
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _BuiltinError(f"pattern element must be a string, a list of strings, {{token=...}} or "
                        f"{{any_of=[...]}} (got {value!r})")


def add_requirement_rules(policy: Policy, rules: Iterable[object], origin: str) -> None:
    """``[rules] prefix_rules`` from requirements: decision required, ``allow`` not permitted."""
    for n, entry in enumerate(rules, 1):
        try:
            if not isinstance(entry, dict):
                raise _BuiltinError("each entry must be a table {pattern=[...], decision=...}")
            pattern = entry.get("pattern")
            if not isinstance(pattern, list) or not pattern:
                raise _BuiltinError("pattern must be a non-empty list")
            tokens = [_token(t) for t in pattern]
            raw = entry.get("decision")
            if raw == "allow":
                raise _BuiltinError("decision \"allow\" is not permitted in requirements")
            if raw not in ("prompt", "forbidden"):
                raise _BuiltinError(f"decision must be \"prompt\" or \"forbidden\" (got {raw!r})")
            just = entry.get("justification")
            if just is not None and (not isinstance(just, str) or not just.strip()):
                raise _BuiltinError("justification must be a non-empty string")
        except _BuiltinError as exc:
            policy.load_errors.append(RulesLoadError(
                f"{origin} rules.prefix_rules[{n}]", None, None, str(exc)))
            continue
        for rule in build_prefix_rules(tokens, RuleDecision(raw), just, "requirements"):
            policy.add_rule(rule)


def load_files_into(policy: Policy, files: Sequence[Path | str]) -> None:
    """Each file is evaluated on its own scratch copy, so a broken file adds no rules."""
    for path in files:
        scratch = Policy(host_executables=dict(policy.host_executables))
        err = load_rules_file(str(path), scratch)
        if err is not None:
            policy.load_errors.append(err)
            continue
        for rules in scratch.rules_by_program.values():
            for rule in rules:
                policy.add_rule(rule)
        policy.host_executables.update(scratch.host_executables)
        policy.network_rules.extend(scratch.network_rules)
        policy.sources.append(str(path))


def load_policy(
    cfg: EffectiveConfig | None,
    extra_files: Sequence[Path | str] = (),
    include_configured: bool = True,
) -> Policy:
    """The policy for a session: configured sources (if asked) plus ``extra_files``, plus
    requirements rules on top. Cached until any file changes."""
    files: list[Path | str] = list(rule_files(cfg)) if include_configured else []
    files += list(extra_files)
    req_rules: list[Any] = []
    req_origin = "requirements"
    if cfg is not None:
        req_rules = cfg.requirements.prefix_rules
        req_origin = cfg.requirements.source_of("rules.prefix_rules")
    restrictive_key = getattr(cfg.requirements, "restrictive_reason", None) if cfg else None
    key = (tuple(_stat_key(Path(f)) for f in files), repr(req_rules), req_origin, restrictive_key)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    policy = Policy()
    load_files_into(policy, files)
    if req_rules:
        add_requirement_rules(policy, req_rules, req_origin)
    restrictive = getattr(cfg.requirements, "restrictive_reason", None) if cfg else None
    if restrictive:
        # admin rules could not be read: fail closed until they can
        policy.load_errors.append(RulesLoadError("requirements", None, None, str(restrictive)))
    if len(_cache) > 64:
        _cache.clear()
    _cache[key] = policy
    return policy
