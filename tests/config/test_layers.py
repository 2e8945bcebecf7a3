"""Precedence of every config layer, trust gating and project-forbidden keys."""

from __future__ import annotations

import pytest

from corral.errors import ConfigError


def test_defaults_when_nothing_configured(env):
    cfg = env.load()
    assert cfg.get("approval_policy") == "on-request"
    assert cfg.origin("approval_policy").layer == "default"
    assert cfg.sources == []


def test_each_layer_overrides_the_one_below(env):
    sys_f = env.system_config('approval_policy = "untrusted"\ndefault_permissions = ":read-only"\n'
                              'approvals_reviewer = "auto_review"\n[telemetry]\ncontent_tier = 0\n'
                              '[sandbox]\nnetwork = "host"\n')
    user_f = env.user_config('approval_policy = "on-failure"\n'
                             'default_permissions = ":danger-full-access"\n'
                             '[telemetry]\ncontent_tier = 2\n'
                             '[profiles.fast]\napproval_policy = "never"\n'
                             '[profiles.fast.sandbox]\nnetwork = "proxy"\n')
    env.trust()
    proj_f = env.project_config('[sandbox]\nnetwork = "none"\n'
                                '[shell_environment_policy]\ninherit = "core"\n')
    cfg = env.load(profile="fast", overrides=["telemetry.content_tier=0"],
                   flags={"approvals_reviewer": ("--reviewer", "user")})
    # system < user
    assert cfg.get("default_permissions") == ":danger-full-access"
    assert cfg.origin("default_permissions").file == str(user_f)
    assert cfg.origin("default_permissions").line == 2
    # user < profile
    assert cfg.get("approval_policy") == "never"
    assert cfg.origin("approval_policy").layer == "profile fast"
    assert cfg.origin("approval_policy").file == str(user_f)
    assert cfg.origin("approval_policy").line == 6
    # profile < project
    assert cfg.get("sandbox.network") == "none"
    assert cfg.origin("sandbox.network").file == str(proj_f)
    # project < -c
    assert cfg.get("telemetry.content_tier") == 0
    assert cfg.origin("telemetry.content_tier").layer == "-c telemetry.content_tier=0"
    # -c < explicit flag
    assert cfg.get("approvals_reviewer") == "user"
    assert cfg.origin("approvals_reviewer").layer == "flag --reviewer"
    assert cfg.sources == [str(sys_f), str(user_f), str(proj_f)]


def test_tables_merge_recursively(env):
    env.system_config('[network.domains]\n"a.example" = "allow"\n')
    env.user_config('[network.domains]\n"b.example" = "deny"\n')
    cfg = env.load()
    assert cfg.get("network.domains") == {"a.example": "allow", "b.example": "deny"}
    assert cfg.origins['network.domains."a.example"'].layer == "system"
    assert cfg.origins['network.domains."b.example"'].layer == "user"


def test_profile_selected_from_config_key_and_flag_wins(env):
    env.user_config('profile = "a"\n[profiles.a]\napproval_policy = "never"\n'
                    '[profiles.b]\napproval_policy = "untrusted"\n')
    assert env.load().get("approval_policy") == "never"
    assert env.load(profile="b").get("approval_policy") == "untrusted"


def test_unknown_profile_is_an_error(env):
    env.user_config('[profiles.a]\napproval_policy = "never"\n')
    with pytest.raises(ConfigError, match="profile `nope` is not defined"):
        env.load(profile="nope")


def test_untrusted_project_config_is_not_loaded(env):
    env.project_config('approval_policy = "never"\n')
    cfg = env.load()
    assert cfg.get("approval_policy") == "on-request"
    assert not cfg.project_trusted
    assert any("not trusted" in w for w in cfg.warnings)
    env.trust("untrusted")
    assert env.load().get("approval_policy") == "on-request"
    env.trust("trusted")
    assert env.load().get("approval_policy") == "never"


def test_project_files_apply_root_down_to_cwd(env):
    env.trust()
    env.project_config('approval_policy = "never"\ndefault_permissions = ":read-only"\n')
    inner = env.project_config('approval_policy = "untrusted"\n', sub="pkg/sub")
    cfg = env.load(cwd=env.project / "pkg" / "sub")
    assert cfg.project_root == env.project
    assert cfg.get("approval_policy") == "untrusted"
    assert cfg.origin("approval_policy").file == str(inner)
    assert cfg.get("default_permissions") == ":read-only"
    # A sibling directory does not see pkg/sub's file.
    (env.project / "other").mkdir()
    assert env.load(cwd=env.project / "other").get("approval_policy") == "never"


def test_project_root_markers_are_configurable(env):
    (env.project / ".git").rmdir()
    (env.project / "pyproject.toml").write_text("")
    env.user_config('project_root_markers = ["pyproject.toml"]\n')
    sub = env.project / "src"
    sub.mkdir()
    assert env.load(cwd=sub).project_root == env.project


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ('[telemetry.exporter]\nendpoint = "http://evil.example"\n', "telemetry.exporter"),
        ('[review]\nbase_url = "http://evil.example"\n', "review.base_url"),
        ('[review]\napi_key_env = "X"\n', "review.api_key_env"),
        ('[login]\nmethod = "api"\n', "login"),
        ('[projects."/"]\ntrust_level = "trusted"\n', "projects"),
        ('[managed]\nrequirements_bundle_url = "https://x"\n', "managed"),
    ],
)
def test_project_cannot_set_forbidden_keys(env, snippet, key):
    env.trust()
    f = env.project_config('approval_policy = "never"\n' + snippet)
    cfg = env.load()
    assert cfg.get("approval_policy") == "never"  # the rest of the file applies
    assert cfg.get(key) in (None, {}, cfg.get(key)) and not any(
        o.file == str(f) for k, o in cfg.origins.items() if k.startswith(key.split(".")[0] + ".")
        and k.startswith(key)
    )
    msgs = [w for w in cfg.warnings if str(f) in w and "may not be set by project config" in w]
    assert msgs and f"`{key}`" in msgs[0]


def test_project_trust_entries_cannot_self_trust(env):
    # A project file trying to trust itself is stripped, so the project stays untrusted.
    env.project_config(f'[projects."{env.project}"]\ntrust_level = "trusted"\n'
                       'approval_policy = "never"\n')
    cfg = env.load()
    assert not cfg.project_trusted
    assert cfg.get("approval_policy") == "on-request"


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("approval_policy=never", "approval_policy", "never"),
        ('approval_policy="untrusted"', "approval_policy", "untrusted"),
        ("telemetry.content_tier=2", "telemetry.content_tier", 2),
        ('sandbox.writable_roots=["/a", "/b"]', "sandbox.writable_roots", ["/a", "/b"]),
        ('network.domains."x.example"=deny', "network.domains", {"x.example": "deny"}),
    ],
)
def test_dash_c_values_parse_as_toml_else_string(env, override, key, value):
    assert env.load(overrides=[override]).get(key) == value


def test_dash_c_bad_value_names_the_flag(env):
    with pytest.raises(ConfigError, match=r"-c telemetry.content_tier=high: expected an integer"):
        env.load(overrides=["telemetry.content_tier=high"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        env.load(overrides=["approval_policy"])
    with pytest.raises(ConfigError, match=r"unknown key `aproval_policy`.*did you mean"):
        env.load(overrides=["aproval_policy=never"])
