"""The credential catalogue (issue 18 item 1): hidden by default under a real bubblewrap
sandbox, still hidden when created later, never creatable where the sandbox can write,
re-allowed only by id, extended by config and (enforced) by requirements, and documented by a
table generated from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from corral.errors import CorralError
from corral.sandbox.credentials import CATALOGUE, Credential, expand, markdown_table
from tests.sandbox.conftest import Box

READ = r'''
import json, sys
out = {}
for p in sys.argv[1:]:
    try:
        out[p] = open(p).read()
    except OSError as e:
        out[p] = e.errno
print(json.dumps(out))
'''
WRITE = r'''
import json, os, sys
out = {}
for p in sys.argv[1:]:
    try:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write("planted")
        out[p] = "written"
    except OSError as e:
        out[p] = e.errno
print(json.dumps(out))
'''


def _run(box: Box, code: str, paths: list[Path], **kw: object) -> dict[str, object]:
    sb = box.sandbox(**kw)
    proc = sb.spawn([sys.executable, "-c", code, *map(str, paths)], box.ws, None,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    sb.close()
    assert proc.returncode == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def _plant(box: Box, rel: str, text: str = "secret") -> Path:
    p = box.home / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_every_catalogue_entry_is_hidden(box: Box) -> None:
    """One file for every path of every entry (a file inside the directory ones)."""
    planted = []
    for c in CATALOGUE:
        for raw in c.paths:
            if raw.startswith("~/"):
                rel = raw[2:] + ("planted" if raw.endswith("/") else "")
                planted.append(_plant(box, rel.replace("*", "x")))
    out = _run(box, READ, planted)
    readable = [p for p, v in out.items() if v == "secret"]
    assert not readable, readable


def test_a_credential_created_after_the_plan_is_hidden_from_the_next_command(box: Box) -> None:
    sb = box.sandbox()
    later = box.home / ".config" / "gh" / "hosts.yml"
    _plant(box, ".config/gh/hosts.yml", "github.com:\n  oauth_token: gho_x\n")
    proc = sb.spawn(["cat", str(later)], box.ws, None, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=60)
    sb.close()
    assert "gho_x" not in str(out)


def test_in_a_writable_home_missing_credentials_cannot_be_created(box: Box) -> None:
    """A command cannot plant a credential file (or the directory it goes in) where the user's
    tools would later write and the next command read; placeholders are gone afterwards."""
    (box.home / ".config").mkdir()
    targets = [box.home / ".config/gh/hosts.yml", box.home / ".vault-token",
               box.home / ".pgpass", box.home / ".cargo/credentials.toml",
               box.home / ".codex/auth.json"]
    out = _run(box, WRITE, [*targets, box.home / "notes.txt"], writable_roots=[box.home])
    assert out.pop(str(box.home / "notes.txt")) == "written"
    assert not [p for p, r in out.items() if r == "written"], out
    left = sorted(str(p.relative_to(box.home)) for p in box.home.rglob("*"))
    assert left == [".config", "notes.txt"], left


def test_a_profile_re_allows_one_entry_by_id_and_only_that(box: Box) -> None:
    cargo = _plant(box, ".cargo/credentials.toml", "token")
    gem = _plant(box, ".gem/credentials", "gemkey")
    profiles = {"publish": {"extends": ":workspace", "allow_credentials": ["cargo"]}}
    out = _run(box, READ, [cargo, gem], profile="publish", user_profiles=profiles)
    assert out[str(cargo)] == "token"
    assert out[str(gem)] != "gemkey"
    with pytest.raises(CorralError, match="unknown credential entry 'carg'"):
        box.sandbox(profile="p", user_profiles={"p": {"allow_credentials": ["carg"]}})


def test_config_adds_entries_and_requirements_entries_cannot_be_re_allowed(box: Box) -> None:
    mine = _plant(box, ".mytool/token", "mine")
    admin = _plant(box, ".corp/sso.json", "corp")
    extra = [Credential("mytool", "mytool", "configured", ("~/.mytool/token",), "API token")]
    enforced = [Credential("corp", "corp SSO", "configured", ("~/.corp/",), "SSO")]
    profiles = {"p": {"extends": ":workspace", "allow_credentials": ["corp"],
                      "filesystem": {"~/.corp": "read"}}}
    out = _run(box, READ, [mine, admin], profile="p", user_profiles=profiles,
               credentials=((), extra, enforced))
    assert out[str(mine)] != "mine" and out[str(admin)] != "corp"


def test_env_named_locations_and_kubeconfig_lists(tmp_path: Path) -> None:
    env = {"CODEX_HOME": str(tmp_path / "cx"), "KUBECONFIG": "/a/k1:/b/k2", "X": "rel/dir"}
    assert expand("$CODEX_HOME/auth.json", tmp_path, env) == [
        (str(tmp_path / "cx" / "auth.json"), False)]
    assert expand("$KUBECONFIG", tmp_path, env) == [("/a/k1", False), ("/b/k2", False)]
    assert expand("$X/", tmp_path, env) == []  # a relative location is never guessed
    assert expand("$UNSET/f", tmp_path, env) == []


def test_catalogue_is_well_formed_and_covers_every_kind() -> None:
    ids = [c.id for c in CATALOGUE]
    assert len(ids) == len(set(ids))
    assert all(c.reason and c.tool and c.paths for c in CATALOGUE)
    kinds = {c.category for c in CATALOGUE}
    assert len(kinds) == 10, kinds


def test_docs_table_is_generated_from_the_catalogue() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "sandbox.md").read_text()
    assert markdown_table() in doc, "regenerate: python -c 'from corral.sandbox.credentials " \
        "import markdown_table; print(markdown_table())'"


def test_config_explain_warns_about_a_re_allowed_entry(tmp_path: Path) -> None:
    home = tmp_path / "h"
    (home / ".corral").mkdir(parents=True)
    (home / ".corral" / "config.toml").write_text(
        '[permissions.publish]\nextends = ":workspace"\nallow_credentials = ["cargo"]\n')
    env = {**os.environ, "HOME": str(home), "CORRAL_HOME": str(home / ".corral")}
    proc = subprocess.run([sys.executable, "-m", "corral", "config", "explain"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert ("warning: permissions.publish.allow_credentials re-allows 'cargo' (Cargo: "
            "~/.cargo/credentials.toml, ~/.cargo/credentials)") in proc.stdout


def test_doctor_secrets_lists_what_is_found_and_whether_it_is_hidden(tmp_path: Path) -> None:
    home = tmp_path / "h"
    for rel in (".pgpass", ".config/gh/hosts.yml"):
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text("x")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(HOME=str(home), CORRAL_HOME=str(tmp_path / "ch"),
               DATABASE_URL="postgres://u:pw-very-secret@db/x", EDITOR="vim")
    proc = subprocess.run([sys.executable, "-m", "corral", "doctor", "--secrets"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"[hidden ] {home}/.pgpass  (pgpass: PostgreSQL" in proc.stdout
    assert f"[hidden ] {home}/.config/gh/hosts.yml  (gh: GitHub CLI" in proc.stdout
    assert "[dropped] DATABASE_URL  (URL with a password)" in proc.stdout
    assert "EDITOR" not in proc.stdout and "pw-very-secret" not in proc.stdout


@pytest.mark.parametrize("moved", [False, True])
def test_corral_run_re_allows_exactly_the_agents_own_login(
        box: Box, moved: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Codex under ``corral run`` reads its own ``auth.json`` (in ``$CODEX_HOME`` when set);
    Claude Code's login, and Codex's default one when the directory is moved, stay hidden."""
    from corral.sandbox import Sandbox, build_plan
    from corral.supervisor.run import PRESETS, _own_login

    default = _plant(box, ".codex/auth.json", "codex-default")
    claude = _plant(box, ".claude/.credentials.json", "claude")
    own = default
    if moved:
        own = _plant(box, "cx/auth.json", "codex-moved")
        monkeypatch.setenv("CODEX_HOME", str(own.parent))
    else:
        monkeypatch.delenv("CODEX_HOME", raising=False)
    plan = _own_login(build_plan(":workspace", box.ws, home=box.home, exclude_slash_tmp=True,
                                 exclude_tmpdir=True), PRESETS["codex"])
    sb = Sandbox(plan)
    proc = sb.spawn([sys.executable, "-c", READ, str(own), str(default), str(claude)], box.ws,
                    None, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    sb.close()
    seen = json.loads(out)
    assert seen[str(own)] == own.read_text(), err
    assert seen[str(claude)] != "claude"
    if moved:
        assert seen[str(default)] != "codex-default"


def test_config_and_requirements_files_extend_the_catalogue_through_the_cli(box: Box) -> None:
    """``[[sandbox.credential_files]]`` from the user's config.toml and the admin's
    requirements.toml, read by the real ``corral sandbox``; the admin's entry stays hidden
    under a profile that tries to re-allow it."""
    system = box.home / "etc-corral"
    system.mkdir()
    (system / "requirements.toml").write_text(
        '[[sandbox.credential_files]]\nid = "corp"\npath = "~/.corp/sso.json"\n'
        'tool = "corp SSO"\nreason = "SSO session"\n')
    (box.corral_home / "config.toml").write_text(
        '[[sandbox.credential_files]]\nid = "mine"\npaths = ["~/.mytool/token"]\n\n'
        '[permissions.loose]\nextends = ":workspace"\nallow_credentials = ["corp", "pgpass"]\n')
    for rel in (".corp/sso.json", ".mytool/token", ".pgpass"):
        _plant(box, rel, "secret-" + rel)
    env = dict(os.environ, CORRAL_HOME=str(box.corral_home), HOME=str(box.home),
               CORRAL_SYSTEM_DIR=str(system))
    paths = [str(box.home / r) for r in (".corp/sso.json", ".mytool/token", ".pgpass")]
    proc = subprocess.run([sys.executable, "-m", "corral", "sandbox", "-P", "loose", "--",
                           sys.executable, "-c", READ, *paths], cwd=box.ws, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen[paths[0]] != "secret-.corp/sso.json"  # enforced
    assert seen[paths[1]] != "secret-.mytool/token"   # added by the user
    assert seen[paths[2]] == "secret-.pgpass"         # re-allowed by the profile


_NAMES = ["a", ".a", "ab", "b.key", ".hidden_key", "ssh_host_rsa_key", "ssh_host_rsa_key.pub",
          "x[1]", "sub"]


@given(st.lists(st.sampled_from(["a", "b", ".", "*", "?", "[", "]", "!", "_key", "/", "dir/",
                                  "**", "ssh_host_"]), min_size=1, max_size=6).map("".join),
       st.booleans())
def test_iglob_matches_glob_whatever_the_pattern(tmp_path_factory: pytest.TempPathFactory,
                                                 pattern: str, relative: bool) -> None:
    """``profiles.iglob`` lists one directory itself when only the last component has
    wildcards; whatever the pattern, it finds what glob.iglob(recursive, include_hidden) does.
    Kept inside the test's directory: a relative ``/**`` would walk the whole file system and
    ``../**`` every other test's files."""
    import glob

    from corral.sandbox.profiles import iglob

    assume(not (relative and pattern.startswith("/")) and ".." not in pattern.split("/"))
    root = tmp_path_factory.mktemp("g")
    for name in _NAMES:
        (root / name).write_text("")
    (root / "dir").mkdir()
    for name in _NAMES:
        (root / "dir" / name).write_text("")
    full = pattern if relative else f"{root}/{pattern}"
    cwd = os.getcwd()
    os.chdir(root)
    try:
        want = sorted(glob.iglob(full, recursive=True, include_hidden=True))
        got = sorted(iglob(full))
    finally:
        os.chdir(cwd)
    assert got == want
