"""The decision and parse caches: bounded, per policy, and never keeping a policy alive."""

from __future__ import annotations

import gc
import weakref

from corral.rules import Policy, analysis, runtime
from corral.rules.runtime import decide


def test_decisions_are_cached_per_policy_and_bounded() -> None:
    policy = Policy()
    first = decide(["bash", "-lc", "ls -la"], policy)
    assert decide(["bash", "-lc", "ls -la"], policy) is first  # a hit: the same object
    assert decide(["bash", "-lc", "ls -la"], Policy()) is not first  # another policy: its own
    for i in range(runtime._CACHE_PER_POLICY + 10):
        decide(["echo", str(i)], policy)
    info = runtime._decider(policy).cache_info()  # type: ignore[attr-defined]
    assert info.currsize == runtime._CACHE_PER_POLICY
    assert decide(["bash", "-lc", "ls -la"], policy) is not first  # evicted, decided afresh
    huge = ["echo", "x" * (runtime._CACHE_MAX_ARGV + 1)]
    assert decide(huge, policy) is not decide(huge, policy)  # too big to keep


def test_a_policy_is_not_kept_alive_by_its_cache() -> None:
    policy = Policy()
    decide(["git", "status"], policy)
    ref = weakref.ref(policy)
    del policy
    gc.collect()
    assert ref() is None


def test_parse_cache_is_bounded_and_skips_long_scripts() -> None:
    analysis.clear_parse_cache()
    a = analysis._cached_parse("ls > out")
    assert analysis._cached_parse("ls > out") is a
    long = "echo " + "y" * analysis._CACHE_MAX_SCRIPT
    assert analysis._cached_parse(long) is not analysis._cached_parse(long)
    for i in range(analysis._CACHE_SIZE + 5):
        analysis._cached_parse(f"echo {i} > f")
    assert analysis._parse_small.cache_info().currsize == analysis._CACHE_SIZE
    assert analysis._cached_parse("ls > out") is not a
