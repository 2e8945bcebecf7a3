"""Where corral keeps its files. One place, so tests and the sandbox agree on them."""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_DIR_DEFAULT = Path("/etc/corral")


def corral_home() -> Path:
    """``$CORRAL_HOME``, default ``~/.corral``. Never readable or writable inside the sandbox."""
    env = os.environ.get("CORRAL_HOME")
    return Path(env).expanduser().absolute() if env else Path.home() / ".corral"


def system_dir() -> Path:
    """The admin directory (``/etc/corral``).

    ``CORRAL_SYSTEM_DIR`` may point elsewhere (tests, relocatable installs) but only while the
    real ``/etc/corral`` holds no requirements: otherwise a user could escape admin constraints
    by setting an environment variable.
    """
    env = os.environ.get("CORRAL_SYSTEM_DIR")
    if env and not _has_requirements(SYSTEM_DIR_DEFAULT):
        return Path(env).absolute()
    return SYSTEM_DIR_DEFAULT


def _has_requirements(d: Path) -> bool:
    try:
        if (d / "requirements.toml").exists():
            return True
        managed = d / "managed"
        return managed.is_dir() and any(managed.glob("*.toml"))
    except OSError:
        return True  # cannot tell: behave as if the admin directory is in force


def state_dir() -> Path:
    return corral_home() / "state"
