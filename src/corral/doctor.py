"""``corral doctor``: what this machine can enforce, stated plainly, partial controls included."""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from dataclasses import asdict
from typing import Any

# One shape for every check: a failed ``required`` check means a control cannot be enforced.
from corral.sandbox.capabilities import Check


def _home_check() -> Check:
    from corral.paths import corral_home

    home = corral_home()
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("corral home", False, f"{home} is not writable: {exc.strerror}",
                     "set CORRAL_HOME to a writable directory")
    mode = os.stat(home).st_mode & 0o777
    if mode & 0o077:
        return Check("corral home", False, f"{home} writable but mode {mode:o} lets others read "
                     "the journal and keys", f"chmod 700 {home}", required=False)
    return Check("corral home", True, f"{home} writable, mode {mode:o}")


def _keyring_check() -> Check:
    try:
        import keyring
        from keyring.backends import fail

        kr = keyring.get_keyring()
    except Exception as exc:  # keyring backends raise many kinds of errors on probe
        return Check("keyring", False, f"keyring unavailable: {exc}",
                     "install a Secret Service provider (gnome-keyring) or use a desktop session",
                     required=False)
    name = f"{type(kr).__module__}.{type(kr).__name__}"
    if isinstance(kr, fail.Keyring):
        return Check("keyring", False, f"no usable keyring backend ({name}): credentials cannot "
                     "be stored in the OS keyring", "install gnome-keyring or keyrings.alt",
                     required=False)
    return Check("keyring", True, f"backend {name}")


def _requirements_check() -> Check:
    from corral.config import load_config
    from corral.errors import CorralError

    try:
        cfg = load_config()
    except CorralError as exc:
        return Check("configuration", False, exc.message, "fix the file named above")
    req = cfg.requirements
    if req.restrictive_reason:
        return Check("requirements", False, f"{req.restrictive_reason}: most restrictive "
                     "settings apply", "ask your administrator", required=False)
    srcs = ", ".join(req.sources) or "none configured"
    return Check("requirements", True, f"sources: {srcs}")


def _system_dir_check() -> Check:
    """Which admin directory is in force, and why ``CORRAL_SYSTEM_DIR`` was or was not
    honoured (only while the real one is absent or empty: relocating never drops a rule)."""
    from corral import paths

    real = paths.SYSTEM_DIR_DEFAULT
    env = os.environ.get("CORRAL_SYSTEM_DIR")
    used = paths.system_dir()
    if env and used == real:
        return Check("admin directory", True, f"{real} (CORRAL_SYSTEM_DIR={env} ignored: it is "
                     f"honoured only while {real} is absent or empty)")
    if env:
        return Check("admin directory", True, f"{used} (CORRAL_SYSTEM_DIR; {real} is absent or "
                     "empty)")
    return Check("admin directory", True, str(real) + (
        "" if paths.admin_dir_in_use(real) else " (absent or empty: nothing configured there)"))


def _exec_boundary_check() -> Check:
    """Kernel support for the exec boundary (seccomp user notification, probed end to end), and
    what `corral run` does here as configured (``rules.exec_boundary[_unavailable]``)."""
    from corral.config import load_config
    from corral.errors import CorralError
    from corral.sandbox.execnotify import probe

    try:
        cfg = load_config()
        mode = str(cfg.get("rules.exec_boundary", "top"))
        unavailable = str(cfg.get("rules.exec_boundary_unavailable", "refuse"))
    except CorralError:
        mode, unavailable = "top", "refuse"  # the configuration check says what is wrong
    setting = f'rules.exec_boundary = "{mode}"'
    if mode == "off":
        return Check("exec boundary", False, f"off ({setting}): only hooks show an agent's "
                     "commands to the rules under corral run", 'rules.exec_boundary = "top"',
                     required=False)
    problem = probe()
    if problem is None:
        return Check("exec boundary", True, f"seccomp user notification works ({setting})")
    what = ("corral run refuses to start" if unavailable == "refuse" else
            "corral run continues WITHOUT it, saying so")
    return Check("exec boundary", False, f"unavailable: {problem}; {what} "
                 f'(rules.exec_boundary_unavailable = "{unavailable}")',
                 "Linux 5.9+ with seccomp user notification (CONFIG_SECCOMP_FILTER); in a "
                 "container, a seccomp profile that allows seccomp(2) and its ioctls",
                 required=unavailable == "refuse")


def run_checks() -> list[Check]:
    checks: list[Check] = []
    try:
        capabilities: Any = importlib.import_module("corral.sandbox.capabilities")
    except ImportError:
        checks.append(Check("sandbox", False, "sandbox capability probe unavailable"))
    else:
        checks += capabilities.checks()
    checks += [_home_check(), _keyring_check(), _system_dir_check(), _requirements_check(),
               _exec_boundary_check()]
    return checks


def render(checks: list[Check], as_json: bool) -> str:
    if as_json:
        data: list[dict[str, Any]] = [asdict(c) for c in checks]
        return json.dumps(data, indent=2)
    lines = []
    for c in checks:
        mark = "ok " if c.ok else ("NO " if c.required else "warn")
        lines.append(f"[{mark}] {c.name}: {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"       fix: {c.fix}")
    partial = [c.name for c in checks if not c.ok]
    lines.append("")
    lines.append("all controls enforceable" if not partial
                 else f"partially enforced: {', '.join(partial)}")
    return "\n".join(lines)


def secrets_report(cwd: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """``corral doctor --secrets``: the catalogue's credential files present on this machine
    and the secret-bearing environment variables, each with whether the sandbox (the default
    profile's plan, here) hides it. Never a value."""
    from pathlib import Path

    from corral.config import load_config
    from corral.sandbox import plan_from_config
    from corral.sandbox.credentials import found
    from corral.sandbox.envpolicy import DEFAULT_EXCLUDES, _matches, build_env
    from corral.sandbox.profiles import Access, effective_access, normalise
    from corral.sandbox.secretvalues import kind

    cfg = load_config(Path(cwd) if cwd else None)
    plan = plan_from_config(cfg, cfg.cwd)
    entries = normalise(list(plan.entries))
    import fnmatch

    def hides(p: Path) -> bool:
        if plan.full_access:
            return False
        if any(fnmatch.fnmatchcase(str(p), g) for g in plan.deny_read_globs):
            return True
        return effective_access(p, entries) is Access.DENY or (
            p.is_symlink() and effective_access(p.resolve(), entries) is Access.DENY)

    files = [{"path": str(p), "id": c.id, "tool": c.tool, "why": c.reason, "hidden": hides(p)}
             for c, p in found(Path.home(), os.environ)]
    passed = build_env(plan.env_policy, os.environ) if not plan.full_access else dict(os.environ)
    env = []
    for name, value in sorted(os.environ.items()):
        named = value and _matches(name, DEFAULT_EXCLUDES)
        why = kind(name, value) or ("name matches a default exclude" if named else None)
        if why is not None:
            env.append({"name": name, "why": why, "hidden": name not in passed})
    return {"files": files, "env": env}


def render_secrets(report: dict[str, list[dict[str, Any]]], as_json: bool) -> str:
    if as_json:
        return json.dumps(report, indent=2)
    lines = [f"credential files found: {len(report['files'])}"]
    for f in report["files"]:
        mark = "hidden " if f["hidden"] else "VISIBLE"
        lines.append(f"[{mark}] {f['path']}  ({f['id']}: {f['tool']}, {f['why']})")
    lines.append(f"secret-bearing environment variables: {len(report['env'])}")
    for e in report["env"]:
        mark = "dropped" if e["hidden"] else "PASSES "
        lines.append(f"[{mark}] {e['name']}  ({e['why']})")
    visible = sum(not x["hidden"] for x in [*report["files"], *report["env"]])
    lines.append("")
    lines.append("every credential found is hidden from sandboxed commands" if not visible
                 else f"{visible} visible to sandboxed commands (re-allowed by a profile, "
                 "shell_environment_policy or the profile in force)")
    return "\n".join(lines)
