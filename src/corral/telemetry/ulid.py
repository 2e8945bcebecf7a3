"""ULIDs for event ids: sortable by time, unique without coordination, and monotonic within a
millisecond (the random part is incremented), so ids order the same way events were emitted."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_RANDOM_MAX = (1 << 80) - 1
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 10 bits -> two digits
_SHIFTS = (70, 60, 50, 40, 30, 20, 10, 0)


def encode(value: int, length: int = 26) -> str:
    """Crockford base32 of a 128-bit integer, most significant digit first."""
    out = []
    for _ in range(length):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def decode_time_ms(ulid: str) -> int:
    """The millisecond timestamp a ULID carries (its first 10 characters)."""
    value = 0
    for ch in ulid[:10].upper():
        idx = _ALPHABET.find(ch)
        if idx < 0:
            raise ValueError(f"not a ULID: {ulid!r}")
        value = (value << 5) | idx
    return value


class UlidGenerator:
    """Thread-safe generator. Within one millisecond the 80-bit random part is incremented; if the
    clock goes backwards the last timestamp is kept, so ids never go backwards either."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0
        self._prefix = ""

    def new(self, now_ms: int | None = None) -> str:
        ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        with self._lock:
            if ms <= self._last_ms:
                ms = self._last_ms
                rand = self._last_rand + 1
                if rand > _RANDOM_MAX:  # 2**80 ids in one ms: borrow the next millisecond
                    ms += 1
                    rand = int.from_bytes(os.urandom(10), "big") >> 1
            else:
                rand = int.from_bytes(os.urandom(10), "big") >> 1  # headroom for increments
            if ms != self._last_ms:
                self._prefix = encode(ms, 10)
            self._last_ms = ms
            self._last_rand = rand
            prefix = self._prefix
        # 80 random bits are exactly 16 base32 digits, two per table lookup.
        pairs = _PAIRS
        return prefix + "".join([pairs[(rand >> s) & 1023] for s in _SHIFTS])


_default = UlidGenerator()


def new_ulid() -> str:
    return _default.new()
