"""Domain policy: patterns, precedence, managed-only, network_rule entries, ask/cache/coalesce."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.errors import CorralError
from corral.netproxy import AskAnswer, NetworkQuestion, PolicyInputs, build_policy
from corral.netproxy.decide import SessionAsker
from corral.netproxy.policy import DomainPattern


def verdict(inputs: PolicyInputs, host: str, proto: str = "https") -> tuple[str, str, bool]:
    v = build_policy(inputs).evaluate(host, proto)
    return v.action, v.source, v.limited


@pytest.mark.parametrize(
    ("pattern", "host", "hit"),
    [
        ("example.com", "example.com", True),
        ("example.com", "a.example.com", False),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("**.example.com", "example.com", True),
        ("**.example.com", "x.example.com", True),
        ("**.example.com", "badexample.com", False),
        ("*.example.com", "notexample.com", False),
        ("EXAMPLE.COM.", "example.com", True),
        ("bücher.example", "xn--bcher-kva.example", True),
        ("*", "anything.test", True),
        ("0x7f.1", "127.0.0.1", True),
    ],
)
def test_patterns(pattern: str, host: str, hit: bool) -> None:
    assert DomainPattern.parse(pattern).matches(host) is hit


@pytest.mark.parametrize("bad", ["ex*ample.com", "*", "a.*.com", "**", "*.", "foo..bar"])
def test_bad_patterns_fail_clearly(bad: str) -> None:
    if bad == "*":
        DomainPattern.parse(bad)
        return
    with pytest.raises(CorralError) as err:
        DomainPattern.parse(bad)
    assert err.value.control == "network" and repr(bad) in err.value.message


def test_deny_beats_allow_and_limited_beats_allow() -> None:
    inp = PolicyInputs(domains={"**.example.com": "allow", "bad.example.com": "deny",
                                "ro.example.com": "limited"})
    assert verdict(inp, "example.com")[0] == "allow"
    assert verdict(inp, "bad.example.com")[0] == "deny"
    assert verdict(inp, "ro.example.com") == ("allow", "config", True)
    assert verdict(inp, "other.test")[0] == "ask"


def test_network_rules_carry_file_and_line_and_protocol() -> None:
    inp = PolicyInputs(network_rules=[
        ("pypi.org", "https", "allow", "default.rules:3"),
        ("evil.test", None, "forbidden", "team.rules:9"),
        ("pypi.org", "http", "prompt", "default.rules:4"),
    ])
    assert verdict(inp, "pypi.org", "https") == ("allow", "default.rules:3", False)
    assert verdict(inp, "pypi.org", "http") == ("ask", "default.rules:4", False)
    assert verdict(inp, "other.org", "http")[0] == "ask"
    assert verdict(inp, "evil.test", "socks5_tcp") == ("deny", "team.rules:9", False)
    with pytest.raises(CorralError, match="protocol 'gopher'"):
        build_policy(PolicyInputs(network_rules=[("a.test", "gopher", "allow", "x.rules:1")]))


def test_managed_only_ignores_user_allows_but_keeps_user_narrowing() -> None:
    inp = PolicyInputs(
        domains={"user.test": "allow", "**.corp.test": "allow", "x.corp.test": "deny",
                 "ro.corp.test": "limited"},
        allow_local=["127.0.0.1:80"],
        managed_domains={"**.corp.test": "allow"},
        managed_only=True,
        managed_source="managed:/etc/corral/requirements.toml",
    )
    pol = build_policy(inp)
    assert pol.allow_local == ()
    assert verdict(inp, "user.test") == ("deny", "managed:/etc/corral/requirements.toml", False)
    assert verdict(inp, "a.corp.test") == ("allow", "managed:/etc/corral/requirements.toml", False)
    assert verdict(inp, "x.corp.test")[0] == "deny"
    assert verdict(inp, "ro.corp.test") == ("allow", "config", True)


def test_managed_deny_beats_user_allow_without_managed_only() -> None:
    inp = PolicyInputs(domains={"x.test": "allow"}, managed_domains={"x.test": "deny"})
    assert verdict(inp, "x.test") == ("deny", "managed", False)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"([a-z0-9]{1,10}\.){0,3}[a-z][a-z0-9]{0,9}", fullmatch=True),
       st.sampled_from(["", "*.", "**."]))
def test_deny_always_wins(name: str, prefix: str) -> None:
    inp = PolicyInputs(domains={"*": "allow", f"{prefix}{name}": "deny"})
    pol = build_policy(inp)
    for host in (name, f"a.{name}"):
        if DomainPattern.parse(prefix + name).matches(host):
            assert pol.evaluate(host, "https").action == "deny"


# --- asking ----------------------------------------------------------------------------------

def test_concurrent_questions_share_one_prompt_and_answers_are_cached() -> None:
    calls: list[NetworkQuestion] = []
    release = threading.Event()

    def ask(q: NetworkQuestion) -> AskAnswer:
        calls.append(q)
        release.wait(5)
        return AskAnswer(True, source="user")

    async def run() -> None:
        asker = SessionAsker(ask)
        q = NetworkQuestion("new.test", 443, "https")
        tasks = [asyncio.create_task(asker.resolve(q)) for _ in range(20)]
        await asyncio.sleep(0.1)
        release.set()
        results = await asyncio.gather(*tasks)
        assert all(r.allow for r in results)
        again = await asker.resolve(q)
        assert again.allow and again.source == "session grant"
        other_port = await asker.resolve(NetworkQuestion("new.test", 8443, "https"))
        assert other_port.allow

    asyncio.run(run())
    assert [(c.host, c.port) for c in calls] == [("new.test", 443), ("new.test", 8443)]


def test_async_asker_denial_timeout_and_failure() -> None:
    async def deny(q: NetworkQuestion) -> bool:
        return False

    async def slow(q: NetworkQuestion) -> bool:
        await asyncio.sleep(10)
        return True

    def broken(q: NetworkQuestion) -> bool:
        raise RuntimeError("boom")

    async def run() -> None:
        q = NetworkQuestion("h.test", 443, "https")
        r = await SessionAsker(deny).resolve(q)
        assert not r.allow and r.source == "user"
        r = await SessionAsker(slow, timeout=0.05).resolve(q)
        assert (r.allow, r.reason) == (False, "ask_timeout")
        r = await SessionAsker(broken).resolve(q)
        assert (r.allow, r.reason) == (False, "ask_failed")
        r = await SessionAsker(None).resolve(q)
        assert not r.allow and "no one to ask" in r.reason

    asyncio.run(run())


def test_allow_once_is_not_cached() -> None:
    n = []

    def ask(q: NetworkQuestion) -> AskAnswer:
        n.append(q)
        return AskAnswer(True, source="reviewer", remember=False)

    async def run() -> None:
        asker = SessionAsker(ask)
        q = NetworkQuestion("h.test", 443, "https")
        assert (await asker.resolve(q)).source == "reviewer"
        assert (await asker.resolve(q)).source == "reviewer"

    asyncio.run(run())
    assert len(n) == 2


def test_event_attributes_and_question_action() -> None:
    from corral.netproxy import NetworkDecision
    from corral.types import ActionKind

    cases = {
        "default.rules:7": "rule", "managed:/etc/corral/requirements.toml": "requirements",
        "address:private": "address_check", "session grant": "user", "reviewer": "user",
        "policy": "default", "proxy": "proxy", "config": "user",
    }
    for source, kind in cases.items():
        d = NetworkDecision("h.test", 443, "https", None, "deny", source, "denied")
        a = d.attributes()
        assert a["network.policy.source"] == kind
        assert a["network.transport.protocol"] == "https_connect"
        assert "http.request.method" not in a and source in str(a["network.policy.reason"])
    a = NetworkDecision("h.test", 80, "http", "GET", "allow", "config", "allowed").attributes()
    assert a["http.request.method"] == "GET"
    act = NetworkQuestion("h.test", 443, "https").action("s-1")
    assert act.kind is ActionKind.NETWORK and act.details["host"] == "h.test"
