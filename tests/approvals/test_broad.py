"""The over-broad prefix list: what may never be granted, and what may."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.approvals import GrantStore, why_too_broad
from corral.errors import CorralError

REFUSED = [
    ["bash", "-c"], ["bash", "-lc"], ["sh", "-c"], ["zsh", "-c"], ["bash"], ["/bin/bash", "-lc"],
    ["python"], ["python3"], ["python", "-c"], ["python3", "-c"], ["/usr/bin/python3.12", "-c"],
    ["python3", "-m"], ["node"], ["node", "-e"], ["perl", "-e"], ["ruby", "-e"], ["php", "-r"],
    ["lua", "-e"], ["pwsh", "-Command"], ["osascript"], ["git"], ["env"], ["env", "FOO=1"],
    ["sudo"], ["sudo", "apt", "install"], ["doas", "ls"], ["xargs"], ["xargs", "rm"], ["find"],
    ["find", ".", "-name", "*.py"], ["npx"], ["uvx"], ["pip"], ["npm"], ["git", "-c"],
    ["git", "-c", "core.pager=less", "log"], ["npm", "exec"], ["npm", "exec", "foo"],
    ["uv", "run"], ["uv", "run", "pytest"], ["pip", "install", "requests"], ["timeout", "5"],
    ["nohup"], ["/usr/bin/env", "python3"], ["awk"], ["sed", "-e"], ["bash", "-xc"], [],
    ["python3", "-m", "pip"], ["docker", "run"], ["ssh", "host"], ["corral", "grants"],
]

ALLOWED = [
    ["git", "status"], ["git", "push"], ["git", "commit", "-m"], ["npm", "test"],
    ["npm", "run", "build"], ["pytest"], ["python3", "-m", "pytest"], ["python3", "manage.py"],
    ["bash", "-c", "make test"], ["make", "test"], ["cargo", "test"], ["ls"], ["rg", "TODO"],
    ["npx", "prettier"], ["pip", "list"], ["go", "test"], ["node", "build.js"],
]


@pytest.mark.parametrize("pattern", REFUSED, ids=lambda p: " ".join(p) or "<empty>")
def test_refused(pattern: list[str], store: GrantStore) -> None:
    reason = why_too_broad(pattern)
    assert reason, pattern
    with pytest.raises(CorralError) as exc:
        store.add("shell", "persistent", pattern)
    line = exc.value.line()
    assert line.startswith("corral: approvals: ") and "\n" not in line
    # refused for every scope, and for escalation too
    for scope in ("once", "session", "project"):
        with pytest.raises(CorralError):
            store.add("shell", scope, pattern, session_id="s1", project="/p")
    assert store.list(active_only=False) == []
    assert not store.rules_file.exists()


@pytest.mark.parametrize("pattern", ALLOWED, ids=" ".join)
def test_allowed(pattern: list[str]) -> None:
    assert why_too_broad(pattern) is None


@given(st.lists(st.text(max_size=8), max_size=5))
def test_never_crashes(pattern: list[str]) -> None:
    r = why_too_broad(pattern)
    assert r is None or (isinstance(r, str) and "\n" not in r)


@given(st.sampled_from(["sudo", "env", "xargs", "find", "doas", "nohup"]),
       st.lists(st.text(min_size=1, max_size=8), max_size=4))
def test_runners_refused_whatever_follows(head: str, tail: list[str]) -> None:
    assert why_too_broad([head, *tail])
    assert why_too_broad([f"/usr/bin/{head}", *tail])
