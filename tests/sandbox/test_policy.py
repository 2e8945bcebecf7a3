"""Profiles, environment policy, feedback and Seatbelt text: pure logic, no sandbox started."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.errors import CorralError
from corral.sandbox import EnvPolicy, build_env, build_plan, explain_stderr, plan_from_config
from corral.sandbox.capabilities import checks, landlock_abi
from corral.sandbox.profiles import (
    Access,
    FsEntry,
    NetworkMode,
    effective_access,
    normalise,
    resolve_profile,
)
from corral.sandbox.seatbelt import glob_regex, profile_text

# -- profiles -----------------------------------------------------------------------------


def test_builtins() -> None:
    assert resolve_profile(":read-only").filesystem == ((":root", Access.READ),)
    assert resolve_profile(":danger-full-access").full_access
    with pytest.raises(CorralError, match="unknown built-in"):
        resolve_profile(":danger-no-sandbox")


def test_extends_chain_and_cycle() -> None:
    profiles = {
        "base": {"extends": ":workspace", "filesystem": {"/data": "read"},
                 "network": {"mode": "host"}},
        "child": {"extends": "base", "filesystem": {"/data/out": "write"}},
        "a": {"extends": "b"}, "b": {"extends": "a"},
    }
    p = resolve_profile("child", profiles)
    assert ("/data", Access.READ) in p.filesystem and ("/data/out", Access.WRITE) in p.filesystem
    assert p.network is not None and p.network.value == "host"
    with pytest.raises(CorralError, match="cycle"):
        resolve_profile("a", profiles)
    with pytest.raises(CorralError, match="unknown permission profile 'nope'"):
        resolve_profile("nope", profiles)
    with pytest.raises(CorralError, match="access must be"):
        resolve_profile("x", {"x": {"filesystem": {"/a": "rw"}}})


def test_specificity_and_tie_break(tmp_path: Path) -> None:
    e = normalise([
        FsEntry(Path("/w"), Access.WRITE), FsEntry(Path("/w/secret"), Access.DENY),
        FsEntry(Path("/w/secret/open"), Access.WRITE),
        FsEntry(Path("/x"), Access.READ), FsEntry(Path("/x"), Access.WRITE),
        FsEntry(Path("/x"), Access.DENY),
    ])
    assert effective_access(Path("/w/a"), e) is Access.WRITE
    assert effective_access(Path("/w/secret/k"), e) is Access.DENY
    assert effective_access(Path("/w/secret/open/f"), e) is Access.WRITE  # more specific wins
    assert effective_access(Path("/x/y"), e) is Access.DENY  # equal: deny > write > read
    assert effective_access(Path("/elsewhere"), e) is None


def test_enforced_deny_cannot_be_reopened() -> None:
    e = normalise([FsEntry(Path("/s"), Access.DENY, enforced=True),
                   FsEntry(Path("/s/open"), Access.WRITE)])
    assert effective_access(Path("/s/open/f"), e) is Access.DENY


def test_workspace_plan_roots(tmp_path: Path) -> None:
    plan = build_plan(":workspace", tmp_path, writable_roots=["extra"], tmpdir="",
                      home=tmp_path / "h")
    assert tmp_path in plan.writable_roots and tmp_path / "extra" in plan.writable_roots
    assert Path("/tmp") in plan.writable_roots
    plan = build_plan(":workspace", tmp_path, exclude_slash_tmp=True, tmpdir="")
    assert Path("/tmp") not in plan.writable_roots
    assert build_plan(":read-only", tmp_path).writable_roots == ()


def test_proxy_mode_refused_for_now(tmp_path: Path) -> None:
    with pytest.raises(CorralError, match="proxy") as exc:
        build_plan(":workspace", tmp_path, network="proxy")
    assert exc.value.line().startswith("corral: sandbox: ")
    assert "\n" not in exc.value.line()


def test_unknown_weaker_mode(tmp_path: Path) -> None:
    with pytest.raises(CorralError, match="allow_weaker"):
        build_plan(":workspace", tmp_path, allow_weaker=["whatever"])


class _Reqs:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    @property
    def deny_read(self) -> list[str]:
        return list(self.data.get("filesystem.deny_read", []))

    def source_of(self, key: str) -> str:
        return "/etc/corral/requirements.toml"


class _Cfg:
    def __init__(self, values: dict[str, Any], reqs: dict[str, Any] | None = None) -> None:
        self.values = values
        self._reqs = _Reqs(reqs or {})

    def get(self, key: str, default: Any = None) -> Any:
        cur: Any = self.values
        for part in key.split("."):
            if not isinstance(cur, dict) or part not in cur:
                return default
            cur = cur[part]
        return cur

    @property
    def requirements(self) -> _Reqs:
        return self._reqs


def test_plan_from_config(tmp_path: Path) -> None:
    cfg = _Cfg({
        "default_permissions": "dev",
        "permissions": {"dev": {"extends": ":workspace", "filesystem": {"/opt/x": "write"}}},
        "filesystem": {"deny_read": ["~/secrets"]},
        "sandbox": {"network": "host", "writable_roots": [str(tmp_path / "w2")]},
        "shell_environment_policy": {"inherit": "core"},
    }, {"filesystem.deny_read": ["/srv/admin-secret"]})
    plan = plan_from_config(cfg, tmp_path)
    assert plan.profile == "dev" and plan.network.mode.value == "host"
    assert Path("/opt/x") in plan.writable_roots and tmp_path / "w2" in plan.writable_roots
    assert plan.env_policy.inherit == "core"
    enforced = [e for e in plan.entries if e.enforced]
    assert any(e.path == Path("/srv/admin-secret") for e in enforced)


def test_profile_flag_forbidden_by_requirements(tmp_path: Path) -> None:
    cfg = _Cfg({}, {"allowed_permission_profiles": [":read-only", ":workspace"]})
    with pytest.raises(CorralError) as exc:
        plan_from_config(cfg, tmp_path, profile=":danger-full-access")
    assert exc.value.control == "requirements"
    assert "/etc/corral/requirements.toml" in exc.value.line()
    assert plan_from_config(cfg, tmp_path, profile=":read-only").profile == ":read-only"


# -- environment policy -------------------------------------------------------------------

SRC = {"HOME": "/h", "PATH": "/bin", "OPENAI_API_KEY": "k", "gh_token": "t",
       "DB_PASSWORD": "p", "MY_SECRET_X": "s", "EDITOR": "vi", "LANG": "C"}


def test_env_defaults_strip_secrets() -> None:
    env = build_env(EnvPolicy(), SRC)
    assert set(env) == {"HOME", "PATH", "EDITOR", "LANG", "CORRAL_SANDBOX"}


def test_env_core_none_set_include_only() -> None:
    assert set(build_env(EnvPolicy(inherit="core"), SRC)) == {"HOME", "PATH", "CORRAL_SANDBOX"}
    assert build_env(EnvPolicy(inherit="none", set={"A": "1"}), SRC) == {
        "A": "1", "CORRAL_SANDBOX": "1"}
    env = build_env(EnvPolicy(include_only=["PATH", "ED*"]), SRC)
    assert set(env) == {"PATH", "EDITOR", "CORRAL_SANDBOX"}
    env = build_env(EnvPolicy(ignore_default_excludes=True, exclude=["*PASS*"]), SRC)
    assert "OPENAI_API_KEY" in env and "DB_PASSWORD" not in env


def test_env_markers_cannot_be_forged() -> None:
    src = {"CORRAL_SANDBOX": "0", "CORRAL_SESSION_ID": "forged"}
    env = build_env(EnvPolicy(set={"CORRAL_CALL_ID": "forged"}), src, {"CORRAL_SESSION_ID": "s"})
    assert env == {"CORRAL_SANDBOX": "1", "CORRAL_SESSION_ID": "s"}


def test_env_policy_bad_input() -> None:
    with pytest.raises(CorralError, match="inherit"):
        EnvPolicy.from_table({"inherit": "some"})
    with pytest.raises(CorralError, match="exclude"):
        EnvPolicy.from_table({"exclude": "*KEY*"})


@given(st.dictionaries(st.text(min_size=1, max_size=20).filter(lambda s: "\0" not in s),
                       st.text(max_size=10), max_size=20))
def test_env_no_default_excluded_name_survives(src: dict[str, str]) -> None:
    env = build_env(EnvPolicy(), src)
    for name in env:
        up = name.upper()
        assert not any(w in up for w in ("KEY", "SECRET", "TOKEN", "PASSWORD"))
    assert env["CORRAL_SANDBOX"] == "1"


# -- feedback -----------------------------------------------------------------------------


def test_feedback_lines(tmp_path: Path) -> None:
    home = tmp_path / "home"
    plan = build_plan(":workspace", tmp_path, home=home, tmpdir="")
    err = (f"sh: 1: cannot create .envrc: Is a directory\n"
           f"touch: cannot touch '.git/hooks/pre-commit': Read-only file system\n"
           f"bash: /etc/passwd: Read-only file system\n"
           f"cat: {home}/.ssh/id_rsa: Permission denied\n"
           f"rm: cannot remove 'build/x': Permission denied\n"
           f"curl: (6) Could not resolve host: example.com\n")
    lines = [v.line() for v in explain_stderr(err, plan, tmp_path)]
    assert "corral: sandbox: blocked write to .envrc (protected path inside writable root)" in lines
    assert any(".git/hooks/pre-commit (protected" in x for x in lines)
    assert any("/etc/passwd (outside the writable roots" in x for x in lines)
    assert any("blocked read of home/.ssh/id_rsa (deny-read" in x for x in lines)
    assert not any("build/x" in x for x in lines)  # writable: not the sandbox's doing
    assert any("blocked network access" in x for x in lines)


@given(st.text(max_size=300))
def test_feedback_never_crashes(text: str) -> None:
    plan = build_plan(":workspace", "/w", tmpdir="", home=Path("/h"))
    for v in explain_stderr(text, plan, Path("/w")):
        assert v.line().startswith("corral: sandbox: blocked ")


# -- seatbelt -----------------------------------------------------------------------------


def test_seatbelt_text(tmp_path: Path) -> None:
    home = tmp_path / "home"
    plan = build_plan(":workspace", tmp_path / "ws", home=home, tmpdir="",
                      deny_read=["**/.env"], exclude_slash_tmp=True)
    text = profile_text(plan)
    assert text.startswith("(version 1)\n(deny default)")
    ws = tmp_path / "ws"
    write = text[text.index("(allow file-write*\n"):]
    assert f'(subpath "{ws}")' in write
    for name in (".git/hooks", ".envrc", ".vscode", ".codex", ".bashrc"):
        assert f'(require-not (subpath "{ws}/{name}"))' in write
    assert f'(require-not (literal "{ws}/.git/config"))' in write
    assert f'(require-not (subpath "{home}/.ssh"))' in text
    assert "(allow network" not in text
    assert text.count("(") == text.count(")")
    host = profile_text(build_plan(":workspace", ws, network="host", tmpdir=""))
    assert "(allow network*)" in host
    ro = profile_text(build_plan(":read-only", ws, tmpdir=""))
    assert "(allow file-write*\n" not in ro


def test_seatbelt_escapes_quotes(tmp_path: Path) -> None:
    ws = tmp_path / 'we"ird'
    text = profile_text(build_plan(":workspace", ws, tmpdir=""))
    assert '(subpath "' + str(ws).replace('"', '\\"') + '")' in text


@pytest.mark.parametrize(("pattern", "path", "hit"), [
    ("/w/**/.env", "/w/.env", True), ("/w/**/.env", "/w/a/b/.env", True),
    ("/w/*.pem", "/w/a/k.pem", False), ("/w/*.pem", "/w/k.pem", True),
])
def test_glob_regex(pattern: str, path: str, hit: bool) -> None:
    assert bool(re.match(glob_regex(pattern), path)) is hit


# -- capabilities -------------------------------------------------------------------------


def test_capability_checks_on_this_host() -> None:
    result = {c.name: c for c in checks()}
    for name in ("bubblewrap", "user namespaces", "seccomp", "landlock"):
        assert name in result
    assert result["bubblewrap"].ok and result["user namespaces"].ok and result["seccomp"].ok
    assert all(c.fix or c.ok for c in result.values())
    assert landlock_abi() >= 0


_toml_scalar = st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none())
_fs = st.dictionaries(st.text(max_size=12), st.one_of(
    st.sampled_from(["read", "write", "deny", "none"]), _toml_scalar), max_size=4)
_prof = st.fixed_dictionaries({}, optional={
    "extends": st.one_of(st.sampled_from([":read-only", ":workspace", "p0", "p1", ":x"]),
                         _toml_scalar),
    "filesystem": st.one_of(_fs, _toml_scalar),
    "network": st.one_of(st.fixed_dictionaries({"mode": st.one_of(
        st.sampled_from(["none", "host", "proxy"]), _toml_scalar)}), _toml_scalar),
})


@given(st.dictionaries(st.sampled_from(["p0", "p1", "p2"]), _prof, max_size=3),
       st.sampled_from(["p0", "p1", "p2", ":workspace"]))
def test_profile_resolution_fuzz(profiles: dict[str, Any], name: str) -> None:
    """Arbitrary [permissions.*] tables either resolve or raise one clear CorralError."""
    try:
        p = resolve_profile(name, profiles)
    except CorralError as exc:
        assert "\n" not in exc.line()
        return
    assert all(isinstance(a, Access) for _, a in p.filesystem)


def test_root_as_writable_root_refused() -> None:
    with pytest.raises(CorralError, match="whole filesystem writable"):
        build_plan(":workspace", "/", tmpdir="")
    assert build_plan(":read-only", "/", tmpdir="").writable_roots == ()


def test_network_precedence(tmp_path: Path) -> None:
    profiles = {"net": {"extends": ":workspace", "network": {"mode": "host"}}}
    cfg = _Cfg({"default_permissions": "net", "permissions": profiles,
                "sandbox": {"network": "none"}})
    assert plan_from_config(cfg, tmp_path).network.mode.value == "host"  # profile beats default
    assert plan_from_config(cfg, tmp_path, network="none").network.mode.value == "none"
    cfg = _Cfg({"sandbox": {"network": "host"}})
    assert plan_from_config(cfg, tmp_path).network.mode.value == "host"
    assert plan_from_config(cfg, tmp_path, profile=":read-only").network.mode.value == "none"


def test_the_seccomp_cache_key_is_the_same_in_every_process_and_names_its_spec() -> None:
    """The cached filter's file name: equal across processes whatever their hash seed (a str's
    hash is not), different for each mode and for the proxy's AF_UNIX variant."""
    import os
    import subprocess
    import sys

    code = ("from corral.sandbox.seccomp import _spec_key\n"
            "from corral.sandbox.profiles import NetworkMode\n"
            "print(' '.join(_spec_key(m, u) for m in NetworkMode for u in (False, True)))")
    keys = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed},
                           timeout=60).stdout
            for seed in ("0", "1", "random")}
    assert len(keys) == 1
    names = keys.pop().split()
    assert len(names) == len(set(names)) == 2 * len(list(NetworkMode))
