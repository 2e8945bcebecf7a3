from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Env:
    root: Path
    home: Path
    system: Path
    project: Path

    def write(self, path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def system_config(self, text: str) -> Path:
        return self.write(self.system / "config.toml", text)

    def user_config(self, text: str) -> Path:
        return self.write(self.home / "config.toml", text)

    def requirements(self, text: str, name: str | None = None) -> Path:
        target = self.system / "managed" / name if name else self.system / "requirements.toml"
        return self.write(target, text)

    def project_config(self, text: str, sub: str = "") -> Path:
        return self.write(self.project / sub / ".corral" / "config.toml", text)

    def trust(self, level: str = "trusted") -> None:
        from corral.config.explain import set_trust

        set_trust(self.home / "config.toml", self.project, level)

    def load(self, cwd: Path | None = None, **kw: object):  # type: ignore[no-untyped-def]
        from corral.config import load_config

        return load_config(cwd or self.project, home=self.home, system=self.system, **kw)

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        import os

        env = dict(os.environ, CORRAL_HOME=str(self.home), CORRAL_SYSTEM_DIR=str(self.system))
        return subprocess.run(
            [sys.executable, "-m", "corral", *args], cwd=cwd or self.project, env=env,
            capture_output=True, text=True, timeout=60,
        )


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    e = Env(tmp_path, tmp_path / "home", tmp_path / "etc", tmp_path / "proj")
    e.home.mkdir()
    e.system.mkdir()
    (e.project / ".git").mkdir(parents=True)
    monkeypatch.setenv("CORRAL_HOME", str(e.home))
    monkeypatch.setenv("CORRAL_SYSTEM_DIR", str(e.system))
    return e
