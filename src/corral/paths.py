"""Where corral keeps its files. One place, so tests and the sandbox agree on them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Mapping

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


def moved_config_dir(env: str | None, subdir: str | None = None,
                     environ: Mapping[str, str] | None = None) -> Path | None:
    """The config dir an agent's variable ``env`` moves (absolute), or None when it is not set:
    the directory it names, or ``subdir`` inside it when the variable names the config dir's
    parent (Gemini CLI: ``$GEMINI_CLI_HOME/.gemini``). ``environ`` defaults to os.environ."""
    moved = (os.environ if environ is None else environ).get(env or "")
    if not moved:
        return None
    root = Path(os.path.abspath(os.path.expanduser(moved)))
    return root / subdir if subdir else root


GEMINI_HOME_ENV = "GEMINI_CLI_HOME"  # Gemini CLI's home: its config dir is ``.gemini`` inside


def gemini_dir(home: Path | None = None) -> Path:
    """Gemini CLI's user config dir: ``$GEMINI_CLI_HOME/.gemini`` when that is set (and no
    ``home`` is given), else ``<home or ~>/.gemini``. The one place this is resolved: hooks'
    install, check-in, the network proxy's config reading and ``corral run`` agree on it."""
    return (None if home is not None else moved_config_dir(GEMINI_HOME_ENV, ".gemini")) or (
        (home or Path.home()) / ".gemini")


AGENT_CONFIG_DIRS = {"codex": ".codex", "claude-code": ".claude", "gemini": ".gemini"}


def agent_user_dir(agent: str, home: Path | None = None) -> Path:
    """An agent's user config dir (``agent`` a key of AGENT_CONFIG_DIRS), where its user
    settings and corral's user-scope hooks live: ``$CODEX_HOME`` for Codex and
    ``$GEMINI_CLI_HOME/.gemini`` for Gemini CLI when set (and no ``home`` is given), else
    ``<home or ~>/.codex|.claude|.gemini``. Hooks' install and the fleet check-in agree on it."""
    if agent == "gemini":
        return gemini_dir(home)
    if agent == "codex" and home is None and os.environ.get("CODEX_HOME"):
        return Path(os.environ["CODEX_HOME"])
    return (home or Path.home()) / AGENT_CONFIG_DIRS[agent]


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


# A unix socket path holds at most 107 bytes on Linux; leave room for the names corral puts
# below a socket parent (``corral-session-XXXXXXXX/session.sock``).
SOCKET_PARENT_MAX = 100 - len("/corral-session-XXXXXXXX/session.sock")


def socket_parent(home: Path) -> Path:
    """Where a session's private socket directory goes: ``$CORRAL_HOME/state``, hidden in
    every sandbox, when that path is short enough; else :func:`private_runtime_dir`. Never the
    shared ``/tmp`` itself, which the sandbox mounts writable: there other sessions' sockets
    could be listed and unlinked from inside."""
    state = home / "state"
    if len(str(state)) <= SOCKET_PARENT_MAX:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        return state
    return private_runtime_dir()


def _runtime_candidates() -> list[Path]:
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    bases = [Path(xdg) / "corral"] if xdg.startswith("/") else []
    return [*bases, Path("/tmp") / f"corral-{os.geteuid()}"]


def runtime_dirs_to_hide() -> list[Path]:
    """Every private runtime directory a session of this user may use, for the sandbox to deny.
    Made (0700) when missing, so a sandbox started before the first long-home session still
    has it hidden (a directory created later in a writable /tmp would show up inside)."""
    out = []
    for d in _runtime_candidates():
        try:
            d.mkdir(mode=0o700, exist_ok=True)
            st = os.lstat(d)
        except OSError:
            continue
        # only ours: denying another user's symlink would hide whatever it points at
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid():
            out.append(d)
    return out


def private_runtime_dir() -> Path:
    """A short per-user directory for sockets: ``$XDG_RUNTIME_DIR/corral``, else
    ``/tmp/corral-<uid>``. Created 0700; refused unless it is a real directory of ours that
    nobody else can enter (another user could have made it first). Callers hide it inside the
    sandbox (every sandbox plan denies :func:`runtime_dirs_to_hide`)."""
    from corral.errors import CorralError

    uid = os.geteuid()
    bases = _runtime_candidates()
    d = next((b for b in bases if len(str(b)) <= SOCKET_PARENT_MAX), bases[-1])
    try:
        d.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(d)
    except OSError as exc:
        raise CorralError("run", f"cannot make the private socket directory {d}: "
                          f"{exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise CorralError("run", f"{d} is not a private directory (owner uid {st.st_uid}, mode "
                          f"{stat.S_IMODE(st.st_mode):o}): sockets there could be reached by "
                          "others", "remove it, or set a shorter CORRAL_HOME")
    return d
