"""Layered configuration and admin requirements.

Public surface: ``load_config(cwd, overrides, profile, flags) -> EffectiveConfig``.
"""

from __future__ import annotations

from corral.config.loader import load_config
from corral.config.model import Constraint, EffectiveConfig, Origin, Requirements

__all__ = ["Constraint", "EffectiveConfig", "Origin", "Requirements", "load_config"]
