"""The Codex engine behaviours: parsing, matching, examples, host executables, sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.config.model import EffectiveConfig, Requirements
from corral.rules import Policy, load_policy
from corral.rules.check import run_check
from corral.rules.model import codex_json
from corral.rules.starlark_loader import load_rules_text
from corral.types import RuleDecision


def load(text: str, name: str = "t.rules") -> Policy:
    p = Policy()
    err = load_rules_text(name, text, p)
    assert err is None, str(err)
    return p


def load_err(text: str, name: str = "t.rules") -> str:
    err = load_rules_text(name, text, Policy())
    assert err is not None, "expected a load error"
    return str(err)


def test_first_position_alternatives_expand_into_one_rule_per_program() -> None:
    p = load('prefix_rule(pattern=[["bash", "sh"], ["-c", "-l"]], decision="prompt")')
    assert sorted(p.rules_by_program) == ["bash", "sh"]
    assert p.check(["sh", "-l", "x"])["decision"] == "prompt"
    assert p.check(["sh", "-x"]) == {"matchedRules": []}


def test_strictest_wins_and_every_match_is_reported() -> None:
    p = load('prefix_rule(pattern=["git"])\n'
             'prefix_rule(pattern=["git", "push"], decision="forbidden", justification="no")\n'
             'prefix_rule(pattern=["git", ["push", "pull"]], decision="prompt")\n')
    out = p.check(["git", "push", "origin"])
    assert out["decision"] == "forbidden"
    assert [m["prefixRuleMatch"]["decision"] for m in out["matchedRules"]] == [
        "allow", "forbidden", "prompt"]
    assert out["matchedRules"][1]["prefixRuleMatch"]["justification"] == "no"


def test_prefix_must_fit_inside_command() -> None:
    p = load('prefix_rule(pattern=["git", "push", "--force"], decision="forbidden")')
    assert p.check(["git", "push"]) == {"matchedRules": []}
    assert p.check(["git", "push", "--force", "x"])["matchedRules"][0]["prefixRuleMatch"][
        "matchedPrefix"] == ["git", "push", "--force"]


def test_exact_program_only_without_resolution() -> None:
    p = load('prefix_rule(pattern=["git"], decision="prompt")')
    assert p.check(["/usr/bin/git", "status"]) == {"matchedRules": []}
    out = p.check(["/usr/bin/git", "status"], resolve_host_executables=True)
    assert out["matchedRules"][0]["prefixRuleMatch"]["resolvedProgram"] == "/usr/bin/git"


def test_host_executable_limits_basename_fallback() -> None:
    p = load('prefix_rule(pattern=["git"], decision="prompt")\n'
             'host_executable(name="git", paths=["/usr/bin/git"])\n'
             'prefix_rule(pattern=["ls"])\nhost_executable(name="ls", paths=[])\n')
    assert p.check(["/usr/bin/git"], True)["decision"] == "prompt"
    assert p.check(["/opt/git"], True) == {"matchedRules": []}
    assert p.check(["/bin/ls"], True) == {"matchedRules": []}  # paths=[] disables fallback
    # exact matches win over fallback: the fallback is not tried at all
    p2 = load('prefix_rule(pattern=["/usr/bin/git"], decision="allow")\n'
              'prefix_rule(pattern=["git"], decision="forbidden")\n')
    assert p2.check(["/usr/bin/git"], True)["decision"] == "allow"


def test_last_host_executable_declaration_wins() -> None:
    p = load('prefix_rule(pattern=["git"])\n'
             'host_executable(name="git", paths=["/a/git"])\n'
             'host_executable(name="git", paths=["/b/git"])\n')
    assert p.check(["/a/git"], True) == {"matchedRules": []}
    assert p.check(["/b/git"], True)["decision"] == "allow"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('prefix_rule(pattern=["a"], decision="nope")', "t.rules:1: invalid decision: nope"),
        ('prefix_rule(pattern=[])', "pattern cannot be empty"),
        ('prefix_rule(pattern=[[]])', "alternatives cannot be empty"),
        ('prefix_rule(pattern=[1])', "pattern element must be a string"),
        ('prefix_rule(pattern=["a"], justification=" ")', "justification cannot be empty"),
        ('\n\nprefix_rule(pattern=["a"], match=["b"])', "t.rules:3: match example(s) `b`"),
        ('prefix_rule(pattern=["a"], not_match=["a x"])', "not_match example `a x`"),
        ('prefix_rule(pattern=["a"], match=["\'unterminated"])', "invalid shell syntax"),
        ('prefix_rule(pattern=["a"], match=[""])', "example cannot be an empty string"),
        ('prefix_rule(pattern=["a"], foo=1)', "extra named parameter"),
        ('prefix_rule()', "Missing parameter `pattern`"),
        ('host_executable(name="/usr/bin/git", paths=[])', "bare executable name"),
        ('host_executable(name="git", paths=["git"])', "must be absolute"),
        ('host_executable(name="git", paths=["/usr/bin/gat"])', "must have basename `git`"),
        ('network_rule(host="http://x", protocol="https", decision="allow")', "without scheme"),
        ('network_rule(host="*.x.com", protocol="https", decision="allow")', "wildcards"),
        ('network_rule(host="x.com", protocol="ftp", decision="allow")', "protocol must be"),
        ("x = 1 +\n", "t.rules:1:"),
        ("\n\ny = undefined\n", "t.rules:3:5: Variable `undefined` not found"),
        ('load("x.star", "y")\n', "t.rules:1"),
    ],
)
def test_load_errors_name_file_and_line(text: str, needle: str) -> None:
    assert needle in load_err(text)


def test_examples_use_host_executable_resolution() -> None:
    load('prefix_rule(pattern=["git"], match=["/usr/bin/git status"])')
    assert "match example" in load_err(
        'host_executable(name="git", paths=["/opt/git"])\n'
        'prefix_rule(pattern=["git"], match=["/usr/bin/git status"])\n')


def test_starlark_features_and_no_python_eval() -> None:
    p = load('PROGS = ["a", "b"]\n'
             'def deny(p):\n    prefix_rule(pattern=[p], decision="forbidden")\n'
             '[deny(x) for x in PROGS]\n'
             'name = "c"\nprefix_rule(pattern=[f"{name}"], justification=f"is {name}")\n')
    assert p.check(["b"])["decision"] == "forbidden"
    assert p.rules_by_program["b"][0].source == "t.rules:3"  # the call site inside the helper
    assert p.check(["c"])["matchedRules"][0]["prefixRuleMatch"]["justification"] == "is c"
    # Python builtins are not reachable from a rules file
    assert "not found" in load_err('__import__("os").system("true")')


def test_network_rules_normalised() -> None:
    p = load('network_rule(host="Example.COM.:443", protocol="https_connect", decision="deny", '
             'justification="exfil")\n'
             'network_rule(host="[::1]:80", protocol="http", decision="allow")\n')
    assert [(r.host, r.protocol, r.decision) for r in p.network_rules] == [
        ("example.com", "https", RuleDecision.FORBIDDEN), ("::1", "http", RuleDecision.ALLOW)]
    assert p.network_rules[0].source == "t.rules:1"


def test_pretty_output_matches_serde_layout() -> None:
    p = load('prefix_rule(pattern=["ls"])')
    assert codex_json(p.check(["x"]), pretty=True) == '{\n  "matchedRules": []\n}'
    assert codex_json(p.check(["ls"])) == (
        '{"matchedRules":[{"prefixRuleMatch":{"matchedPrefix":["ls"],"decision":"allow"}}],'
        '"decision":"allow"}')


def test_run_check_bad_file_reports_like_codex(tmp_path: Path) -> None:
    bad = tmp_path / "bad.rules"
    bad.write_text('prefix_rule(pattern=["a"])\nprefix_rule(pattern=["a"], decision="x")\n')
    code, out, err = run_check([str(bad)], ["a"])
    assert (code, out) == (1, "")
    assert err.startswith(f"Error: failed to parse policy at {bad}\n")
    assert f"{bad}:2: invalid decision: x" in err
    code, out, err = run_check([str(tmp_path / "missing.rules")], ["a"])
    assert code == 1 and err.startswith("Error: failed to read policy at")


def _cfg(tmp_path: Path, trusted: bool, req: list[object] | None = None) -> EffectiveConfig:
    return EffectiveConfig(
        values={}, origins={},
        requirements=Requirements(data={"rules": {"prefix_rules": req or []}},
                                  sources=["/etc/corral/requirements.toml"]),
        cwd=tmp_path / "proj" / "sub", project_root=tmp_path / "proj", project_trusted=trusted,
        corral_home=tmp_path / "home", system_dir=tmp_path / "etc")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_sources_layers_trust_and_broken_file(tmp_path: Path) -> None:
    _write(tmp_path / "etc/rules/a.rules", 'prefix_rule(pattern=["sys"], decision="forbidden")')
    _write(tmp_path / "home/rules/b.rules", 'prefix_rule(pattern=["usr"], decision="prompt")')
    _write(tmp_path / "home/rules/c.rules", 'prefix_rule(pattern=["x"], decision="bogus")')
    _write(tmp_path / "home/rules/ignored.txt", 'prefix_rule(pattern=["txt"])')
    _write(tmp_path / "proj/.corral/rules/p.rules", 'prefix_rule(pattern=["proj"])')
    _write(tmp_path / "proj/sub/.corral/rules/q.rules", 'prefix_rule(pattern=["sub"])')
    (tmp_path / "proj/sub").mkdir(parents=True, exist_ok=True)
    req = [{"pattern": [{"token": "rm"}, {"any_of": ["-rf", "-fr"]}], "decision": "forbidden",
            "justification": "admin says no"}, {"pattern": ["x"], "decision": "allow"}]
    p = load_policy(_cfg(tmp_path, trusted=True, req=req))
    assert set(p.rules_by_program) == {"sys", "usr", "proj", "sub", "rm"}
    assert p.rules_by_program["rm"][0].source == "requirements"
    errs = [str(e) for e in p.load_errors]
    assert any("c.rules:1: invalid decision: bogus" in e for e in errs)
    assert any("not permitted in requirements" in e for e in errs)
    untrusted = load_policy(_cfg(tmp_path, trusted=False))
    assert "proj" not in untrusted.rules_by_program and "sys" in untrusted.rules_by_program


def test_policy_cache_notices_changes(tmp_path: Path) -> None:
    f = tmp_path / "r.rules"
    f.write_text('prefix_rule(pattern=["a"])')
    assert "a" in load_policy(None, [f], include_configured=False).rules_by_program
    f.write_text('prefix_rule(pattern=["bb"])\n')
    assert "bb" in load_policy(None, [f], include_configured=False).rules_by_program


def test_unreadable_requirements_make_everything_prompt(tmp_path: Path) -> None:
    from corral.rules import decide

    cfg = _cfg(tmp_path, trusted=False)
    cfg.requirements.restrictive_reason = "requirements.toml is not valid TOML"
    p = load_policy(cfg)
    r = decide(["ls"], p)
    assert r.decision is RuleDecision.PROMPT
    assert "not valid TOML" in r.reason
    assert decide(["ls"], p, "never").decision is RuleDecision.FORBIDDEN
