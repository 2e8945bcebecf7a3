"""corral.sandbox: the OS boundary every command runs in (see ARCHITECTURE.md, docs/sandbox.md).

Public surface:
- ``build_plan(...)`` / ``plan_from_config(cfg, cwd, ...)`` -> ``SandboxPlan`` (computed once)
- ``Sandbox(plan).spawn(argv, cwd, env_extra) -> Popen`` and ``.run(...) -> SandboxResult``
- ``Locked(path, content)``: a path kept read-only even while missing (``build_plan(locked=)``)
- ``capabilities.checks() -> list[Check]`` for ``corral doctor``
- ``seatbelt.profile_text(plan)`` for macOS
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from corral.sandbox.envpolicy import EnvPolicy, build_env
    from corral.sandbox.feedback import Violation, explain_stderr
    from corral.sandbox.launcher import Sandbox, SandboxResult
    from corral.sandbox.locked import Locked
    from corral.sandbox.plan import (
        NetworkPlan,
        SandboxPlan,
        build_plan,
        network_mode,
        plan_from_config,
    )
    from corral.sandbox.popen import SandboxedProcess
    from corral.sandbox.profiles import Access, NetworkMode

__all__ = [
    "Access", "EnvPolicy", "Locked", "NetworkMode", "NetworkPlan", "Sandbox", "SandboxPlan",
    "SandboxResult", "SandboxedProcess", "Violation", "build_env", "build_plan",
    "explain_stderr", "network_mode", "plan_from_config",
]

# Each name is imported on first use, so a submodule (``corral.sandbox.pidcap``, imported
# before anything else to start the pids cgroup's wait early) does not load the launcher and
# pathlib with the package; feedback compiles regexes and is only needed to explain a failure.
_WHERE = {
    "EnvPolicy": "envpolicy", "build_env": "envpolicy",
    "Violation": "feedback", "explain_stderr": "feedback",
    "Sandbox": "launcher", "SandboxResult": "launcher",
    "Locked": "locked",
    "NetworkPlan": "plan", "SandboxPlan": "plan", "build_plan": "plan",
    "network_mode": "plan", "plan_from_config": "plan",
    "SandboxedProcess": "popen",
    "Access": "profiles", "NetworkMode": "profiles",
}


def __getattr__(name: str) -> object:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'corral.sandbox' has no attribute {name!r}")
    import sys

    module = f"corral.sandbox.{where}"
    __import__(module)  # not importlib.import_module: importlib is one more import (~0.1 ms)
    value = getattr(sys.modules[module], name)
    globals()[name] = value
    return value
