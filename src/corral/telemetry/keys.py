"""The journal's Ed25519 signing key: ``$CORRAL_HOME/keys/journal-signing.key`` (0600).

It lives under ``$CORRAL_HOME``, which the sandbox can neither read nor write, so an agent cannot
forge checkpoints. The public half is also written to ``journal-signing.pub`` so that someone who
may not read the private key can still verify.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from corral.errors import CorralError

KEY_NAME = "journal-signing.key"
PUB_NAME = "journal-signing.pub"


def key_dir(home: Path) -> Path:
    return home / "keys"


def load_or_create_signing_key(home: Path) -> Ed25519PrivateKey:
    """The signing key, created (0600, in a 0700 directory) on first use."""
    d = key_dir(home)
    path = d / KEY_NAME
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another supervisor won the race: use its key
                return load_or_create_signing_key(home)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            _write_public(d, key.public_key())
            return key
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CorralError(
                "telemetry", f"journal signing key {path} is accessible to other users "
                f"(mode {stat.S_IMODE(mode):04o})", hint=f"chmod 600 {path}")
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise CorralError("telemetry", f"cannot use journal signing key {path}: {exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise CorralError("telemetry", f"journal signing key {path} is not an Ed25519 key")
    if not (d / PUB_NAME).exists():
        _write_public(d, loaded.public_key())
    return loaded


def _write_public(d: Path, pub: Ed25519PublicKey) -> None:
    tmp = d / (PUB_NAME + ".tmp")
    tmp.write_text(public_hex(pub) + "\n")
    tmp.replace(d / PUB_NAME)


def public_hex(pub: Ed25519PublicKey) -> str:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def load_public_key(home: Path) -> Ed25519PublicKey | None:
    """The trusted verification key: from the private key if readable, else the .pub file."""
    d = key_dir(home)
    try:
        pem = (d / KEY_NAME).read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        if isinstance(key, Ed25519PrivateKey):
            return key.public_key()
    except (OSError, ValueError):
        pass
    try:
        raw = bytes.fromhex((d / PUB_NAME).read_text().strip())
        return Ed25519PublicKey.from_public_bytes(raw)
    except (OSError, ValueError):
        return None
