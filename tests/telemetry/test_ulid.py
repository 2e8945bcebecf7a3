from __future__ import annotations

import re
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.telemetry.ulid import UlidGenerator, decode_time_ms, new_ulid

ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def test_format_and_time() -> None:
    gen = UlidGenerator()
    u = gen.new(now_ms=1_700_000_000_123)
    assert ULID.match(u)
    assert decode_time_ms(u) == 1_700_000_000_123
    assert ULID.match(new_ulid())


def test_monotonic_within_one_millisecond() -> None:
    gen = UlidGenerator()
    ids = [gen.new(now_ms=42) for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000
    assert {decode_time_ms(i) for i in ids} == {42}


def test_clock_going_backwards_never_reorders() -> None:
    gen = UlidGenerator()
    a = gen.new(now_ms=1000)
    b = gen.new(now_ms=900)
    assert b > a


def test_threads_get_unique_ids() -> None:
    gen = UlidGenerator()
    out: list[str] = []

    def work() -> None:
        out.extend(gen.new() for _ in range(2000))

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(set(out)) == 8000


@settings(deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**48 - 1), min_size=1, max_size=50))
def test_ids_sort_like_emission_order(times: list[int]) -> None:
    gen = UlidGenerator()
    ids = [gen.new(now_ms=t) for t in sorted(times)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
