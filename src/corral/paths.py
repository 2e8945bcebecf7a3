"""Where corral keeps its files. One place, so tests and the sandbox agree on them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from corral.errors import CorralError

# The administrator's directory. A module constant, not an environment variable, so tests can
# point it at a scratch directory (monkeypatch, or a subprocess that sets it) while nothing an
# unprivileged user controls can.
SYSTEM_DIR_DEFAULT = Path("/etc/corral")


def corral_home() -> Path:
    """``$CORRAL_HOME``, default ``~/.corral``. Never readable or writable inside the sandbox."""
    env = os.environ.get("CORRAL_HOME")
    return Path(env).expanduser().absolute() if env else Path.home() / ".corral"


def system_dir() -> Path:
    """The admin directory (``/etc/corral``).

    ``CORRAL_SYSTEM_DIR`` may point elsewhere (tests, relocatable installs) only while the real
    directory is absent or empty. Anything an administrator put there (requirements, a system
    config naming a signed bundle, system rules, even a file we do not know yet) keeps it in
    force: relocating must never drop a constraint. (Composing both directories was the other
    option; it would let the relocated system config compete with the administrator's, for
    every key that is not a requirement.)
    """
    env = os.environ.get("CORRAL_SYSTEM_DIR")
    if env and not admin_dir_in_use(SYSTEM_DIR_DEFAULT):
        return Path(env).absolute()
    return SYSTEM_DIR_DEFAULT


def admin_dir_in_use(d: Path) -> bool:
    """True unless ``d`` does not exist or is an empty directory. Fails closed: a symlink, a
    file, or a directory we cannot list counts as in use."""
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    if not stat.S_ISDIR(st.st_mode):
        return True
    try:
        with os.scandir(d) as it:
            return next(it, None) is not None
    except OSError:
        return True  # unreadable: cannot tell, so the admin's directory applies


def state_dir() -> Path:
    return corral_home() / "state"


def unreachable(control: str, path: Path | str, exc: BaseException,
                what: str | None = None) -> CorralError:
    """The one-line refusal when corral's own files cannot be used: inside the sandbox
    ``$CORRAL_HOME`` is hidden and settings are read-only by design (grants, journal, keys,
    hooks), which deserves a sentence rather than a traceback. ``CORRAL_SANDBOX`` only picks
    the wording; the refusal itself comes from the failed open."""
    from corral.errors import CorralError

    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    head = f"cannot use {what} ({path}: {reason})" if what else f"cannot use {path}: {reason}"
    if os.environ.get("CORRAL_SANDBOX") == "1":
        return CorralError(control, f"{head}: this runs inside corral's sandbox, which hides "
                           "$CORRAL_HOME and keeps settings read-only by design",
                           "run it in a terminal outside the sandbox")
    return CorralError(control, head)
