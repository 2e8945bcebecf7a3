"""The emit path's SHA-256 (``corral.telemetry.sha``) is hashlib's, at every size."""

from __future__ import annotations

import hashlib
import os

from hypothesis import given
from hypothesis import strategies as st

from corral.telemetry import sha


@given(st.binary(max_size=4096))
def test_small_inputs_hash_as_hashlib(data: bytes) -> None:
    assert sha.sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert sha.sha256_bytes(data) == hashlib.sha256(data).digest()


def test_inputs_around_the_large_threshold_hash_as_hashlib() -> None:
    for n in (0, 1, 55, 56, 64, sha._LARGE - 1, sha._LARGE, sha._LARGE + 1, 3 * sha._LARGE + 7):
        data = os.urandom(n)
        assert sha.sha256_hex(data) == hashlib.sha256(data).hexdigest(), n
        assert sha.sha256_bytes(data) == hashlib.sha256(data).digest(), n
