"""SHA-256 for the emit path without loading OpenSSL.

``hashlib`` loads OpenSSL's libcrypto (~3 ms of every ``corral exec``, which hashes a few short
records and ids). CPython's own SHA-256 (``_sha256``; ``_sha2`` from 3.12) gives the same digest
and is as fast on such inputs; from ``_LARGE`` bytes on, hashlib's OpenSSL (several times faster
there, with SHA extensions) is imported and used.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_LARGE = 16 * 1024


def _builtin() -> Callable[[bytes], Any]:
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # CPython 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found]  # 3.12+
        except ImportError:  # another interpreter: hashlib after all
            from hashlib import sha256
    return sha256  # type: ignore[no-any-return]


_small = _builtin()


def _impl(data: bytes) -> Any:
    if len(data) < _LARGE:
        return _small(data)
    import hashlib

    return hashlib.sha256(data)


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data``, hex (``hashlib.sha256(data).hexdigest()``)."""
    return str(_impl(data).hexdigest())


def sha256_bytes(data: bytes) -> bytes:
    """The SHA-256 of ``data`` (``hashlib.sha256(data).digest()``)."""
    return bytes(_impl(data).digest())
