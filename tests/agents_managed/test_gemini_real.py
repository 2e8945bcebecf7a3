"""The generated Gemini CLI system settings, loaded by the installed Gemini CLI's own settings
loader (`loadSettings` of @google/gemini-cli 0.61: its zod schema and its check that the file
and its directories are root-owned and not writable by others) from /etc/gemini-cli in a
private mount namespace."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.agents_managed.conftest import ADMIN, BIN, apply_to, in_private_etc, inputs_for

pytestmark = pytest.mark.slow

BUNDLE = BIN.parent / "@google" / "gemini-cli" / "bundle"
SCRIPT = """
const m = await import(process.argv[2]);
const s = m.loadSettings(process.argv[3]);
console.log(JSON.stringify({errors: s.errors, system: s.system.settings,
                            path: s.system.path, merged: s.merged}));
"""


def settings_loader() -> Path:
    """The chunk of the CLI's own entry point that defines loadSettings."""
    entry = BUNDLE / "gemini.js"
    if not entry.exists():
        pytest.fail("Gemini CLI not installed: run scripts/setup --dev (npm @google/gemini-cli)")
    (main,) = set(re.findall(r"gemini-[A-Z0-9]+\.js", entry.read_text()))
    chunks = re.findall(r'"\./(chunk-[A-Z0-9]+\.js)"', (BUNDLE / main).read_text())
    found = [BUNDLE / c for c in chunks
             if "function loadSettings(" in (BUNDLE / c).read_text()]
    assert len(found) == 1, found
    return found[0]


def load(root: Path, tmp_path: Path) -> dict:
    script = tmp_path / "load.mjs"
    script.write_text(SCRIPT)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    home = tmp_path / "gemini-home"
    home.mkdir(exist_ok=True)
    p = subprocess.run(in_private_etc(root, ["node", str(script), str(settings_loader()),
                                             str(work)]),
                       capture_output=True, text=True, timeout=120, cwd=work,
                       env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home)})
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_gemini_loads_the_generated_system_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("GEMINI_CLI_SYSTEM_SETTINGS_PATH", raising=False)
    root = tmp_path / "root"
    apply_to(root, inputs_for(tmp_path, ADMIN + '[agents]\ntelemetry = "server"\n',
                              'server.url = "https://corral.example.org"\n'), ("gemini",))
    got = load(root, tmp_path)
    assert got["errors"] == []
    assert got["path"] == "/etc/gemini-cli/settings.json"
    merged = got["merged"]
    before_tool = merged["hooks"]["BeforeTool"]
    assert before_tool[0]["hooks"][0]["name"] == "corral"
    assert "corral.integrations.hook_main gemini" in before_tool[0]["hooks"][0]["command"]
    assert merged["hooksConfig"]["enabled"] is True
    assert merged["security"]["auth"]["enforcedType"] == "oauth-personal"
    assert merged["security"]["disableYoloMode"] is True
    assert merged["telemetry"]["otlpEndpoint"] == "https://corral.example.org"


def test_gemini_reports_a_bad_file_and_skips_an_insecure_one(tmp_path, monkeypatch):
    """The loader is strict enough to fail: a wrong type is an error it reports, and a file
    others may write is skipped."""
    monkeypatch.delenv("GEMINI_CLI_SYSTEM_SETTINGS_PATH", raising=False)
    root = tmp_path / "root"
    apply_to(root, inputs_for(tmp_path, ADMIN), ("gemini",))
    target = root / "etc/gemini-cli/settings.json"
    doc = json.loads(target.read_text())
    doc["hooksConfig"]["enabled"] = "yes"
    target.write_text(json.dumps(doc))
    errors = load(root, tmp_path)["errors"]
    assert errors and "Invalid configuration in /etc/gemini-cli/settings.json" in \
        errors[0]["message"]
    target.chmod(0o666)
    errors = load(root, tmp_path)["errors"]
    assert errors and "Security Warning: Skipping system settings file" in errors[0]["message"]
