"""corral.sandbox: the OS boundary every command runs in (see ARCHITECTURE.md, docs/sandbox.md).

Public surface:
- ``build_plan(...)`` / ``plan_from_config(cfg, cwd, ...)`` -> ``SandboxPlan`` (computed once)
- ``Sandbox(plan).spawn(argv, cwd, env_extra) -> Popen`` and ``.run(...) -> SandboxResult``
- ``Locked(path, content)``: a path kept read-only even while missing (``build_plan(locked=)``)
- ``capabilities.checks() -> list[Check]`` for ``corral doctor``
- ``seatbelt.profile_text(plan)`` for macOS
"""

from __future__ import annotations

from corral.sandbox.envpolicy import EnvPolicy, build_env
from corral.sandbox.launcher import Sandbox, SandboxResult
from corral.sandbox.locked import Locked
from corral.sandbox.plan import (
    NetworkPlan,
    SandboxPlan,
    build_plan,
    network_mode,
    plan_from_config,
)
from corral.sandbox.process import SandboxedProcess
from corral.sandbox.profiles import Access, NetworkMode

__all__ = [
    "Access", "EnvPolicy", "Locked", "NetworkMode", "NetworkPlan", "Sandbox", "SandboxPlan",
    "SandboxResult", "SandboxedProcess", "Violation", "build_env", "build_plan",
    "explain_stderr", "network_mode", "plan_from_config",
]


def __getattr__(name: str) -> object:
    # feedback compiles regexes: only imported when a command failed and needs explaining
    if name in ("Violation", "explain_stderr"):
        from corral.sandbox import feedback

        return getattr(feedback, name)
    raise AttributeError(name)
