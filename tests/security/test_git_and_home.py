"""Malicious agent under a real `corral run`: it plants every way git finds configuration, hooks
or another git directory, then the *user's* own git runs on the host and must run nothing of it;
and, with the home directory as the workspace, the persistence files of a home directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GIT_ID = ["-c", "user.name=u", "-c", "user.email=u@example.test"]

# Every variant makes the same marker program run from the user's next git command on the host.
PLANT_GIT = r'''#!/usr/bin/env python3
import json, os, shutil, subprocess, sys
MARK = os.environ["MARK_PROG"]
ID = ["-c", "user.name=a", "-c", "user.email=a@example.test"]
out = {}
def git(*a, cwd="."):
    return subprocess.run(["git", *ID, *a], cwd=cwd, capture_output=True, text=True)
def fsmonitor(cfg):
    with open(cfg, "a") as f:
        f.write(f"[core]\n\tfsmonitor = {MARK}\n")
def hook(gitdir):
    os.makedirs(f"{gitdir}/hooks", exist_ok=True)
    with open(f"{gitdir}/hooks/pre-commit", "w") as f:
        f.write(f"#!/bin/sh\nexec {MARK} hook\n")
    os.chmod(f"{gitdir}/hooks/pre-commit", 0o755)
def attempt(name, fn):
    try:
        fn()
        out[name] = "done"
    except OSError as e:
        out[name] = e.errno
# 1. .git/commondir naming a copy of .git with its own config and hooks
def commondir():
    shutil.copytree(".git", "planted/common", symlinks=True, ignore=shutil.ignore_patterns("hooks"))
    fsmonitor("planted/common/config")
    hook("planted/common")
    open(".git/commondir", "w").write(os.path.abspath("planted/common") + "\n")
# 2. a submodule whose gitdir is new under .git/modules/
def submodule():
    os.makedirs(".git/modules", exist_ok=True)
    git("init", "-q", "--separate-git-dir=.git/modules/evil", "evil")
    open("evil/f", "w").write("x\n")
    git("add", "f", cwd="evil"); git("commit", "-qm", "s", cwd="evil")
    fsmonitor(".git/modules/evil/config"); hook(".git/modules/evil")
    open(".gitmodules", "w").write('[submodule "evil"]\n\tpath = evil\n\turl = ./evil\n')
    git("add", ".gitmodules", "evil")
# 3. a nested repository deep down, recorded as a gitlink so the top `git status` enters it
def nested():
    d = "nested/deep/repo"
    git("init", "-q", d)
    open(f"{d}/f", "w").write("x\n")
    git("add", "f", cwd=d); git("commit", "-qm", "n", cwd=d)
    fsmonitor(f"{d}/.git/config"); hook(f"{d}/.git")
    git("add", d)
# 4. a .git *file* (gitdir: pointer) to a planted gitdir
def pointer():
    git("init", "-q", "ptr")
    open("ptr/f", "w").write("x\n")
    git("add", "f", cwd="ptr"); git("commit", "-qm", "p", cwd="ptr")
    shutil.move("ptr/.git", "planted/ptrgit")
    open("ptr/.git", "w").write("gitdir: ../planted/ptrgit\n")
    fsmonitor("planted/ptrgit/config")
    git("add", "ptr")
# 5. a linked worktree whose commondir is then redirected
def worktree():
    r = git("worktree", "add", "-q", "wtree")
    assert r.returncode == 0, r.stderr
    open(".git/worktrees/wtree/commondir", "w").write(os.path.abspath("planted/common") + "\n")
# 6. config.worktree (read because extensions.worktreeConfig is on) and alternates
def worktree_config():
    fsmonitor(".git/config.worktree")
def alternates():
    open(".git/objects/info/alternates", "w").write(os.path.abspath("planted/common/objects") + "\n")
# 7. an existing nested repository's own config and hooks, and the top's existing indirection
def existing():
    fsmonitor("vendor/lib/.git/config")
def existing_hook():
    hook("vendor/lib/.git")
def existing_commondir():
    open(".git/worktrees/old/commondir", "w").write("/tmp\n")
for name, fn in [("worktree", worktree), ("submodule", submodule), ("nested", nested),
                 ("pointer", pointer), ("commondir", commondir),
                 ("worktree_config", worktree_config),
                 ("alternates", alternates), ("existing", existing),
                 ("existing_hook", existing_hook), ("existing_commondir", existing_commondir)]:
    attempt(name, fn)
print(json.dumps(out))
'''


def _workspace(tmp_path: Path) -> tuple[Path, dict[str, str], Path, Path]:
    """A git workspace (with an existing nested repo and linked worktree), a scratch HOME and
    CORRAL_HOME, and a marker program that records every time anything runs it."""
    work, home = tmp_path / "work", tmp_path / "home"
    home.mkdir()
    work.mkdir()
    mark_log = tmp_path / "MARK"
    prog = tmp_path / "mark.sh"
    prog.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {mark_log}\nexit 1\n")
    prog.chmod(0o755)
    env = dict(os.environ, HOME=str(home), CORRAL_HOME=str(tmp_path / "corral-home"),
               CORRAL_SYSTEM_DIR=str(tmp_path / "etc"), MARK_PROG=str(prog),
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    for k in ("CODEX_HOME", "CLAUDE_CONFIG_DIR", "GIT_DIR", "GIT_WORK_TREE"):
        env.pop(k, None)

    def git(*a: str, cwd: Path = work) -> None:
        subprocess.run(["git", *GIT_ID, *a], cwd=cwd, env=env, check=True, capture_output=True)

    git("init", "-q")
    git("config", "extensions.worktreeConfig", "true")
    (work / "README").write_text("hi\n")
    git("add", "README")
    git("commit", "-qm", "init")
    git("worktree", "add", "-q", str(tmp_path / "old"))  # an existing linked worktree
    git("init", "-q", "vendor/lib")  # an existing nested repository
    return work, env, mark_log, prog


def _agent(tmp_path: Path, script: str) -> Path:
    agent = tmp_path / "bin" / "helpful-agent"  # no preset: a plain program
    agent.parent.mkdir(exist_ok=True)
    agent.write_text(script)
    agent.chmod(0o755)
    return agent


def _corral(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _events(env: dict[str, str], cwd: Path, key: str) -> list[dict[str, object]]:
    log = _corral(env, cwd, "log", "--json")
    assert log.returncode == 0, log.stderr
    out = []
    for line in log.stdout.splitlines():
        e = json.loads(line)
        attrs = e.get("attributes", {})
        if e.get("name") == "agent.config.change" and attrs.get("agent.config.key") == key:
            out.append(attrs)
    return out


@pytest.mark.slow
def test_git_indirection_planted_in_corral_run_never_runs_on_the_host(tmp_path: Path) -> None:
    work, env, mark_log, _ = _workspace(tmp_path)
    agent = _agent(tmp_path, PLANT_GIT)
    r = _corral(env, work, "run", "--", str(agent))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # What mounts can lock, is locked: the existing nested repo and existing indirection files.
    assert out["existing"] == 30 and out["existing_hook"] == 30, out  # EROFS
    assert out["existing_commondir"] == 30, out
    planted = ("commondir", "submodule", "nested", "pointer", "worktree", "worktree_config",
               "alternates")
    assert all(out[k] == "done" for k in planted), out
    assert not mark_log.exists()  # nothing ran during the run (git inside ran no fsmonitor?)
    mark_log.unlink(missing_ok=True)

    # The user's own git on the host, in every place the agent prepared.
    def user_git(*a: str, cwd: Path = work) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *GIT_ID, *a], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=60)

    assert user_git("status").returncode == 0
    assert user_git("commit", "-qm", "after the run").returncode == 0
    for d in ("evil", "nested/deep/repo", "ptr", "wtree"):
        if (work / d).is_dir():
            user_git("status", cwd=work / d)
            user_git("commit", "-q", "--allow-empty", "-m", "x", cwd=work / d)
    assert not mark_log.exists(), mark_log.read_text()

    # The report names each thing created, and what was moved aside.
    report = [ln for ln in r.stderr.splitlines() if ln.startswith("corral: sandbox: the run ")]
    named = {ln.split(" the run ", 1)[1].split(" ", 1)[1].split(",")[0].split(":")[0]
             for ln in report}
    for path in (".git/commondir", ".git/modules/evil", "nested/deep/repo/.git", "ptr/.git",
                 ".git/worktrees/wtree", ".git/config.worktree", ".git/objects/info/alternates",
                 ".gitmodules", "evil/.git"):
        assert path in named, (path, report)
    moved = [ln for ln in report if "moved it to" in ln]
    assert len(moved) >= 6, report
    assert not (work / ".git" / "commondir").exists()
    assert (work / ".git" / "commondir.corral-quarantine").exists()
    assert (work / "nested/deep/repo/.git.corral-quarantine" / "config").exists()

    # ...and so does the journal, which verifies.
    events = _events(env, work, "workspace.git_indirection")
    origins = {e["agent.config.origin"] for e in events}
    assert {".git/commondir", ".git/modules/evil", "nested/deep/repo/.git", "ptr/.git"} <= origins
    assert any("moved to" in str(e["agent.config.new"]) for e in events)
    v = _corral(env, work, "log", "verify")
    assert v.returncode == 0, v.stdout + v.stderr


FRESH_REPO = r'''#!/usr/bin/env python3
import os, subprocess
subprocess.run(["git", "init", "-q"], check=True)
with open(".git/config", "a") as f:
    f.write(f"[core]\n\tfsmonitor = {os.environ['MARK_PROG']}\n")
'''


@pytest.mark.slow
def test_corral_run_prints_and_journals_the_sandboxs_warnings(tmp_path: Path) -> None:
    """A repository created during the run is a sandbox warning; `corral run` used to drop it."""
    _, env, mark_log, _ = _workspace(tmp_path)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    r = _corral(env, fresh, "run", "--", str(_agent(tmp_path, FRESH_REPO)))
    assert r.returncode == 0, r.stderr
    warn = [ln for ln in r.stderr.splitlines() if ln.startswith("corral: sandbox: warning:")]
    assert any("created in" in ln and "fsmonitor" in ln for ln in warn), r.stderr
    assert any("moved it to .git.corral-quarantine" in ln for ln in r.stderr.splitlines())
    events = _events(env, fresh, "sandbox.warning")
    assert any("fsmonitor" in str(e["agent.config.new"]) for e in events), events
    subprocess.run(["git", "status"], cwd=fresh, env=env, capture_output=True, timeout=60)
    assert not mark_log.exists()
    assert _corral(env, fresh, "log", "verify").returncode == 0


PLANT_HOME = r'''#!/usr/bin/env python3
import json, os
home = os.path.expanduser("~")
out = {}
for rel in os.environ["TARGETS"].split(":"):
    p = os.path.join(home, rel)
    try:
        if os.path.isdir(p):
            p = os.path.join(p, "planted")
        else:
            os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "a") as f:
            f.write(f"exec {os.environ['MARK_PROG']}\n")
        out[rel] = "written"
    except OSError as e:
        out[rel] = e.errno
print(json.dumps(out))
'''


@pytest.mark.slow
def test_with_home_as_the_workspace_its_persistence_paths_stay_unwritable(tmp_path: Path) -> None:
    from corral.sandbox.homelock import HOME_PERSISTENCE

    _, env, _, _ = _workspace(tmp_path)
    home = Path(env["HOME"])
    (home / ".gitconfig").write_text("[user]\n\tname = me\n")  # one existing, the rest missing
    (home / ".ssh").mkdir()
    targets = [rel for rel, _ in HOME_PERSISTENCE] + [".bashrc", ".profile", "work.txt"]
    r = _corral({**env, "TARGETS": ":".join(targets)}, home, "run", "--",
                str(_agent(tmp_path, PLANT_HOME)))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out.pop("work.txt") == "written"  # the home directory is the workspace
    assert [k for k, v in out.items() if v == "written"] == [], out
    assert (home / ".gitconfig").read_text() == "[user]\n\tname = me\n"
    planted = [p for p in home.rglob("*") if p.is_file() and "MARK_PROG" not in p.name
               and p.name not in (".gitconfig", "work.txt")]
    assert planted == [], planted
    assert _corral(env, home, "log", "verify").returncode == 0
