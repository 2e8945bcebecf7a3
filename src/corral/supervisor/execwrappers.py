"""What an exec at the boundary is decided as: plain data in, argv out (no I/O).

- The program that runs is the exec's path: an ``argv[0]`` naming another program (``exec -a
  ls /bin/rm``) is decided as the path, so deny rules (which match by basename) still apply.
- A shell started with ``-c SCRIPT`` is decided as the script, by the rules' own shell analysis.
- An agent's own wrapper around the model's command is unwrapped to that command, the same one
  its hook reports: Claude Code runs ``bash -c -l 'SETUP && eval CMD && pwd -P >| FILE'``.
- ``same_command`` matches a hook's argv with the exec that follows it.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable

SHELLS = frozenset({"bash", "sh", "dash", "zsh", "ksh", "mksh", "ash", "busybox"})
_CWD_TAIL = " && pwd -P >| "


def decision_argv(path: str, argv: tuple[str, ...],
                  setup_allowed: Callable[[str], bool] = lambda _: False) -> tuple[str, ...]:
    """The argv the rules decide for an exec of ``path`` with ``argv``. An agent wrapper is
    unwrapped only when its setup part is empty or ``setup_allowed``."""
    if not argv:
        return (path,)
    real, named = os.path.basename(path), os.path.basename(argv[0])
    if path and real != named and not real.startswith(named):  # python3 -> python3.11 is fine
        argv = (path, *argv[1:])
    inner = agent_command(argv)
    if inner is None:
        return argv
    setup = agent_setup(argv)
    return ("bash", "-lc", inner) if setup == "" or (setup and setup_allowed(setup)) else argv


def shell_script(argv: tuple[str, ...]) -> str | None:
    """SCRIPT of ``SHELL [-l] -c [-l] SCRIPT`` (flags in any of the usual spellings)."""
    i = script_index(argv)
    return None if i is None else argv[i]


def script_index(argv: tuple[str, ...]) -> int | None:
    """Where SCRIPT is in ``SHELL [-l] -c [-l] SCRIPT [ARG0 ARGS...]``, or None."""
    if len(argv) < 3 or os.path.basename(argv[0]) not in SHELLS:
        return None
    i, saw_c = 1, False
    while i < len(argv) - 1 and argv[i].startswith("-") and len(argv[i]) > 1:
        flags = argv[i][1:]
        if not set(flags) <= set("lc"):
            return None
        saw_c = saw_c or "c" in flags
        i += 1
    return i if saw_c else None


def agent_command(argv: tuple[str, ...]) -> str | None:
    """The model's command inside Claude Code's shell wrapper, or None when ``argv`` is not
    exactly that wrapper (then it is decided as it is)."""
    script = shell_script(argv)
    if script is None:
        return None
    head, sep, tail = script.rpartition(_CWD_TAIL)
    if not sep or not _one_word(tail):
        return None
    start = 0
    while (p := head.find("eval ", start)) >= 0:
        start = p + 1
        if p and head[max(0, p - 4):p] != " && ":
            continue
        try:
            words = shlex.split(head[p + 5:])
            if p:
                shlex.split(head[:p - 4])  # the setup before it is well formed
        except ValueError:
            continue
        if len(words) == 1 or (len(words) == 3 and words[1:] == ["<", "/dev/null"]):
            return words[0]
    return None


def _one_word(text: str) -> bool:
    try:
        return len(shlex.split(text)) == 1
    except ValueError:
        return False


def agent_setup(argv: tuple[str, ...]) -> str | None:
    """What Claude Code's wrapper runs before the model's command (``source`` of its shell
    snapshot and the like), decided too: only an allowed setup is unwrapped."""
    script = shell_script(argv)
    if script is None or agent_command(argv) is None:
        return None
    head = script.rpartition(_CWD_TAIL)[0]
    start = 0
    while (p := head.find("eval ", start)) >= 0:
        start = p + 1
        if p == 0:
            return ""
        if head[p - 4:p] == " && ":
            try:
                shlex.split(head[p + 5:])
                shlex.split(head[:p - 4])
            except ValueError:
                continue
            return head[:p - 4]
    return None


def same_command(hooked: tuple[str, ...], execd: tuple[str, ...]) -> bool:
    """Whether the exec ``execd`` (as decided) is the command a hook asked about: the same
    script for shells, else the same arguments and program name."""
    a, b = shell_script(hooked), shell_script(execd)
    if a is not None or b is not None:
        return a is not None and a == b
    if not hooked or not execd or len(hooked) != len(execd):
        return False
    return (os.path.basename(hooked[0]) == os.path.basename(execd[0])
            and hooked[1:] == execd[1:])
