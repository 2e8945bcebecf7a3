"""Fixtures for telemetry tests: a private CORRAL_HOME per test and a real EffectiveConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral.config.model import EffectiveConfig, Requirements


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "corral-home"
    h.mkdir()
    monkeypatch.setenv("CORRAL_HOME", str(h))
    return h


def make_cfg(home: Path, values: dict[str, Any] | None = None,
             requirements: dict[str, Any] | None = None) -> EffectiveConfig:
    """A real EffectiveConfig built from plain dicts (what load_config produces)."""
    return EffectiveConfig(values=values or {}, origins={},
                           requirements=Requirements(data=requirements or {},
                                                     sources=["/etc/corral/requirements.toml"]),
                           corral_home=home)
