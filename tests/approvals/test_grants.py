"""Grants: scopes, expiry, revocation, once-consumption, persistent rules lines, events."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from corral.approvals import Choice, GrantStore, Kind, Question, Scope, parse_expiry
from corral.errors import CorralError


def test_session_grant_only_in_its_session(store: GrantStore) -> None:
    g = store.add("shell", "session", ["git", "push"], session_id="s1")
    assert store.find("shell", ["git", "push", "origin", "main"], session_id="s1") == g
    assert store.find("shell", ["git", "push"], session_id="s2") is None
    assert store.find("shell", ["git", "push"]) is None
    # prefix semantics: shorter command or different token does not match
    assert store.find("shell", ["git"], session_id="s1") is None
    assert store.find("shell", ["git", "pull"], session_id="s1") is None
    # exact program: a path to git is not the same program token
    assert store.find("shell", ["/usr/bin/git", "push"], session_id="s1") is None


def test_project_grant_only_in_its_project(store: GrantStore) -> None:
    store.add("shell", "project", ["make", "test"], project="/work/a")
    assert store.find("shell", ["make", "test"], project="/work/a", session_id="x")
    assert store.find("shell", ["make", "test"], project="/work/b") is None
    assert store.find("shell", ["make", "test"]) is None


def test_persistent_grant_everywhere(store: GrantStore) -> None:
    store.add("shell", "persistent", ["cargo", "test"])
    assert store.find("shell", ["cargo", "test", "--all"], session_id="any", project="/x")
    assert store.find("shell", ["cargo", "test"])


def test_once_grant_is_consumed(store: GrantStore) -> None:
    g = store.add("shell", "once", ["rm", "-rf", "build"], session_id="s1")
    got = store.find("shell", ["rm", "-rf", "build"], session_id="s1")
    assert got is not None and got.id == g.id and got.consumed_at is not None
    assert store.find("shell", ["rm", "-rf", "build"], session_id="s1") is None
    assert store.list() == []
    assert store.list(active_only=False)[0].consumed_at is not None
    with pytest.raises(CorralError, match="already used"):
        store.revoke(g.id)


def test_standing_grant_preferred_over_once(store: GrantStore) -> None:
    once = store.add("shell", "once", ["make", "lint"], session_id="s1")
    sess = store.add("shell", "session", ["make", "lint"], session_id="s1")
    assert store.find("shell", ["make", "lint"], session_id="s1") == sess
    assert store.get(once.id).consumed_at is None  # type: ignore[union-attr]


def test_kinds_do_not_cross(store: GrantStore) -> None:
    store.add("shell", "session", ["make", "deploy"], session_id="s1")
    assert store.find("escalation", ["make", "deploy"], session_id="s1") is None
    assert store.find("patch", ["make", "deploy"], session_id="s1") is None
    store.add("escalation", "session", ["make", "deploy"], session_id="s1")
    assert store.find("escalation", ["make", "deploy"], session_id="s1")


def test_expiry(store: GrantStore) -> None:
    now = 1_900_000_000.0
    g = store.add("shell", "session", ["make", "test"], session_id="s", now=now,
                  expires_at=parse_expiry("30m", now))
    assert g.expires_at == now + 1800
    assert store.find("shell", ["make", "test"], session_id="s", now=now + 1799)
    assert store.find("shell", ["make", "test"], session_id="s", now=now + 1800) is None
    assert store.list(now=now + 10) == [g]
    assert store.list(now=now + 3600) == []
    assert store.list(active_only=False, now=now + 3600) == [g]


@pytest.mark.parametrize("text,seconds", [("30m", 1800), ("1h", 3600), ("2d", 172800),
                                          ("1w", 604800), ("90s", 90)])
def test_parse_expiry_durations(text: str, seconds: int) -> None:
    assert parse_expiry(text, 1000.0) == 1000.0 + seconds


def test_parse_expiry_absolute_and_bad() -> None:
    assert parse_expiry("2030-01-01T00:00Z", 0) == 1893456000
    assert parse_expiry("2030-01-01T01:00:00+01:00", 0) == 1893456000
    assert parse_expiry("2030-01-01T00:00", 0) == 1893456000  # no zone: UTC
    for bad in ("soon", "0h", "-1h", "1y", "2020-01-01T00:00Z", ""):
        with pytest.raises(CorralError) as exc:
            parse_expiry(bad, time.time())
        assert "\n" not in exc.value.line()


def test_expired_at_add_refused(store: GrantStore) -> None:
    with pytest.raises(CorralError, match="not in the future"):
        store.add("shell", "session", ["make"], session_id="s", expires_at=time.time() - 1)


def test_revoke(store: GrantStore) -> None:
    g = store.add("shell", "project", ["make", "test"], project="/p")
    r = store.revoke(g.id, by="user")
    assert r.revoked_at is not None and r.revoked_by == "user"
    assert store.find("shell", ["make", "test"], project="/p") is None
    assert store.list() == []
    with pytest.raises(CorralError, match="already revoked"):
        store.revoke(g.id)
    with pytest.raises(CorralError, match="no grant with id 'g-nope'"):
        store.revoke("g-nope")


def test_validation(store: GrantStore) -> None:
    cases = [
        (("shell", "session", ["make"]), {}, "needs the session id"),
        (("shell", "project", ["make"]), {"project": "rel/path"}, "absolute path"),
        (("shell", "forever", ["make"]), {}, "unknown grant scope"),
        (("files", "once", ["make"]), {}, "unknown grant kind"),
        (("shell", "once", []), {}, "non-empty pattern"),
        (("shell", "once", ["make", "x"]), {"granted_by": "agent"}, "unknown granter"),
        (("escalation", "persistent", ["make", "x"]), {}, "once or for the session only"),
        (("escalation", "project", ["make", "x"]), {"project": "/p"}, "session only"),
        (("escalation", "once", ["make", "x"]), {"granted_by": "automated_reviewer"},
         "person's approval"),
        (("network", "session", ["*", "443", "https"]), {"session_id": "s"}, "no wildcards"),
        (("network", "persistent", ["a.com", "443", "https"]), {}, "cannot pin a port"),
        (("shell", "persistent", ["make", "x"]), {"expires_at": time.time() + 60},
         "cannot expire"),
        (("shell", "persistent", ["echo", "a\nb"]), {}, "control characters"),
    ]
    for args, kw, needle in cases:
        with pytest.raises(CorralError) as exc:
            store.add(*args, **kw)  # type: ignore[arg-type]
        assert needle in exc.value.line(), (args, exc.value.line())
        assert "\n" not in exc.value.line()
    assert store.list(active_only=False) == []


def test_network_grants(store: GrantStore) -> None:
    store.add("network", "session", ["API.example.com", "*", "https"], session_id="s")
    assert store.find("network", ["api.example.com", "443", "https"], session_id="s")
    assert store.find("network", ["api.example.com.", "8443", "https"], session_id="s")
    assert store.find("network", ["api.example.com", "80", "http"], session_id="s") is None
    assert store.find("network", ["evil.example.com", "443", "https"], session_id="s") is None
    assert store.find("shell", ["api.example.com", "443", "https"], session_id="s") is None


def _policy_decision(rules: Path, argv: list[str]) -> str | None:
    from corral.rules import load_policy

    return load_policy(None, extra_files=[rules], include_configured=False).check(argv).get(
        "decision")


def test_persistent_grant_writes_and_revoke_removes_rule(store: GrantStore) -> None:
    rules = store.rules_file
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text('prefix_rule(pattern=["rm"], decision="forbidden")\n')
    g = store.add("shell", "persistent", ["git", "push", "--tags"])
    text = rules.read_text()
    assert 'prefix_rule(pattern=["rm"], decision="forbidden")\n' in text
    line = text.splitlines()[-1]
    assert line.startswith('prefix_rule(pattern=["git", "push", "--tags"], decision="allow")')
    assert f"# corral grant {g.id} by user at " in line
    assert _policy_decision(rules, ["git", "push", "--tags", "origin"]) == "allow"
    # a second grant for the same prefix does not duplicate the line...
    g2 = store.add("shell", "persistent", ["git", "push", "--tags"])
    assert rules.read_text().count("--tags") == 1
    # ...and revoking one keeps the line while the other is active
    store.revoke(g.id)
    assert rules.read_text().count("--tags") == 1
    store.revoke(g2.id)
    assert "--tags" not in rules.read_text()
    assert 'prefix_rule(pattern=["rm"], decision="forbidden")' in rules.read_text()
    assert _policy_decision(rules, ["git", "push", "--tags"]) is None


def test_persistent_network_grant_writes_network_rule(store: GrantStore) -> None:
    from corral.rules import load_policy

    g = store.add("network", "persistent", ["PyPI.org", "*", "https"])
    policy = load_policy(None, extra_files=[store.rules_file], include_configured=False)
    assert [(r.host, r.protocol, r.decision.value) for r in policy.network_rules] == [
        ("pypi.org", "https", "allow")]
    assert policy.load_errors == []
    store.revoke(g.id)
    assert "pypi.org" not in store.rules_file.read_text()


@pytest.mark.parametrize("tokens", [
    ["echo", 'say "hi"'], ["echo", "back\\slash"], ["grep", "-e", "é ü ✓"], ["echo", ""],
    ["printf", "%s'x'"], ["echo", "$(not-run)"],
])
def test_tokens_survive_the_rules_file(store: GrantStore, tokens: list[str]) -> None:
    store.add("shell", "persistent", tokens)
    assert _policy_decision(store.rules_file, tokens) == "allow"
    assert _policy_decision(store.rules_file, [tokens[0], "other"]) is None


def test_events_match_the_telemetry_schema(store: GrantStore) -> None:
    from corral.telemetry.schema import ApprovalGrant, ApprovalRevoke

    g = store.add("shell", "project", ["make", "test"], project="/p",
                  expires_at=time.time() + 60, granted_by="remote")
    ev = ApprovalGrant(**g.event())
    assert ev.grant_id == g.id and ev.scope == "project" and ev.pattern == "make test"
    assert ev.granted_by == "user" and ev.expires_unix == int(g.expires_at or 0)
    r = store.revoke(g.id)
    rev = ApprovalRevoke(**r.revoke_event())
    assert rev.grant_id == g.id and rev.reason == "revoked by user"


def test_record_choice(store: GrantStore) -> None:
    q = Question(kind=Kind.SHELL, argv=("make", "test", "-j4"), reason="rule says prompt",
                 session_id="s1", project="/p", pattern=("make", "test"))
    assert store.record_choice(q, Choice.ONCE) is None
    assert store.record_choice(q, Choice.DENY) is None
    g = store.record_choice(q, Choice.PROJECT)
    assert g is not None and g.scope is Scope.PROJECT and g.pattern == ("make", "test")
    assert store.find("shell", ["make", "test", "-j1"], project="/p") == g


def test_reopen_sees_grants_and_files_are_private(home: Path) -> None:
    s1 = GrantStore()
    g = s1.add("shell", "persistent", ["make", "test"])
    s1.close()
    s2 = GrantStore(home / "state" / "grants.db")
    assert s2.list() == [g]
    assert (home / "state" / "grants.db").stat().st_mode & 0o077 == 0
    assert s2.rules_file == home / "rules" / "default.rules"
    s2.close()
