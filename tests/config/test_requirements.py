"""Admin requirements: enforcement, fallbacks, hard errors for explicit flags, trust of files."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.config.schema import APPROVAL_POLICIES, BUILTIN_PROFILES, REVIEWERS
from corral.errors import RequirementsError


def test_config_value_forbidden_falls_back_with_warning_naming_both_files(env):
    req = env.requirements('allowed_approval_policies = ["untrusted", "on-request"]\n')
    user = env.user_config('approval_policy = "never"\n')
    cfg = env.load()
    assert cfg.get("approval_policy") == "on-request"  # nearest permitted to "never"
    [w] = [w for w in cfg.warnings if "approval_policy" in w]
    assert str(req) in w and str(user) in w and "'on-request'" in w
    c = cfg.constraints["approval_policy"]
    assert c.source == str(req) and c.allowed == ("untrusted", "on-request")
    assert cfg.origin("approval_policy").layer == "requirements"


def test_explicit_flag_forbidden_is_hard_error_naming_flag_and_file(env):
    req = env.requirements('allowed_approval_policies = ["untrusted"]\n')
    with pytest.raises(RequirementsError) as ei:
        env.load(flags={"approval_policy": ("--approval-policy", "never")})
    msg = ei.value.message
    assert msg.startswith("--approval-policy never is not allowed")
    assert str(req) in msg
    with pytest.raises(RequirementsError, match=r"-c approval_policy=never is not allowed"):
        env.load(overrides=["approval_policy=never"])


def test_requirements_default_permissions_and_allowed_profiles(env):
    env.requirements('allowed_permission_profiles = [":read-only", ":workspace"]\n'
                     'default_permissions = ":read-only"\n')
    assert env.load().get("default_permissions") == ":read-only"
    env.user_config('default_permissions = ":workspace"\n')
    assert env.load().get("default_permissions") == ":workspace"
    env.user_config('default_permissions = ":danger-full-access"\n')
    cfg = env.load()
    assert cfg.get("default_permissions") == ":read-only"
    assert any(":danger-full-access" in w for w in cfg.warnings)
    with pytest.raises(RequirementsError, match="--profile :danger-full-access is not allowed"):
        env.load(flags={"default_permissions": ("--profile", ":danger-full-access")})


def test_allowed_profiles_table_form(env):
    env.requirements('[allowed_permission_profiles]\n":read-only" = true\n":workspace" = false\n')
    env.user_config('default_permissions = ":workspace"\n')
    assert env.load().get("default_permissions") == ":read-only"


def test_managed_dir_composes_and_intersects(env):
    env.requirements('allowed_approval_policies = ["untrusted", "on-request", "never"]\n'
                     '[filesystem]\ndeny_read = ["/secret/a"]\n')
    m = env.requirements('allowed_approval_policies = ["on-request", "never"]\n'
                         '[filesystem]\ndeny_read = ["/secret/b"]\n'
                         '[[rules.prefix_rules]]\npattern = ["git", "push"]\n'
                         'decision = "forbidden"\njustification = "use the review bot"\n',
                         name="10-team.toml")
    cfg = env.load(overrides=['filesystem.deny_read=["/mine"]'])
    assert cfg.requirements.get("allowed_approval_policies") == ["on-request", "never"]
    assert cfg.get("filesystem.deny_read") == ["/mine", "/secret/a", "/secret/b"]
    rules = cfg.requirements.prefix_rules
    assert rules[0]["pattern"] == ["git", "push"] and rules[0]["_source"] == str(m)
    assert len(cfg.requirements.sources) == 2


def test_requirements_prefix_rules_cannot_allow(env):
    f = env.requirements('[[rules.prefix_rules]]\npattern = ["ls"]\ndecision = "allow"\n')
    cfg = env.load()
    reason = cfg.requirements.restrictive_reason
    assert reason and f"{f}:3:1" in reason and "`allow` is not permitted" in reason
    assert cfg.get("approval_policy") == "untrusted"  # most restrictive applies
    assert cfg.get("default_permissions") == ":read-only"


def test_malformed_requirements_apply_most_restrictive(env):
    env.requirements('allowed_approval_policies = ["never"\n')
    env.user_config('approval_policy = "never"\ndefault_permissions = ":danger-full-access"\n')
    cfg = env.load()
    assert cfg.get("approval_policy") == "untrusted"
    assert cfg.get("default_permissions") == ":read-only"
    assert cfg.get("network.domains") == {}
    assert any("REQUIREMENTS" in w and "malformed TOML" in w for w in cfg.warnings)


def test_managed_domains_only_drops_user_allows(env):
    env.requirements('[network]\nmanaged_domains_only = true\n'
                     '[network.domains]\n"pypi.org" = "allow"\n"evil.example" = "deny"\n')
    env.user_config('[network.domains]\n"example.com" = "allow"\n"ads.example" = "deny"\n'
                    '"evil.example" = "allow"\n'
                    '[permissions.web.network.domains]\n"x.example" = "allow"\n')
    cfg = env.load()
    assert cfg.get("network.domains") == {
        "ads.example": "deny", "pypi.org": "allow", "evil.example": "deny"
    }
    assert cfg.get("permissions.web.network.domains") == {}
    assert cfg.origins['network.domains."pypi.org"'].layer == "requirements"


def test_managed_deny_beats_user_allow_without_managed_only(env):
    env.requirements('[network.domains]\n"evil.example" = "deny"\n')
    env.user_config('[network.domains]\n"evil.example" = "allow"\n"ok.example" = "allow"\n')
    cfg = env.load()
    assert cfg.get("network.domains") == {"evil.example": "deny", "ok.example": "allow"}


def test_forced_telemetry_and_login(env):
    req = env.requirements('[telemetry]\ncontent_tier = 0\n[telemetry.exporter]\n'
                           'endpoint = "https://siem.corp.example/v1/logs"\n'
                           '[login]\nforced_method = "api"\nforced_workspace_id = ["ws-1", "ws-2"]\n')
    env.user_config('[telemetry]\ncontent_tier = 2\n[telemetry.exporter]\n'
                    'endpoint = "http://127.0.0.1:1/"\n[login]\nmethod = "chatgpt"\n'
                    'workspace_id = "ws-9"\n')
    cfg = env.load()
    assert cfg.get("telemetry.content_tier") == 0
    assert cfg.get("telemetry.exporter.endpoint") == "https://siem.corp.example/v1/logs"
    assert cfg.get("login.method") == "api"
    assert cfg.get("login.workspace_id") == "ws-1"
    assert all(str(req) in w for w in cfg.warnings if "login" in w)
    with pytest.raises(RequirementsError, match=r"-c telemetry.content_tier=2"):
        env.load(overrides=["telemetry.content_tier=2"])


def test_requirement_files_must_be_root_owned_when_not_root(env):
    f = env.requirements('allowed_approval_policies = ["on-request", "never"]\n')
    env.user_config('approval_policy = "never"\n')
    # As root the file is accepted.
    assert env.load(euid=0).get("approval_policy") == "never"
    # As another user, a file owned by someone else is refused: most restrictive settings.
    os.chown(f, 1234, 1234)
    cfg = env.load(euid=1234)
    assert cfg.requirements.restrictive_reason and "not root" in cfg.requirements.restrictive_reason
    assert cfg.get("approval_policy") == "untrusted"
    # Root-owned but group-writable: refused too.
    os.chown(f, 0, 0)
    os.chmod(f, 0o664)
    cfg = env.load(euid=1234)
    assert "writable by group or others" in (cfg.requirements.restrictive_reason or "")
    os.chmod(f, 0o644)
    assert env.load(euid=1234).requirements.restrictive_reason is None


def test_system_dir_override_ignored_when_real_etc_has_requirements(tmp_path, monkeypatch):
    from corral import paths

    real = tmp_path / "real"
    monkeypatch.setattr(paths, "SYSTEM_DIR_DEFAULT", real)
    monkeypatch.setenv("CORRAL_SYSTEM_DIR", str(tmp_path / "elsewhere"))
    assert paths.system_dir() == tmp_path / "elsewhere"  # absent: relocation allowed
    real.mkdir()
    assert paths.system_dir() == tmp_path / "elsewhere"  # empty: relocation allowed
    (real / "managed").mkdir()  # anything at all: the administrator's directory wins
    assert paths.system_dir() == real
    (real / "managed" / "x.toml").write_text("")
    assert paths.system_dir() == real


# --- the property: no lower layer or flag ever yields a forbidden effective value -------------

policies = st.sampled_from(APPROVAL_POLICIES)
profiles = st.sampled_from(BUILTIN_PROFILES)
reviewers = st.sampled_from(REVIEWERS)


def _layer(draw_policy, draw_profile, draw_reviewer) -> str:
    out = []
    if draw_policy:
        out.append(f'approval_policy = "{draw_policy}"')
    if draw_profile:
        out.append(f'default_permissions = "{draw_profile}"')
    if draw_reviewer:
        out.append(f'approvals_reviewer = "{draw_reviewer}"')
    return "\n".join(out) + "\n"


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    allowed_pol=st.lists(policies, min_size=1, unique=True),
    allowed_prof=st.lists(profiles, min_size=1, unique=True),
    allowed_rev=st.lists(reviewers, min_size=1, unique=True),
    layers=st.lists(st.tuples(st.none() | policies, st.none() | profiles, st.none() | reviewers),
                    min_size=4, max_size=4),
    flag=st.none() | st.tuples(st.sampled_from(["approval_policy", "default_permissions",
                                                "approvals_reviewer"]),
                               st.sampled_from([*APPROVAL_POLICIES, *BUILTIN_PROFILES,
                                                *REVIEWERS])),
    use_c=st.booleans(),
)
def test_property_no_forbidden_effective_value(env, allowed_pol, allowed_prof, allowed_rev,
                                               layers, flag, use_c):
    env.requirements(
        f"allowed_approval_policies = {allowed_pol!r}\n".replace("'", '"')
        + f"allowed_permission_profiles = {allowed_prof!r}\n".replace("'", '"')
        + f"allowed_approvals_reviewers = {allowed_rev!r}\n".replace("'", '"')
    )
    sys_l, user_l, prof_l, proj_l = layers
    env.system_config(_layer(*sys_l))
    env.user_config(_layer(*user_l) + "[profiles.p]\n" + _layer(*prof_l))
    env.trust()
    env.project_config(_layer(*proj_l))
    kwargs: dict = {"profile": "p"}
    allowed = {"approval_policy": allowed_pol, "default_permissions": allowed_prof,
               "approvals_reviewer": allowed_rev}
    if flag:
        key, value = flag
        if use_c:
            kwargs["overrides"] = [f'{key}="{value}"']
        else:
            kwargs["flags"] = {key: ("--flag", value)}
    try:
        cfg = env.load(**kwargs)
    except Exception as exc:
        # The only acceptable failures: an explicit value that the schema rejects for that key,
        # or one that requirements forbid. Both are clear one-line refusals.
        assert flag is not None, exc
        key, value = flag
        valid = {"approval_policy": APPROVAL_POLICIES, "default_permissions": BUILTIN_PROFILES,
                 "approvals_reviewer": REVIEWERS}[key]
        if value not in valid and key != "default_permissions":
            assert "invalid value" in str(exc), str(exc)
        elif value not in valid:  # any name is a valid profile name, if it is defined
            assert "is not allowed" in str(exc) or "not defined" in str(exc), str(exc)
        else:
            assert value not in allowed[key], str(exc)
            assert "is not allowed" in str(exc) and str(env.system) in str(exc), str(exc)
        return
    for key, ok in allowed.items():
        assert cfg.get(key) in ok, (key, cfg.get(key), ok, cfg.warnings)
