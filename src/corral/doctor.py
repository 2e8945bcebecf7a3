"""``corral doctor``: what this machine can enforce, stated plainly, partial controls included."""

from __future__ import annotations

import importlib
import json
import os
import tempfile
from collections.abc import Mapping
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


def secrets_report(cwd: str | None = None) -> dict[str, Any]:
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
    return {"files": files, "env": env, "broker": broker_report(cfg, os.environ)}


def broker_report(cfg: Any, environ: Mapping[str, str]) -> dict[str, Any]:
    """The credential broker as ``corral run`` would set it up here: enabled, required by
    requirements, and per credential (the agents' keys and logins, ``[secrets.broker]``'s own)
    its hosts, where its secret is read and its state: ``brokered``, ``absent`` (the agent has
    no such key here), ``off`` (broker disabled: passed as before), ``not brokered`` (the
    agent's model URL is not one of its hosts: the agent and its commands see the real key),
    ``missing``/``unreadable`` (a configured credential without its secret: the run is
    refused). Secrets are only tested for presence, never shown."""
    from corral.errors import CorralError
    from corral.netproxy import brokerconfig as bc
    from corral.netproxy.local import agent_config_files, model_urls
    from corral.supervisor.run import PRESETS

    out: dict[str, Any] = {"enabled": bc.enabled(cfg), "required_by": bc.required(cfg),
                           "credentials": []}
    try:
        todo: list[tuple[Any, list[tuple[str, str]]]] = [(s, []) for s in bc.specs(cfg, None)]
        for binary, preset in PRESETS.items():
            urls = model_urls([binary], environ, agent_config_files(
                preset.config_dir, preset.config_env, preset.config_subdir))
            todo += [(s, urls) for s in bc.specs(cfg, preset.name) if s.preset]
    except CorralError as exc:
        out["error"] = exc.message
        return out
    for spec, urls in todo:
        out["credentials"].append(_broker_entry(cfg, spec, urls, environ, out["enabled"]))
    return out


def _broker_entry(cfg: Any, spec: Any, urls: list[tuple[str, str]],
                  environ: Mapping[str, str], enabled: bool) -> dict[str, Any]:
    from pathlib import Path

    from corral.netproxy import brokerconfig as bc

    kind, where = spec.source
    e: dict[str, Any] = {"name": spec.name, "kind": spec.kind, "agent": spec.preset,
                         "hosts": list(spec.hosts), "origin": spec.origin}
    present: bool | None
    if kind == "env":
        e["source"] = f"${where}"
        present = bool(environ.get(where, "").strip())
    elif kind == "file":
        lf = bc.LOGIN_FILES[spec.preset]
        path = lf.path(environ)
        e["source"] = f"{path} ({where.partition(':')[2]})"
        try:
            doc = json.loads(path.read_bytes()) if not path.is_symlink() else None
        except (OSError, ValueError):
            doc = None
        present = bc.login_field(doc, tuple(where.partition(":")[2].split("."))) is not None
    else:
        from corral.credentials import get

        e["source"] = f"keyring {where}"
        service, _, user = where.rpartition("/")
        try:
            present = bool(get(cfg, Path(cfg.corral_home), service, user, "secrets")[0])
        except Exception as exc:  # a keyring backend's own error: said, not raised
            present, e["why"] = None, f"cannot read it: {exc}"
    off = bc.off_model_urls(spec, urls)
    if present is None:
        e["state"] = "unreadable"
    elif not present:
        e["state"] = "absent" if spec.preset else "missing"
        if not spec.preset:
            e["why"] = "no secret there: corral run refuses to start"
    elif not enabled:
        e["state"], e["why"] = "off", "the broker is disabled: passed to the sandbox as before"
    elif off:
        e["state"] = "not brokered"
        e["why"] = (f"the agent's model URL {off[0][0]} (from {off[0][1]}) is not one of its "
                    f"hosts over https: the agent and its commands see the real key; add the "
                    f"host to [secrets.broker.credentials.{spec.name}] hosts")
    else:
        e["state"] = "brokered"
    return e


_BROKER_PROBLEMS = ("not brokered", "missing", "unreadable")


def secrets_ok(report: dict[str, Any]) -> bool:
    """Nothing visible, and no credential the broker should hold that it cannot."""
    broker = report.get("broker") or {}
    return all(x["hidden"] for x in [*report["files"], *report["env"]]) and not broker.get(
        "error") and not any(c["state"] in _BROKER_PROBLEMS for c in broker.get(
            "credentials", []))


def render_secrets(report: dict[str, Any], as_json: bool) -> str:
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
    lines += _render_broker(report.get("broker"))
    visible = sum(not x["hidden"] for x in [*report["files"], *report["env"]])
    lines.append("")
    lines.append("every credential found is hidden from sandboxed commands" if not visible
                 else f"{visible} visible to sandboxed commands (re-allowed by a profile, "
                 "shell_environment_policy or the profile in force)")
    return "\n".join(lines)


def _render_broker(b: dict[str, Any] | None) -> list[str]:
    if b is None:
        return []
    state = "enabled" if b["enabled"] else "disabled ([secrets.broker] enabled = false)"
    if b["required_by"]:
        state += f", required by {b['required_by']}"
    lines = [f"credential broker (corral run): {state}"]
    if b.get("error"):
        return [*lines, f"  [ERROR       ] {b['error']}"]
    absent = [c["name"] for c in b["credentials"] if c["state"] == "absent"]
    for c in b["credentials"]:
        if c["state"] == "absent":
            continue
        mark = c["state"].upper() if c["state"] in _BROKER_PROBLEMS else c["state"]
        who = f"{c['agent']} " if c["agent"] else ""
        line = (f"  [{mark:<12}] {c['name']} ({who}{c['kind']}) from {c['source']} -> "
                f"{', '.join(c['hosts'])}")
        lines.append(line + (f": {c['why']}" if c.get("why") else ""))
    if absent:
        lines.append(f"  not set here (nothing to hold): {', '.join(absent)}")
    bad = sum(c["state"] in _BROKER_PROBLEMS for c in b["credentials"])
    if bad:
        lines.append(f"  {bad} credential(s) the broker cannot hold (see above)")
    return lines
