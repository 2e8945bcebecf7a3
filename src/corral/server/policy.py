"""Server-managed policy: versioned requirements per group, signed per device.

``corral server policy set FILE... [--group G]`` validates each file as a requirements file
(the same schema and ``file:line:col`` errors as ``/etc/corral/requirements.toml``), composes
them, and stores the result as the next policy version of the group (``*``: every device; a
team name from the enrolment token; ``device:ID``: one machine). Every change is also an event
in the log (``corral.fleet.policy.set``: who, what, the version and the unified diff).

A device's bundle is the composition of ``*``, its groups (sorted) and ``device:ID``, with the
same rules as the machine's own sources (allowed lists intersect, denies accumulate, ...), in
the signed-bundle envelope of ``corral.config.bundle`` plus ``policy_version`` (the server's
revision: a machine refuses a lower one than it holds) and ``device`` (refused by any other
device). The key (``keys/policy-signing.key``, Ed25519, 0600) is not the checkpoint key; its
public half is pinned by every machine at enrolment.
"""

from __future__ import annotations

import base64
import difflib
import os
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from corral.errors import ConfigError, CorralError
from corral.server.fleetdb import ALL, Device, FleetStore, Policy, record
from corral.server.store.base import Store

POLICY_KEY = "keys/policy-signing.key"


def _err(message: str, hint: str | None = None) -> CorralError:
    return CorralError("server policy", message, hint)


def policy_key(data: Path) -> Ed25519PrivateKey:
    """The policy-signing key, made on first use (0600, beside the checkpoint key)."""
    path = data / POLICY_KEY
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
    st = path.stat()
    if st.st_mode & 0o077:
        raise _err(f"policy key {path} is accessible to other users", f"chmod 600 {path}")
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise _err(f"policy key {path} is not an Ed25519 key")
    return loaded


def public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def check_group(group: str) -> str:
    if group == ALL:
        return group
    name = group[7:] if group.startswith("device:") else group
    if not name or not all(c.isalnum() or c in "._-" for c in name):
        raise _err(f"bad group {group!r}", "use *, a group name (letters, digits, . _ -) or "
                   "device:ID")
    return group


def read_files(files: list[Path]) -> str:
    """The files, each validated as requirements, composed and written as one TOML text."""
    from corral.config.requirements import compose_documents, validated
    from corral.config.toml_io import read_toml_file

    docs = []
    for f in files:
        try:
            tf = read_toml_file(f)
            docs.append((validated(tf), str(f)))
        except ConfigError as exc:
            raise _err(exc.message) from None
    return to_toml(compose_documents(docs))


def to_toml(data: dict[str, Any]) -> str:
    import tomlkit

    return tomlkit.dumps(data) if data else ""


def set_policy(fleet: FleetStore, store: Store, group: str, body: str, author: str,
               files: list[str]) -> tuple[Policy, str]:
    """Store ``body`` as the group's next version; (policy, unified diff). The change is an
    event in the log before the command reports success."""
    group = check_group(group)
    before = fleet.current_policies().get(group)
    old = before.body if before else ""
    diff = "".join(difflib.unified_diff(
        old.splitlines(keepends=True), body.splitlines(keepends=True),
        f"{group} v{before.version}" if before else f"{group} (none)", f"{group} (new)"))
    if before is not None and old == body:
        return before, ""
    p = fleet.add_policy(group, body, author)
    record(store, "corral.fleet.policy.set", {
        "fleet.policy.version": p.version, "fleet.policy.group": group,
        "fleet.policy.sha256": p.sha256, "fleet.policy.author": author,
        "fleet.policy.files": files, "fleet.policy.diff": diff})
    return p, diff


def compose_for(fleet: FleetStore, device: Device) -> tuple[str, int]:
    """(requirements TOML, policy version) for one device."""
    import tomllib

    from corral.config.requirements import compose_documents

    current = fleet.current_policies()
    docs = [(tomllib.loads(current[g].body), f"policy {g} v{current[g].version}")
            for g in device.targets if g in current and current[g].body]
    return to_toml(compose_documents(docs)), fleet.policy_version()


def bundle_for(fleet: FleetStore, device: Device, key: Ed25519PrivateKey,
               ttl_seconds: int) -> tuple[bytes, int]:
    """The signed envelope for ``device`` and its policy version."""
    from corral.config.bundle import sign_bundle

    text, version = compose_for(fleet, device)
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    now = int(time.time())
    return sign_bundle(text, raw, now, now + ttl_seconds,
                       {"policy_version": version, "device": device.id}), version
