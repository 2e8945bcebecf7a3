"""Locked paths in the real sandbox: an agent's permission files stay read-only inside its
writable config directory whether they exist or not. A missing one is covered by a read-only
placeholder ("nothing configured": ``{}``, empty TOML, an empty directory) that cannot be
created, written, renamed over, renamed away or deleted from inside, and the host is left
exactly as it was afterwards."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.errors import CorralError
from corral.sandbox import Locked, Sandbox, build_plan
from corral.sandbox.locked import FILE_MODE
from corral.sandbox.seatbelt import profile_text
from tests.sandbox.conftest import Box

NAMES = ("config.toml", "hooks.json", "requirements.toml", "rules", "settings.json")
EROFS, EBUSY = errno.EROFS, errno.EBUSY

# Every way a sandboxed command could get its own file in place of a locked path.
PROBE = r'''
import errno, json, os, sys
# argv: AGENT_DIR NAME...; or, as a stand-in agent under `corral run`, $AGENT_DIR and $LOCKED
agent = os.environ.get("AGENT_DIR") or sys.argv[1]
names = os.environ["LOCKED"].split() if "LOCKED" in os.environ else sys.argv[2:]
out = {}
def attempt(key, fn):
    try:
        fn()
        out[key] = "ok"
    except OSError as e:
        out[key] = e.errno
def write(p, mode):
    with open(p, mode) as f:
        f.write('{"hooks": {"PreToolUse": []}}\n')
for name in names:
    p = os.path.join(agent, name)
    tmp = os.path.join(agent, "new-" + name)
    out[name + ":read"] = (sorted(os.listdir(p)) if os.path.isdir(p) else open(p).read()) \
        if os.path.lexists(p) else None
    attempt(name + ":write", lambda: write(p, "w"))
    attempt(name + ":append", lambda: write(p, "a"))
    attempt(name + ":excl", lambda: os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)))
    write(tmp, "w")
    attempt(name + ":rename-over", lambda: os.rename(tmp, p))
    attempt(name + ":rename-away", lambda: os.rename(p, os.path.join(agent, "away")))
    attempt(name + ":delete", lambda: os.rmdir(p) if os.path.isdir(p) else os.unlink(p))
    attempt(name + ":inside", lambda: write(os.path.join(p, "default.rules"), "w"))
    attempt(name + ":chmod", lambda: os.chmod(p, 0o777))
    os.unlink(tmp)
write(os.path.join(agent, "history.jsonl"), "w")  # the rest of the directory stays writable
print(json.dumps(out))
'''


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``root`` with its mode and content: 'the host as it was'."""
    out: dict[str, tuple[int, bytes | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = os.lstat(p)
            out[str(p.relative_to(root))] = (
                st.st_mode, p.read_bytes() if stat.S_ISREG(st.st_mode) else None)
    return out


def agent_box(box: Box, *, existing: dict[str, str] | None = None) -> tuple[Sandbox, Path]:
    """A workspace plan plus a writable agent config dir with NAMES locked."""
    agent = box.home / ".agent"
    agent.mkdir()
    for name, text in (existing or {}).items():
        (agent / name).write_text(text)
    plan = build_plan(":workspace", box.ws, writable_roots=[agent], home=box.home,
                      exclude_slash_tmp=True, exclude_tmpdir=True,
                      locked=[Locked.infer(agent / n) for n in NAMES])
    return Sandbox(plan), agent


def probe(sb: Sandbox, agent: Path, names: tuple[str, ...] = NAMES) -> dict[str, object]:
    proc = sb.spawn([sys.executable, "-c", PROBE, str(agent), *names], agent.parent,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=60)
    sb.close()
    assert proc.returncode == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def test_missing_permission_files_cannot_be_created_written_renamed_or_deleted(box: Box) -> None:
    sb, agent = agent_box(box, existing={"config.toml": 'model = "m"\n'})
    before = snapshot(box.home)
    out = probe(sb, agent)
    # What the agent reads: "nothing configured" in each format, or the user's real file.
    assert out["hooks.json:read"] == "{}"
    assert out["settings.json:read"] == "{}"
    assert out["requirements.toml:read"] == ""
    assert out["rules:read"] == []
    assert out["config.toml:read"] == 'model = "m"\n'
    for name in NAMES:
        assert out[f"{name}:write"] in (EROFS, errno.EISDIR), (name, out)
        # opening without O_TRUNC checks the mode (0444) before the read-only mount
        assert out[f"{name}:append"] in (EROFS, errno.EACCES, errno.EISDIR), (name, out)
        assert out[f"{name}:excl"] == errno.EEXIST, (name, out)
        assert out[f"{name}:rename-over"] in (EBUSY, errno.EISDIR), (name, out)
        assert out[f"{name}:rename-away"] == EBUSY, (name, out)
        assert out[f"{name}:delete"] == EBUSY, (name, out)
        assert out[f"{name}:chmod"] == EROFS, (name, out)
        if name == "rules":
            assert out["rules:inside"] == EROFS, out
    # The host: the agent's own new file, and nothing else changed or left behind.
    after = snapshot(box.home)
    assert after.pop(".agent/history.jsonl")[1] == b'{"hooks": {"PreToolUse": []}}\n'
    assert after == before


def test_placeholders_are_read_only_on_the_host_while_the_run_lasts(box: Box) -> None:
    sb, agent = agent_box(box)
    proc = sb.spawn(["sleep", "30"], box.ws)
    try:
        hooks = os.lstat(agent / "hooks.json")
        assert stat.S_ISREG(hooks.st_mode) and hooks.st_mode & 0o7777 == FILE_MODE
        assert (agent / "hooks.json").read_bytes() == b"{}"
        assert (agent / "config.toml").read_bytes() == b""
        assert os.lstat(agent / "rules").st_mode & 0o7777 == 0o1555
    finally:
        proc.kill()
        proc.wait()
        sb.close()
    assert sorted(os.listdir(agent)) == []


def test_killing_the_sandboxed_process_leaves_no_residue(box: Box) -> None:
    sb, agent = agent_box(box)
    before = snapshot(box.home)
    proc = sb.spawn(["/bin/sh", "-c", "sleep 30"], box.ws)
    deadline = time.monotonic() + 10
    while not (agent / "hooks.json").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (agent / "hooks.json").exists()
    os.kill(proc.pid, signal.SIGKILL)  # bwrap itself: the command dies with it
    assert proc.wait(timeout=10) == -signal.SIGKILL
    sb.close()
    assert snapshot(box.home) == before


def test_placeholders_left_by_a_killed_supervisor_are_removed_but_user_files_are_not(
        box: Box) -> None:
    """A run whose supervisor was killed leaves its placeholders; the next run recognises them
    (mode 1444 and exactly the placeholder content) and removes them. A user's own file with
    the same content but an ordinary mode is the user's: it stays."""
    agent = box.home / ".agent"
    agent.mkdir()
    (agent / "hooks.json").write_bytes(b"{}")
    os.chmod(agent / "hooks.json", FILE_MODE)
    (agent / "rules").mkdir(0o1555)
    os.chmod(agent / "rules", 0o1555)
    (agent / "settings.json").write_bytes(b"{}")  # the user's own, mode 644
    sb = Sandbox(build_plan(":workspace", box.ws, writable_roots=[agent], home=box.home,
                            exclude_slash_tmp=True, exclude_tmpdir=True,
                            locked=[Locked.infer(agent / n) for n in NAMES]))
    out = probe(sb, agent, ("hooks.json", "settings.json"))
    assert out["hooks.json:write"] == EROFS and out["settings.json:write"] == EROFS
    assert sorted(os.listdir(agent)) == ["history.jsonl", "settings.json"]
    assert (agent / "settings.json").read_bytes() == b"{}"


def test_a_file_the_user_puts_in_place_during_the_run_is_kept(box: Box, capfd) -> None:
    """Cleanup removes only placeholders, unchanged: a file the user renamed into place (over
    one this run made, or over a killed run's leftover), or wrote into the placeholder, stays;
    the last case, and a file put into a placeholder directory, are reported."""
    sb, agent = agent_box(box)
    leftover = agent / "requirements.toml"  # from a killed run: this run did not make it
    leftover.write_bytes(b"")
    os.chmod(leftover, FILE_MODE)
    proc = sb.spawn(["sleep", "30"], box.ws)
    try:
        (agent / "req.new").write_text("[rules]\n")
        os.rename(agent / "req.new", leftover)
        mine = agent / "mine.json"
        mine.write_text('{"hooks": {}}')
        os.rename(mine, agent / "hooks.json")  # an editor's atomic save
        os.chmod(agent / "settings.json", 0o644)
        (agent / "settings.json").write_text('{"model": "x"}')
        (agent / "rules" / "default.rules").write_text("# mine\n")  # (we are root)
    finally:
        proc.kill()
        proc.wait()
        sb.close()
    assert (agent / "hooks.json").read_text() == '{"hooks": {}}'
    assert (agent / "settings.json").read_text() == '{"model": "x"}'
    assert leftover.read_text() == "[rules]\n"
    assert (agent / "rules" / "default.rules").read_text() == "# mine\n"
    assert sorted(os.listdir(agent)) == ["hooks.json", "requirements.toml", "rules",
                                         "settings.json"]
    # handed back as ordinary files: later runs see the user's, not a placeholder
    assert os.lstat(agent / "settings.json").st_mode & 0o7777 == 0o644
    assert os.lstat(agent / "rules").st_mode & 0o7777 == 0o755
    err = capfd.readouterr().err
    assert f"left {agent / 'settings.json'} in place: it changed during the run" in err
    assert f"left the placeholder directory {agent / 'rules'} in place" in err
    assert "hooks.json" not in err and "requirements.toml" not in err


def test_concurrent_runs_share_placeholders_until_the_last_one_ends(box: Box) -> None:
    """Run A ends while run B goes on: A may not remove the placeholder under B (unlinking a
    mount point detaches B's mount, and B could then create the file)."""
    sb, agent = agent_box(box)
    a = sb.spawn(["sleep", "0.3"], box.ws)
    b = sb.spawn([sys.executable, "-c", "import time, os; time.sleep(1.2); "
                  f"open({str(agent / 'hooks.json')!r}, 'w').write('evil')"], box.ws,
                 stderr=subprocess.PIPE)
    assert a.wait() == 0
    time.sleep(0.1)
    assert (agent / "hooks.json").read_bytes() == b"{}"  # still B's placeholder
    _, err = b.communicate(timeout=20)
    sb.close()
    assert b.returncode != 0 and b"Read-only file system" in err, err
    assert sorted(os.listdir(agent)) == []


def test_a_placeholder_that_cannot_be_made_refuses_the_run(box: Box) -> None:
    agent = box.home / ".agent"
    agent.mkdir()
    (agent / "rules").write_text("not a directory")  # so rules/default.rules cannot be made
    marker = box.ws / "ran"
    sb = Sandbox(build_plan(":workspace", box.ws, writable_roots=[agent], home=box.home,
                            exclude_slash_tmp=True, exclude_tmpdir=True,
                            locked=[Locked.infer(agent / "hooks.json"),
                                    Locked(agent / "rules" / "default.rules", b"")]))
    with pytest.raises(CorralError) as exc:
        sb.spawn(["touch", str(marker)], box.ws)
    assert exc.value.control == "sandbox"
    line = str(exc.value.message)
    assert "\n" not in line
    assert str(agent / "rules" / "default.rules") in line and "Not a directory" in line
    assert not marker.exists()
    sb.close()
    assert sorted(os.listdir(agent)) == ["rules"]  # the placeholder made before: removed


def test_locked_paths_outside_writable_places_need_no_placeholder(box: Box) -> None:
    """Read-only anyway: nothing is created on the host, and creating it still fails."""
    target = box.outside / "settings.json"
    sb = Sandbox(build_plan(":workspace", box.ws, home=box.home, exclude_slash_tmp=True,
                            exclude_tmpdir=True, locked=[Locked.infer(target)]))
    r = sb.run(["sh", "-c", f"ls -a {box.outside}; echo x > {target}"], box.ws,
               stdout=subprocess.PIPE, stderr_sink=io.StringIO())
    sb.close()
    assert r.returncode != 0 and "Read-only file system" in (r.stderr or "")
    assert list(box.outside.iterdir()) == []


def test_locked_infer_and_seatbelt() -> None:
    assert Locked.infer(Path("/h/.codex/hooks.json")).content == b"{}"
    assert Locked.infer(Path("/h/.codex/config.toml")).content == b""
    assert Locked.infer(Path("/h/.codex/rules")).content is None
    plan = build_plan(":workspace", "/w", writable_roots=["/h/.codex"], home=Path("/h"),
                      locked=[Locked.infer(Path("/h/.codex/hooks.json"))])
    rule = '(require-not (subpath "/h/.codex/hooks.json"))'
    assert rule in profile_text(plan)
    assert rule not in profile_text(plan.replace(locked=()))


PROJECT_FILES = (".codex/config.toml", ".codex/rules/default.rules", ".codex/hooks.json",
                 ".claude/settings.json", ".claude/settings.local.json", ".gemini/settings.json",
                 ".mcp.json")


def test_project_level_agent_settings_cannot_be_created_in_the_workspace(box: Box) -> None:
    """The workspace equivalents (what Codex, Claude Code and Gemini CLI read from the project)
    are protected names: covered by read-only placeholder directories while missing."""
    (box.ws / ".claude").mkdir()  # one that exists, empty
    before = snapshot(box.ws)
    script = "".join(f"mkdir -p $(dirname {f}); echo '{{}}' > {f}; " for f in PROJECT_FILES)
    r = box.sh(script)
    for f in PROJECT_FILES:
        assert any(f"cannot create {f}: {why}" in r.stderr for why in (
            "Read-only file system", "Is a directory", "Directory nonexistent")), (f, r.stderr)
    assert snapshot(box.ws) == before


def test_an_explicit_write_entry_overrides_the_lock(box: Box) -> None:
    """As for protected paths: a profile that names the very path writable gets it writable
    (and no placeholder is made for it)."""
    agent = box.home / ".agent"
    agent.mkdir()
    hooks = agent / "hooks.json"
    sb = Sandbox(build_plan(":workspace", box.ws, writable_roots=[agent, hooks], home=box.home,
                            exclude_slash_tmp=True, exclude_tmpdir=True,
                            locked=[Locked.infer(hooks), Locked.infer(agent / "rules")]))
    r = sb.run(["sh", "-c", f"echo mine > {hooks}; mkdir {agent}/rules/x"], box.ws,
               stderr_sink=io.StringIO())
    sb.close()
    assert r.returncode != 0 and "Read-only file system" in (r.stderr or "")  # rules: locked
    assert hooks.read_text() == "mine\n"
    assert sorted(os.listdir(agent)) == ["hooks.json"]


def test_a_blocked_write_to_a_locked_path_is_explained(box: Box) -> None:
    sb, agent = agent_box(box)
    r = sb.run(["sh", "-c", f"echo '{{}}' > {agent}/hooks.json"], box.ws,
               stderr_sink=io.StringIO())
    sb.close()
    assert r.returncode != 0
    assert [v.line() for v in r.violations] == [
        f"corral: sandbox: blocked write to {agent / 'hooks.json'} (locked path: permission "
        "settings stay read-only, also while missing)"]
