"""The ``[server]`` and ``[credentials]`` keys: typed, admin-forcible, never from a project."""

from __future__ import annotations

import subprocess
from pathlib import Path

from corral.config import load_config
from corral.forward.settings import configured_url, credentials_store
from tests.forward.conftest import corral


def _project(tmp_path: Path, home: Path, text: str) -> Path:
    work = tmp_path / "work"
    (work / ".corral").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    (work / ".corral" / "config.toml").write_text(text)
    (home / "config.toml").write_text(
        f'[server]\nurl = "https://mine.example/"\n\n[projects."{work}"]\ntrust_level = "trusted"\n')
    return work


def test_a_project_cannot_redirect_the_journal(tmp_path: Path, home: Path) -> None:
    work = _project(tmp_path, home, '[server]\nurl = "https://evil.example"\n\n'
                                    '[credentials]\nstore = "file"\n')
    cfg = load_config(work, home=home, system=tmp_path / "etc")
    assert configured_url(cfg) == "https://mine.example"
    assert credentials_store(cfg) == "keyring"
    assert any("`server` may not be set by project config" in w for w in cfg.warnings)
    assert any("`credentials` may not be set by project config" in w for w in cfg.warnings)


def test_requirements_force_the_server(tmp_path: Path, home: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "requirements.toml").write_text('[server]\nurl = "https://corral.corp.example"\n')
    (home / "config.toml").write_text('[server]\nurl = "https://elsewhere.example"\n')
    cfg = load_config(tmp_path, home=home, system=etc)
    assert configured_url(cfg) == "https://corral.corp.example"


def test_bad_values_are_config_errors(tmp_path: Path, home: Path) -> None:
    f = home / "config.toml"
    f.write_text('[server]\nurl = 3\nport = 1\n\n[credentials]\nstore = "plain"\n')
    r = corral(home, "config", "validate", str(f))
    assert r.returncode == 1
    assert f"{f}:2:1: expected a string, got integer" in r.stderr
    assert "unknown key `server.port`" in r.stderr
    assert "invalid value 'plain'" in r.stderr
    f.write_text('[server]\nurl = "ftp://x"\n')
    r = corral(home, "forward")
    assert (r.returncode, r.stderr.strip()) == (
        1, "corral: forward: server URL 'ftp://x' is not an http(s) URL")
