"""The persistence paths of a home directory, locked whenever the sandbox can write there.

With ``$HOME`` as the workspace (or any writable root that contains one of these), a command
could plant code that runs later outside the sandbox: a ``core.fsmonitor`` in ``~/.gitconfig``,
a key in ``~/.ssh/authorized_keys``, a program in ``~/.local/bin`` ahead of the real one on
``PATH``, a systemd user unit, an autostart entry, a registry token redirect in ``~/.npmrc``.
Shell rc files are protected paths already (``corral.sandbox.protected``). Each path here becomes
a ``Locked`` value: read-only while it exists, and a read-only placeholder while it is missing
(or, when its directory is missing too, the highest missing directory gets one), so it cannot be
created either.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from corral.sandbox.locked import Locked, is_file_placeholder
from corral.sandbox.profiles import ROOT, is_under
from corral.sandbox.protected import is_placeholder

# (path under the home directory, placeholder content; None: a directory)
HOME_PERSISTENCE: tuple[tuple[str, bytes | None], ...] = (
    # git runs programs named in its global configuration
    (".gitconfig", b""), (".config/git/config", b""), (".config/git/attributes", b""),
    # remote logins and what sshd or ssh run for them
    (".ssh/authorized_keys", b""), (".ssh/authorized_keys2", b""), (".ssh/config", b""),
    (".ssh/rc", b""), (".ssh/environment", b""),
    # programs found on PATH before the real ones, started at login or by the session
    (".local/bin", None), ("bin", None), (".cargo/bin", None), (".config/systemd/user", None),
    (".config/autostart", None), (".config/environment.d", None), (".pam_environment", b""),
    (".xprofile", b""), (".xsessionrc", b""), (".xinitrc", b""), (".bash_aliases", b""),
    (".config/fish", None), (".config/direnv", None), (".ipython/profile_default/startup", None),
    (".vimrc", b""), (".gdbinit", b""), (".tmux.conf", b""),
    # package managers: registries, index URLs and credentials that redirect later installs
    (".npmrc", b""), (".yarnrc", b""), (".yarnrc.yml", b""), (".pypirc", b""),
    (".pip/pip.conf", b""), (".config/pip/pip.conf", b""), (".cargo/config.toml", b""),
    (".cargo/config", b""), (".docker/config.json", b"{}"), (".netrc", b""),
    (".git-credentials", b""), (".curlrc", b""), (".wgetrc", b""),
)


def _leftover(p: Path) -> bool:
    """A placeholder left by a killed run: locked again here, so that this run removes it."""
    return is_placeholder(p) or is_file_placeholder(p, b"") or is_file_placeholder(p, b"{}")


def home_locks(home: Path, writable: Iterable[Path], denied: Iterable[Path] = ()
               ) -> list[Locked]:
    """``Locked`` values for the persistence paths of ``home`` that lie in a ``writable``
    directory. Skipped: paths under an existing ``denied`` entry (hidden and read-only
    already). A path whose directory is missing locks the highest missing directory instead
    (a placeholder can only be made in an existing one)."""
    roots = [w for w in writable if w != ROOT]
    base = str(home).rstrip("/")
    exposed = [(home / rel, content) for rel, content in HOME_PERSISTENCE
               if any(is_under(f"{base}/{rel}", w) for w in roots)]
    if not exposed:  # the usual case, a home that is not writable: no deny entry to look at
        return []
    deny = [d for d in denied if os.path.lexists(d) and not _leftover(d)]
    out: dict[Path, Locked] = {}
    for full, content in exposed:
        if any(is_under(full, d) for d in deny):
            continue
        target, data = full, content
        for parent in reversed(full.relative_to(home).parents[:-1]):  # outermost first
            p = home / parent
            if not os.path.lexists(p) or _leftover(p):
                target, data = p, None
                break
        if any(is_under(target, d) for d in deny):
            continue
        if target not in out:
            out[target] = Locked(target, data)
    return list(out.values())
