"""Fixtures for the approvals tests: a private CORRAL_HOME, a store on it, and the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.approvals import GrantStore
from tests.rules.conftest import codex_bin  # noqa: F401 - the real codex binary fixture

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "corral-home"
    h.mkdir()
    monkeypatch.setenv("CORRAL_HOME", str(h))
    return h


@pytest.fixture
def store(home: Path) -> Iterator[GrantStore]:
    s = GrantStore()
    yield s
    s.close()


@pytest.fixture
def corral(home: Path):
    """Run the real `corral` CLI in a child process against the test home."""
    env = dict(os.environ, CORRAL_HOME=str(home))

    def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "corral", *args], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)

    return run
