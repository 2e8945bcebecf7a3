"""What the sandbox itself keeps read-only (issue 21): git's indirection files in every git
directory, and the persistence paths of a writable home directory, existing or missing; and
what ``gitguard`` finds and moves aside after a run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.sandbox import gitguard
from corral.sandbox.homelock import HOME_PERSISTENCE
from tests.sandbox.conftest import Box

GIT = ["git", "-c", "user.name=u", "-c", "user.email=u@example.test"]
EROFS = 30

TRY_WRITE = r"""
import json, os, sys
out = {}
for p in sys.argv[1:]:
    try:
        if os.path.isdir(p):
            open(os.path.join(p, "planted"), "w").write("x")
        else:
            os.makedirs(os.path.dirname(p), exist_ok=True)
            open(p, "a").write("planted\n")
        out[p] = "written"
    except OSError as e:
        out[p] = e.errno
print(json.dumps(out))
"""


def _try(box: Box, paths: list[Path], **kw: object) -> dict[str, object]:
    sb = box.sandbox(**kw)
    proc = sb.spawn(["python3", "-c", TRY_WRITE, *map(str, paths)], box.ws,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    sb.close()
    assert proc.returncode == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def _git(*a: str, cwd: Path) -> None:
    subprocess.run([*GIT, *a], cwd=cwd, check=True, capture_output=True)


def test_existing_git_indirection_files_are_read_only_in_every_git_dir(box: Box) -> None:
    _git("init", "-q", cwd=box.ws)
    _git("commit", "-q", "--allow-empty", "-m", "i", cwd=box.ws)
    _git("worktree", "add", "-q", str(box.outside / "wt"), cwd=box.ws)
    g = box.ws / ".git"
    (g / "config.worktree").write_text("")
    (g / "objects" / "info" / "alternates").write_text("")
    (g / "modules" / "sub").mkdir(parents=True)
    (g / "modules" / "sub" / "HEAD").write_text("ref: refs/heads/main\n")
    (g / "modules" / "sub" / "commondir").write_text("..\n")
    targets = [g / "config.worktree", g / "objects/info/alternates", g / "worktrees/wt/commondir",
               g / "worktrees/wt/gitdir", g / "modules/sub/commondir"]
    out = _try(box, targets)
    assert all(out[str(t)] == EROFS for t in targets), out
    # and git inside still works: objects, refs and the index stay writable
    r = box.sh(f"{' '.join(GIT)} commit -q --allow-empty -m inside && git log --oneline | wc -l")
    assert r.returncode == 0 and r.stdout.strip() == "2", r.stderr


def test_a_writable_home_keeps_its_persistence_paths_existing_or_missing(box: Box) -> None:
    """With the home directory writable (here: a writable root), none of the places that make
    code run later can be written or created; elsewhere in it, work goes on."""
    (box.home / ".gitconfig").write_text("[user]\n\tname = me\n")
    (box.home / ".local" / "bin").mkdir(parents=True)
    (box.home / ".config").mkdir()
    paths = [box.home / rel for rel, _ in HOME_PERSISTENCE] + [box.home / ".bashrc"]
    out = _try(box, [*paths, box.home / "notes.txt"], writable_roots=[box.home])
    assert out.pop(str(box.home / "notes.txt")) == "written"
    written = [p for p, r in out.items() if r == "written"]
    assert not written, written
    assert (box.home / ".gitconfig").read_text() == "[user]\n\tname = me\n"
    # nothing planted, and every placeholder is gone after the run
    left = sorted(str(p.relative_to(box.home)) for p in box.home.rglob("*"))
    assert left == [".config", ".gitconfig", ".local", ".local/bin", "notes.txt"], left


def test_a_home_that_is_not_writable_gets_no_placeholders(box: Box) -> None:
    out = _try(box, [box.ws / "x"])
    assert out[str(box.ws / "x")] == "written"
    assert sorted(os.listdir(box.home)) == []


def _repo(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    _git("init", "-q", cwd=path)


def test_gitguard_moves_aside_what_runs_code_and_reports_the_rest(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    _repo(ws)
    _repo(ws / "vendor" / "lib")  # existed before: its config changes are what matter
    before = gitguard.snapshot(ws)
    assert [lk.path.name for lk in gitguard.locks(before)] == ["hooks", "config"]
    # a plain clone-like nested repo: reported, kept
    _repo(ws / "deps" / "clean")
    _git("remote", "add", "origin", "https://example.test/x.git", cwd=ws / "deps" / "clean")
    # hostile variants
    _repo(ws / "a" / "b" / "c" / "hooked")
    hook = ws / "a/b/c/hooked/.git/hooks/post-checkout"
    hook.write_text("#!/bin/sh\n")
    _repo(ws / "inc")
    (ws / "inc/.git/config").open("a").write("[include]\n\tpath = /tmp/x\n")
    (ws / ".git" / "commondir").write_text("/tmp\n")
    (ws / "vendor/lib/.git/config").open("a").write("[core]\n\tpager = evil\n")
    (ws / ".gitmodules").write_text("")
    findings = {f.path: f for f in gitguard.review(before)}
    assert set(findings) == {"deps/clean/.git", "a/b/c/hooked/.git", "inc/.git",
                             ".git/commondir", "vendor/lib/.git", ".gitmodules"}, findings
    assert not findings["deps/clean/.git"].risk and (ws / "deps/clean/.git").is_dir()
    assert "post-checkout" in findings["a/b/c/hooked/.git"].risk
    assert "include.path" in findings["inc/.git"].risk
    assert "core.pager" in findings["vendor/lib/.git"].risk
    for p in ("a/b/c/hooked/.git", "inc/.git", ".git/commondir", "vendor/lib/.git"):
        assert findings[p].moved_to == p + ".corral-quarantine"
        assert not (ws / p).exists() and (ws / (p + ".corral-quarantine")).exists()
        assert findings[p].kind in ("created", "changed")
    assert findings["vendor/lib/.git"].kind == "changed"
    assert gitguard.review(gitguard.snapshot(ws)) == []  # nothing more to say


PLAIN = ["core.bare", "core.filemode", "remote.origin.url", "branch.main.merge",
         "user.email", "submodule.x.url", "extensions.objectformat"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from([*PLAIN, "core.fsmonitor", "core.hookspath",
                                           "alias.st", "filter.x.clean", "diff.x.textconv",
                                           "core.sshcommand", "submodule.x.update",
                                           "include.path", "includeif.onbranch:x.path"]),
                          st.text(st.characters(codec="utf-8", exclude_characters="\0\n"),
                                  max_size=8)), max_size=5),
       st.binary(max_size=40))
def test_any_config_outside_the_plain_keys_is_a_risk(tmp_path: Path, kv: list[tuple[str, str]],
                                                     junk: bytes) -> None:
    cfg = tmp_path / "config"
    cfg.unlink(missing_ok=True)
    cfg.touch()
    for k, v in kv:
        subprocess.run(["git", "config", "--file", str(cfg), k, v], check=True,
                       capture_output=True)
    risky = any(k not in PLAIN for k, _ in kv)
    assert bool(gitguard.risk_of(cfg)) == risky
    # whatever else a hostile file holds: git parses it or it is a risk; never an exception
    with cfg.open("ab") as f:
        f.write(junk)
    gitguard.risk_of(cfg)


def test_gitguard_never_moves_anything_outside_the_workspace(tmp_path: Path) -> None:
    """A `.git` pointer planted in the workspace may name the user's own repository elsewhere:
    the pointer is moved aside, the repository it names is left exactly as it was."""
    ws, mine = tmp_path / "ws", tmp_path / "mine"
    ws.mkdir()
    _repo(mine)
    (mine / ".git/config").open("a").write("[core]\n\tpager = less -R\n")
    (mine / ".git/hooks/pre-commit").write_text("#!/bin/sh\n")
    before = gitguard.snapshot(ws)
    (ws / ".git").write_text(f"gitdir: {mine / '.git'}\n")
    (ws / "sub").mkdir()
    (ws / "sub/.git").write_text(f"gitdir: {mine / '.git'}\n")
    findings = {f.path: f for f in gitguard.review(before)}
    assert set(findings) == {".git", "sub/.git"}, findings
    assert all(f.moved_to for f in findings.values())
    assert (mine / ".git/config").exists() and (mine / ".git/hooks/pre-commit").exists()


def test_a_configured_hooks_path_inside_the_workspace_is_read_only(box: Box) -> None:
    """core.hooksPath (repository or global config) moves the hooks into the worktree, e.g.
    `.githooks`: git runs them on the user's next commit, so they are locked like .git/hooks."""
    _git("init", "-q", cwd=box.ws)
    _git("config", "core.hooksPath", ".githooks", cwd=box.ws)
    (box.ws / ".githooks").mkdir()
    (box.ws / ".githooks" / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    (box.home / ".gitconfig").write_text('[Core]\n\thooksPath = "tools/hooks"  # team hooks\n')
    out = _try(box, [box.ws / ".githooks/pre-commit", box.ws / ".githooks",
                     box.ws / "tools/hooks", box.ws / "src/ok.txt"])
    assert out.pop(str(box.ws / "src/ok.txt")) == "written"
    assert all(v in (EROFS, 2) for v in out.values()), out  # ENOENT: tools/ cannot be made
    assert (box.ws / ".githooks/pre-commit").read_text() == "#!/bin/sh\nexit 0\n"
    assert not (box.ws / "tools" / "hooks").exists()


def test_a_repository_made_where_there_was_none_is_one_finding(tmp_path: Path) -> None:
    """`git init` in a workspace without one (or a whole .git swapped in): one unit, the .git."""
    ws = tmp_path / "ws"
    ws.mkdir()
    before = gitguard.snapshot(ws)
    _repo(ws)
    (ws / ".git/config").open("a").write("[core]\n\tfsmonitor = /x\n")
    (ws / ".git/commondir").write_text("/tmp\n")
    findings = gitguard.review(before)
    assert [(f.path, f.kind, f.moved_to) for f in findings] == [
        (".git", "created", ".git.corral-quarantine")], findings


def test_what_git_itself_makes_is_reported_but_never_moved(tmp_path: Path) -> None:
    """A linked worktree and a submodule made by git: their gitdirs hold only what git writes."""
    ws, lib = tmp_path / "ws", tmp_path / "lib"
    for d in (ws, lib):
        _repo(d)
        _git("commit", "-q", "--allow-empty", "-m", "i", cwd=d)
    before = gitguard.snapshot(ws)
    _git("worktree", "add", "-q", "wt", cwd=ws)
    _git("-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "lib", cwd=ws)
    findings = gitguard.review(before)
    # (.git/config changes here because this runs on the host; in the sandbox it is read-only)
    assert {f.path for f in findings} == {".git/worktrees/wt", ".git/modules/lib", "lib/.git",
                                          "wt/.git", ".gitmodules", ".git/config"}, findings
    assert not [f for f in findings if f.risk or f.moved_to], findings


def test_a_repository_created_during_a_run_with_a_hook_is_reported(box: Box) -> None:
    """`git init` inside the sandbox must work (hooks writable then): a hook left in the new
    repository is a warning after the run; a run that creates no repository has none."""
    sb = box.sandbox()
    try:
        quiet = sb.run(["true"], box.ws, explain=False)
        assert quiet.returncode == 0 and quiet.warnings == []
        made = sb.run(["sh", "-c", "git init -q && printf '#!/bin/sh\\n' > .git/hooks/pre-commit"],
                      box.ws, explain=False)
    finally:
        sb.close()
    assert made.returncode == 0
    assert made.warnings == [
        f"corral: sandbox: warning: the git repository created in {box.ws} during this run "
        "contains .git/hooks/pre-commit; inspect before running git outside the sandbox"]
