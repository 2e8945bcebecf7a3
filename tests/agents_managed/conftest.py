"""Fixtures for the agents' managed settings: an admin's requirements loaded through corral's
real config loader, the files rendered from them, and a private /etc for the real CLIs.

The real agents read their administrator files only from fixed paths (/etc/codex,
/etc/claude-code; Gemini CLI also takes GEMINI_CLI_SYSTEM_SETTINGS_PATH). To run them against
generated files without touching the host, ``in_private_etc`` runs a command in a private
mount namespace (``unshare -m``) whose /etc is an overlay: the host's /etc below, the
``--root`` directory's etc/ above. Nothing is mounted or written outside tmp_path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from corral.agents_managed import Inputs, apply, inputs_from_config, plan, render
from corral.config import load_config
from corral.integrations.install import hook_command, merge_hooks
from tests.forward.test_login import secret_service  # noqa: F401  (gnome-keyring on D-Bus)
from tests.integrations.conftest import session  # noqa: F401  (a real supervisor session)

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".tools" / "node" / "node_modules" / ".bin"

ADMIN = '''
allowed_approval_policies = ["untrusted", "on-request"]
allowed_permission_profiles = [":read-only", ":workspace"]

[filesystem]
deny_read = ["/etc/shadow"]

[[rules.prefix_rules]]
pattern = ["git", "push", ["--force", "-f"]]
decision = "forbidden"
justification = "force-pushes go through review"

[[rules.prefix_rules]]
pattern = ["npm", "publish"]
decision = "prompt"

[login.codex]
forced_login_method = "chatgpt"
forced_chatgpt_workspace_id = "ws-acme"

[login.claude_code]
force_login_method = "claudeai"
force_login_org_uuid = "6f1c2b9e-3a4d-4e5f-8a7b-9c0d1e2f3a4b"

[login.gemini]
enforced_auth_type = "oauth-personal"
'''


def admin_config(tmp_path: Path, requirements: str, config: str = "") -> Any:
    """An EffectiveConfig with ``requirements`` as /etc/corral/requirements.toml."""
    etc = tmp_path / "corral-etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "requirements.toml").write_text(requirements)
    if config:
        (etc / "config.toml").write_text(config)
    home = tmp_path / "corral-home"
    home.mkdir(exist_ok=True)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return load_config(work, home=home, system=etc)


def hooks_for(agents: tuple[str, ...] = ("codex", "claude-code", "gemini")) -> dict[str, Any]:
    return {a: merge_hooks({}, a, hook_command(a)) for a in agents}


def inputs_for(tmp_path: Path, requirements: str, config: str = "", **kw: Any) -> Inputs:
    return inputs_from_config(admin_config(tmp_path, requirements, config),
                              kw.pop("hooks", hooks_for()), **kw)


def apply_to(root: Path, inputs: Inputs, agents: tuple[str, ...]) -> None:
    apply(root, plan(root, render(inputs, agents)), inputs.sources)


def in_private_etc(root: Path, argv: list[str]) -> list[str]:
    """``argv`` in a private mount namespace where /etc shows ``root/etc`` over the host's."""
    if os.geteuid() != 0:
        pytest.fail("these tests mount a private /etc overlay (unshare -m): run them as root")
    work = root.parent / f"{root.name}.ovl-work"
    work.mkdir(exist_ok=True)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    script = (f"mount -t overlay overlay -o lowerdir=/etc,upperdir={root}/etc,workdir={work} "
              '/etc && exec "$@"')
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *argv]


def corral(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=cwd)


def tool(name: str) -> Path:
    path = BIN / name
    if not (path.exists() and os.access(path, os.X_OK)):
        pytest.fail(f"{name} not installed: run scripts/setup --dev (npm peers)")
    return path
