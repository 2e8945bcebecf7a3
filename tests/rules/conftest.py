"""Shared fixtures for the rules tests: the real codex binary (fails loudly when missing)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_BIN = ROOT / ".tools" / "node" / "node_modules"
NATIVE = NODE_BIN / "@openai" / "codex-linux-x64" / "vendor" / "x86_64-unknown-linux-musl" / "bin" / "codex"
WRAPPER = NODE_BIN / ".bin" / "codex"


@pytest.fixture(scope="session")
def codex_bin() -> Path:
    """The native codex binary from the npm package (the node wrapper costs ~100 ms a call)."""
    for cand in (NATIVE, WRAPPER):
        if cand.exists() and os.access(cand, os.X_OK):
            return cand
    pytest.fail("codex CLI not installed: run scripts/setup --dev (npm package @openai/codex)")
