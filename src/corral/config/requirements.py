"""Admin requirements: constraints users cannot override.

Sources, lowest to highest: the policy of the corral server this machine is enrolled with
(``corral enroll``: a signed bundle, key pinned at enrolment), ``/etc/corral/requirements.toml``, ``/etc/corral/managed/*.toml``
(sorted; the Linux counterpart of macOS managed preferences), then the signed cloud bundle named
in the system config. Composition is "every constraint holds": allowed-value lists intersect,
deny lists and prefix rules accumulate, flags like ``managed_domains_only`` are OR-ed, and other
scalars take the highest source.

Whenever requirements cannot be trusted (wrong owner or writable by others while corral runs as
a non-root user), read, parsed or verified, the most restrictive settings apply and the reason
is kept in ``Requirements.restrictive_reason``: failing open here would hand the user the keys.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from corral.config.merge import deepcopy, dotted
from corral.config.model import Requirements
from corral.config.schema import REQUIREMENTS_SCHEMA, validate
from corral.config.toml_io import TomlFile, parse_toml_text, read_toml_file
from corral.errors import ConfigError

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from corral.config.bundle import Bundle
    from corral.config.enrolment import Enrolment

MOST_RESTRICTIVE: dict[str, Any] = {
    "allowed_approval_policies": ["untrusted"],
    "allowed_approvals_reviewers": ["user"],
    "allowed_permission_profiles": [":read-only"],
    "default_permissions": ":read-only",
    "network": {"managed_domains_only": True, "domains": {}},
    "allow_managed_hooks_only": True,
    "mcp": {"allowed_servers": []},
}

_INTERSECT = ("allowed_approval_policies", "allowed_approvals_reviewers",
              "allowed_permission_profiles")


class _Untrusted(Exception):
    pass


def _check_owner(path: Path, st: os.stat_result, euid: int) -> None:
    """Requirement files must be root-owned and not writable by group/others (unless we are root)."""
    if euid == 0:
        return
    if st.st_uid != 0:
        raise _Untrusted(f"{path} is owned by uid {st.st_uid}, not root")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _Untrusted(f"{path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})")


def _check_dir(path: Path, euid: int) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    _check_owner(path, st, euid)


def allowed_profiles(value: Any) -> list[str] | None:
    """``allowed_permission_profiles`` as a list (it may be a list or a ``{name = bool}`` table)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return [k for k, v in value.items() if v]
    return list(value)


def _compose(base: dict[str, Any], origins: dict[str, str], layer: dict[str, Any], src: str) -> None:
    for key, value in layer.items():
        if key in _INTERSECT:
            new = allowed_profiles(value) if key == "allowed_permission_profiles" else list(value)
            assert new is not None
            if key in base:
                new = [v for v in base[key] if v in new]
            base[key] = new
            origins[key] = src if key not in origins else f"{origins[key]} + {src}"
        elif key == "rules":
            rules = list(value.get("prefix_rules", []))
            tagged = [dict(r, _source=src) for r in rules]
            existing = base.setdefault("rules", {}).setdefault("prefix_rules", [])
            base["rules"]["prefix_rules"] = tagged + existing  # higher sources first
            origins["rules.prefix_rules"] = src
            for k in ("allowed_exec_boundary", "allowed_exec_boundary_unavailable"):
                if k in value:  # allowed lists intersect, like the top-level ones
                    cur = base["rules"].get(k)
                    base["rules"][k] = [v for v in value[k] if cur is None or v in cur]
                    where = f"rules.{k}"
                    origins[where] = src if cur is None else f"{origins[where]} + {src}"
        elif key == "filesystem":
            deny = base.setdefault("filesystem", {}).setdefault("deny_read", [])
            for p in value.get("deny_read", []):
                if p not in deny:
                    deny.append(p)
            origins["filesystem.deny_read"] = src
        elif key == "network":
            net = base.setdefault("network", {})
            if "managed_domains_only" in value:
                net["managed_domains_only"] = bool(
                    net.get("managed_domains_only", False) or value["managed_domains_only"]
                )
                origins["network.managed_domains_only"] = src
            for dom, dec in value.get("domains", {}).items():
                cur = net.setdefault("domains", {}).get(dom)
                if cur != "deny":  # deny from any admin source sticks
                    net["domains"][dom] = dec
                origins[dotted(("network", "domains", dom))] = src
            if "allow_local" in value:
                net["allow_local"] = list(value["allow_local"])
                origins["network.allow_local"] = src
        elif key == "mcp" and "allowed_servers" in value:  # every source's list holds
            mcp = base.setdefault("mcp", {})
            new = list(value["allowed_servers"])
            if "allowed_servers" in mcp:
                new = [v for v in mcp["allowed_servers"] if v in new]
            mcp["allowed_servers"] = new
            origins["mcp.allowed_servers"] = src if "mcp.allowed_servers" not in origins \
                else f"{origins['mcp.allowed_servers']} + {src}"
        elif key == "allow_managed_hooks_only":
            base[key] = bool(base.get(key, False) or value)
            origins[key] = src
        elif isinstance(value, dict):
            base.setdefault(key, {}).update(deepcopy(value))
            for sub in value:
                origins[dotted((key, sub))] = src
        else:
            base[key] = deepcopy(value)
            origins[key] = src


def compose_documents(docs: list[tuple[dict[str, Any], str]]) -> dict[str, Any]:
    """Requirement documents (data, source name), lowest first, composed so that every
    constraint holds: the same composition as the machine's own sources (for the server's
    policy per device group). Plain data out: no source tags."""
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for doc, src in docs:
        _compose(data, origins, doc, src)
    for rule in data.get("rules", {}).get("prefix_rules", []):
        rule.pop("_source", None)
    return data


def validated(tf: TomlFile) -> dict[str, Any]:
    """A requirements file's data, or ConfigError at ``file:line:col`` of the first problem."""
    return _validated(tf)


def _validated(tf: TomlFile) -> dict[str, Any]:
    problems = validate(tf.data, REQUIREMENTS_SCHEMA)
    if problems:
        path, msg = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{tf.where(path)}: {msg}{more}")
    return tf.data


def restrictive(
    reason: str,
    sources: list[str] | None = None,
    data: dict[str, Any] | None = None,
    origins: dict[str, str] | None = None,
) -> Requirements:
    """The most restrictive settings, over whatever the sources read so far had added
    (their deny-read paths and prefix rules stay in force)."""
    data = deepcopy(data or {})
    origins = dict(origins or {})
    tag = f"most restrictive settings ({reason})"
    for key, value in MOST_RESTRICTIVE.items():
        if key == "network":
            data.setdefault("network", {})["managed_domains_only"] = True
            origins["network.managed_domains_only"] = tag
            continue
        data[key] = deepcopy(value)
        origins[key] = tag
    return Requirements(
        data=data, origins=origins, sources=sources or [], restrictive_reason=reason
    )


def load_requirements(
    system_dir: Path,
    system_config: dict[str, Any],
    cache_dir: Path,
    *,
    euid: int | None = None,
    warnings: list[str] | None = None,
    enrolment: Enrolment | None = None,
    credential: Callable[[], str | None] | None = None,
) -> Requirements:
    """Compose every requirements source; see the module docstring for the fail-closed rules.
    ``credential()`` gives the enrolled device's token, asked only when a fetch is due."""
    euid = os.geteuid() if euid is None else euid
    warnings = warnings if warnings is not None else []
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}
    sources: list[str] = []
    if enrolment is not None:
        problem = _server_policy(enrolment, credential, cache_dir, data, origins, sources,
                                 warnings)
        if problem:
            return restrictive(problem, sources, data, origins)
    files = [system_dir / "requirements.toml"]
    managed = system_dir / "managed"
    try:
        if managed.is_dir():
            files += sorted(managed.glob("*.toml"))
    except OSError as exc:
        return restrictive(f"{managed}: cannot list: {exc.strerror}")
    try:
        if any(f.exists() for f in files):
            _check_dir(system_dir, euid)
        if len(files) > 1:
            _check_dir(managed, euid)
        for f in files:
            if f == files[0] and not f.exists() and not f.is_symlink():
                continue
            tf = read_toml_file(f)
            assert tf.stat is not None
            _check_owner(f, tf.stat, euid)
            _compose(data, origins, _validated(tf), str(f))
            sources.append(str(f))
    except _Untrusted as exc:
        return restrictive(f"requirements refused: {exc}", sources, data, origins)
    except ConfigError as exc:
        return restrictive(f"requirements unusable: {exc.message}", sources, data, origins)

    managed_cfg = system_config.get("managed", {})
    url = managed_cfg.get("requirements_bundle_url")
    if url:
        from corral.config.bundle import BundleRefused, load_cloud_bundle

        pubkey = managed_cfg.get("requirements_bundle_public_key")
        if not pubkey:
            return restrictive(
                "system config names a requirements bundle but pins no "
                "managed.requirements_bundle_public_key", sources, data, origins
            )
        try:
            bundle = load_cloud_bundle(
                url,
                pubkey,
                cache_dir / "requirements-bundle.json",
                ca_file=managed_cfg.get("requirements_bundle_ca_file"),
                refresh_seconds=float(managed_cfg.get("requirements_bundle_refresh_seconds", 300)),
                warnings=warnings,
            )
            tf = parse_toml_text(bundle.requirements_toml, bundle.source)
            _compose(data, origins, _validated(tf), bundle.source)
            sources.append(bundle.source)
        except BundleRefused as exc:
            return restrictive(f"cloud requirements bundle refused: {exc}", sources, data, origins)
        except ConfigError as exc:
            return restrictive(
                f"cloud requirements bundle unusable: {exc.message}", sources, data, origins
            )
    return Requirements(data=data, origins=origins, sources=sources)


def server_policy(enrolment: Enrolment, credential: Callable[[], str | None] | None,
                  cache_dir: Path, warnings: list[str]) -> Bundle:
    """The enrolled server's policy bundle: the cached one while fresh, else fetched (with the
    device's token), verified against the key pinned at enrolment and for this device, never
    older than the cached one. BundleRefused when there is no usable one. Also called
    periodically by the background forwarder, so a long session keeps the cache fresh."""
    from corral.config.bundle import load_cloud_bundle
    from corral.config.enrolment import POLICY_CACHE

    def headers(cached: Bundle | None) -> dict[str, str]:
        from corral import __version__

        token = credential() if credential else None
        out = {"X-Corral-Version": __version__,
               "X-Corral-Policy-Applied": str(cached.version if cached else 0)}
        if token:
            out["Authorization"] = f"Bearer {token}"
        return out

    return load_cloud_bundle(
        enrolment.policy_url, enrolment.policy_public_key, cache_dir / POLICY_CACHE,
        ca_file=enrolment.ca_file, refresh_seconds=enrolment.refresh_seconds,
        warnings=warnings, headers=headers, audience=enrolment.device_id,
        label="server policy", loopback_http=True)


def _server_policy(enrolment: Enrolment, credential: Callable[[], str | None] | None,
                   cache_dir: Path, data: dict[str, Any], origins: dict[str, str],
                   sources: list[str], warnings: list[str]) -> str | None:
    """Compose the enrolled server's policy bundle; the reason when it cannot be used."""
    from corral.config.bundle import BundleRefused

    try:
        bundle = server_policy(enrolment, credential, cache_dir, warnings)
        tf = parse_toml_text(bundle.requirements_toml, bundle.source)
        _compose(data, origins, _validated(tf), bundle.source)
        sources.append(bundle.source)
    except BundleRefused as exc:
        return f"server policy refused: {exc}"
    except ConfigError as exc:
        return f"server policy unusable: {exc.message}"
    except Exception as exc:  # e.g. the keyring failed while asking for the token
        return f"server policy unusable: {exc}"
    return None
