"""`corral run -- AGENT` when the agent's permission files do not exist yet (no `hooks.json`
before `corral install-hooks`, no `rules/`, no `settings.json`): a stand-in agent, the whole
process in the real sandbox, tries every way to create them and fails; its config directory is
otherwise writable, and the host is left exactly as it was."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

AGENT = r'''#!/usr/bin/env python3
import json, os
out = {}
def attempt(key, fn):
    try:
        fn()
        out[key] = "ok"
    except OSError as e:
        out[key] = e.errno
def write(p):
    with open(p, "w") as f:
        f.write('{"hooks": {"PreToolUse": [{"hooks": [{"type": "command", "command": "true"}]}]}}')
cdir = os.environ["AGENT_DIR"]
for name in os.environ["LOCKED"].split():
    p = os.path.join(cdir, name)
    attempt(name + ":write", lambda: write(p))
    write(os.path.join(cdir, "tmp"))
    attempt(name + ":rename-over", lambda: os.rename(os.path.join(cdir, "tmp"), p))
    os.unlink(os.path.join(cdir, "tmp"))
    attempt(name + ":delete", lambda: os.rmdir(p) if os.path.isdir(p) else os.unlink(p))
    attempt(name + ":inside", lambda: write(os.path.join(p, "default.rules")))
write(os.path.join(cdir, "history.jsonl"))
print(json.dumps(out))
'''


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    out: dict[str, tuple[int, bytes | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = os.lstat(p)
            out[str(p.relative_to(root))] = (
                st.st_mode, p.read_bytes() if stat.S_ISREG(st.st_mode) else None)
    return out


CASES = {
    # codex with only its config.toml: hooks.json, rules/, requirements.toml ... missing
    "codex": (".codex", {"config.toml": 'model = "m"\n'},
              "hooks.json rules requirements.toml managed_config.toml config.toml"),
    # Claude Code before anything was configured: an empty ~/.claude
    "claude": (".claude", {}, "settings.json settings.local.json managed-settings.json"),
    # $CODEX_HOME moves codex's directory: the lock follows it
    "codex-moved": ("elsewhere/codex-home", {},
                    "hooks.json rules config.toml requirements.toml"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_agent_cannot_create_its_missing_permission_files(tmp_path: Path, case: str) -> None:
    rel, files, locked = CASES[case]
    home = tmp_path / "userhome"
    cdir = home / rel
    cdir.mkdir(parents=True)
    for name, text in files.items():
        (cdir / name).write_text(text)
    work = tmp_path / "work"
    work.mkdir()
    program = case.split("-")[0]
    agent = tmp_path / "bin" / program  # the preset is chosen by the program's name
    agent.parent.mkdir()
    agent.write_text(AGENT)
    agent.chmod(0o755)
    env = dict(os.environ, HOME=str(home), CORRAL_HOME=str(tmp_path / "corral-home"),
               CORRAL_SYSTEM_DIR=str(tmp_path / "etc"), AGENT_DIR=str(cdir), LOCKED=locked)
    env.pop("CODEX_HOME", None)
    env.pop("CLAUDE_CONFIG_DIR", None)
    if case == "codex-moved":
        env["CODEX_HOME"] = str(cdir)
    before = snapshot(tmp_path / "userhome")
    r = subprocess.run([sys.executable, "-m", "corral", "run", "--", str(agent)], cwd=work,
                       env=env, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for name in locked.split():
        assert out[f"{name}:write"] in (30, 13, 21), (name, out)  # EROFS / EACCES / EISDIR
        assert out[f"{name}:rename-over"] in (16, 21), (name, out)  # EBUSY / EISDIR
        assert out[f"{name}:delete"] == 16, (name, out)  # EBUSY: a mount point
        assert out[f"{name}:inside"] in (30, 20), (name, out)  # EROFS / ENOTDIR
    # the directory itself stays the agent's to use
    assert (cdir / "history.jsonl").read_text().startswith('{"hooks"')
    after = snapshot(tmp_path / "userhome")
    after.pop(str((cdir / "history.jsonl").relative_to(home)))
    assert after == before  # no placeholder, no residue, the user's config untouched
    assert "corral: sandbox: left" not in r.stderr
