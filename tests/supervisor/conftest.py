"""Shared fixtures: `corral` run as a real subprocess against a scratch CORRAL_HOME and git
workspace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def cli(tmp_path: Path):
    home = tmp_path / "home"
    (home / "rules").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    env = dict(os.environ, CORRAL_HOME=str(home), CORRAL_SYSTEM_DIR=str(tmp_path / "etc"))

    def run(*args: str, wait: bool = True, timeout: float = 60, home: Path | None = None):
        argv = [sys.executable, "-m", "corral", *args]
        if not wait:
            penv = dict(env, HOME=str(home)) if home else env
            return subprocess.Popen(argv, cwd=work, env=penv, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return subprocess.run(argv, cwd=work, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    run.home = home  # type: ignore[attr-defined]
    run.work = work  # type: ignore[attr-defined]
    return run
