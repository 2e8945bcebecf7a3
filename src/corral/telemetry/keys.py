"""The journal's Ed25519 signing key: ``$CORRAL_HOME/keys/journal-signing.key`` (0600).

It lives under ``$CORRAL_HOME``, which the sandbox can neither read nor write, so an agent cannot
forge checkpoints. The public half is also written to ``journal-signing.pub`` so that someone who
may not read the private key can still verify.

Every ``corral exec`` opens the journal, and ``cryptography`` costs milliseconds to import, so a
key in the PKCS#8 form corral writes is read and checked without it at open (``SigningKey``);
the key object is made at the first signature, usually by the journal's writer thread while the
command runs. Any other PEM form is loaded (and refused if it is not Ed25519) at open.
"""

from __future__ import annotations

import binascii
import os
import stat
import threading
from pathlib import Path

from corral.errors import CorralError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

KEY_NAME = "journal-signing.key"
PUB_NAME = "journal-signing.pub"
# PKCS#8 PrivateKeyInfo for Ed25519 (RFC 8410): version 0, id-Ed25519, a 32-byte seed
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")


def key_dir(home: Path) -> Path:
    return home / "keys"


class SigningKey:
    """An Ed25519 private key known by its 32-byte seed; ``sign`` and ``public_key`` as on
    ``Ed25519PrivateKey``, which is made (importing ``cryptography``) on first use."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._key: Ed25519PrivateKey | None = None
        self._lock = threading.Lock()

    def load(self) -> Ed25519PrivateKey:
        with self._lock:
            if self._key is None:
                self._key = key_from_seed(self._seed)
            return self._key

    def sign(self, data: bytes) -> bytes:
        return self.load().sign(data)

    def public_key(self) -> Ed25519PublicKey:
        return self.load().public_key()


def key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    """``Ed25519PrivateKey.from_private_bytes(seed)``. That classmethod only calls the Rust
    binding's ``ed25519.from_private_bytes``; calling it directly skips importing the
    ``cryptography.hazmat.primitives`` Python modules (~10 of the ~16 ms, the journal's writer
    thread pays it on every ``corral exec``). The same key object; the public API if the
    binding ever moves."""
    try:
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl

        return rust_openssl.ed25519.from_private_bytes(seed)
    except (ImportError, AttributeError):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(seed)


def _seed_of(pem: bytes) -> bytes | None:
    """The seed of an unencrypted PKCS#8 Ed25519 PEM as corral writes it, else None."""
    lines = pem.strip().splitlines()
    if len(lines) < 3 or lines[0] != b"-----BEGIN PRIVATE KEY-----" \
            or lines[-1] != b"-----END PRIVATE KEY-----":
        return None
    try:
        der = binascii.a2b_base64(b"".join(lines[1:-1]))
    except binascii.Error:
        return None
    if len(der) != len(_PKCS8_PREFIX) + 32 or not der.startswith(_PKCS8_PREFIX):
        return None
    return der[len(_PKCS8_PREFIX):]


def load_or_create_signing_key(home: Path) -> SigningKey | Ed25519PrivateKey:
    """The signing key, created (0600, in a 0700 directory) on first use."""
    d = key_dir(home)
    path = d / KEY_NAME
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
        pem = path.read_bytes()
    except OSError as exc:
        raise CorralError("telemetry", f"cannot use journal signing key {path}: {exc}") from exc
    seed = _seed_of(pem)
    loaded: SigningKey | Ed25519PrivateKey = SigningKey(seed) if seed is not None \
        else _load_pem(path, pem)
    if not (d / PUB_NAME).exists():
        _write_public(d, loaded.public_key())
    return loaded


def _load_pem(path: Path, pem: bytes) -> Ed25519PrivateKey:
    """A key file in another PEM form: through ``cryptography`` (refused unless Ed25519)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        loaded = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CorralError("telemetry", f"cannot use journal signing key {path}: {exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise CorralError("telemetry", f"journal signing key {path} is not an Ed25519 key")
    return loaded


def _write_public(d: Path, pub: Ed25519PublicKey) -> None:
    tmp = d / (PUB_NAME + ".tmp")
    tmp.write_text(public_hex(pub) + "\n")
    tmp.replace(d / PUB_NAME)


def public_hex(pub: Ed25519PublicKey) -> str:
    return pub.public_bytes_raw().hex()


def load_public_key(home: Path) -> Ed25519PublicKey | None:
    """The trusted verification key: from the private key if readable, else the .pub file.
    From a private key as corral writes it, only the Rust binding the signer loads anyway
    (``key_from_seed``) is needed, not cryptography's Python modules (~13 ms, paid by every
    forwarding ``corral exec``); they are imported for any other key file."""
    d = key_dir(home)
    try:
        pem = (d / KEY_NAME).read_bytes()
        seed = _seed_of(pem)
        if seed is not None:
            return key_from_seed(seed).public_key()
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = serialization.load_pem_private_key(pem, password=None)
        if isinstance(key, Ed25519PrivateKey):
            return key.public_key()
    except (OSError, ValueError):
        pass
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        raw = bytes.fromhex((d / PUB_NAME).read_text().strip())
        return Ed25519PublicKey.from_public_bytes(raw)
    except (OSError, ValueError):
        return None
