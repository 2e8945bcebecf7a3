"""Approval policies: which categories may prompt under each policy, and bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.approvals import ApprovalPolicy
from corral.approvals.policy import CATEGORIES, GRANULAR_KEYS
from corral.errors import CorralError


@pytest.mark.parametrize("name", ["untrusted", "on-request", "on-failure"])
@pytest.mark.parametrize("category", CATEGORIES)
def test_named_policies_that_ask_may_prompt_every_category(name: str, category: str) -> None:
    p = ApprovalPolicy.from_config(name)
    assert p.name == name
    assert p.may_prompt(category) is True


@pytest.mark.parametrize("category", CATEGORIES)
def test_never_refuses_every_prompt_including_escalation(category: str) -> None:
    p = ApprovalPolicy.from_config("never")
    assert p.may_prompt(category) is False
    assert "never" in p.refusal(category)


def test_default_is_on_request() -> None:
    assert ApprovalPolicy.from_config(None).name == "on-request"


def test_granular_defaults() -> None:
    p = ApprovalPolicy.from_config({"granular": {}})
    assert p.name == "granular"
    assert p.may_prompt("rules") and p.may_prompt("heuristic") and p.may_prompt("mcp")
    assert not p.may_prompt("permissions")
    # network, escalation and patch follow sandbox_approval
    off = ApprovalPolicy.from_config({"granular": {"sandbox_approval": False}})
    assert not off.may_prompt("sandbox") and not off.may_prompt("heuristic")
    assert not off.may_prompt("escalation") and not off.may_prompt("network")
    assert not off.may_prompt("patch")
    assert off.may_prompt("rules")


@pytest.mark.parametrize("flag,category", [
    ("rules", "rules"), ("sandbox_approval", "heuristic"), ("sandbox_approval", "sandbox"),
    ("network", "network"), ("mcp_elicitations", "mcp"), ("request_permissions", "permissions"),
    ("escalation", "escalation"), ("patch", "patch"),
])
@pytest.mark.parametrize("value", [True, False])
def test_each_granular_flag_governs_its_category(flag: str, category: str, value: bool) -> None:
    others = {k: not value for k in GRANULAR_KEYS if k != flag}
    p = ApprovalPolicy.from_config({"granular": {**others, flag: value}})
    assert p.may_prompt(category) is value
    if not value:
        assert f"{flag} = false" in p.refusal(category)


def test_escalation_can_be_turned_off_alone() -> None:
    p = ApprovalPolicy.from_config({"granular": {"escalation": False}})
    assert p.may_prompt("sandbox") and not p.may_prompt("escalation")


@pytest.mark.parametrize("bad,needle", [
    ("always", "unknown approval_policy"),
    ("on_request", "unknown approval_policy"),
    ({"granular": {"rulez": True}}, "unknown granular approval flag(s) rulez"),
    ({"granular": {"rules": "yes"}}, "must be true or false"),
    ({"granular": True}, "must be { granular"),
    ({"never": {}}, "must be { granular"),
    (3, "must be a name or a granular table"),
])
def test_bad_config_is_one_clear_line(bad: object, needle: str) -> None:
    with pytest.raises(CorralError) as exc:
        ApprovalPolicy.from_config(bad)
    assert needle in exc.value.line()
    assert "\n" not in exc.value.line()
    assert exc.value.control == "approvals"


def test_unknown_category_is_refused() -> None:
    with pytest.raises(CorralError, match="unknown approval category"):
        ApprovalPolicy.from_config("on-request").may_prompt("everything")


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=20),
                                                                        c, max_size=4),
                    max_leaves=8))
def test_from_config_never_crashes(value: object) -> None:
    try:
        p = ApprovalPolicy.from_config(value)
    except CorralError as exc:
        assert "\n" not in exc.line()
        return
    for c in CATEGORIES:
        assert isinstance(p.may_prompt(c), bool)


def test_from_the_real_layered_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from corral.config import load_config

    home, system = tmp_path / "home", tmp_path / "etc"
    home.mkdir()
    system.mkdir()
    (home / "config.toml").write_text(
        "[approval_policy.granular]\nrules = false\nescalation = true\n")
    cfg = load_config(tmp_path, home=home, system=system)
    p = ApprovalPolicy.from_config(cfg.get("approval_policy"))
    assert p.name == "granular" and not p.may_prompt("rules") and p.may_prompt("escalation")
    cfg = load_config(tmp_path, overrides=["approval_policy=never"], home=home, system=system)
    assert ApprovalPolicy.from_config(cfg.get("approval_policy")).name == "never"


def test_every_public_name_resolves_and_import_is_light() -> None:
    import subprocess
    import sys

    import corral.approvals as ap

    for name in ap.__all__:
        assert getattr(ap, name) is not None
    code = ("import sys, corral.approvals; "
            "print(sorted(m for m in ('sqlite3', 'rich', 'cryptography') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
