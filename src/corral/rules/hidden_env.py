"""Environment variables that name programs other programs will run.

``GIT_SSH_COMMAND='rm -rf x' git fetch`` runs ``rm``; the shell analyser sees only ``git``.
Each variable here says how its value is used; ``classify`` turns one assignment into the
commands it makes run (shell text to analyse), shared objects the dynamic loader will map, or a
reason the value cannot be checked. Plain data and string work only.
"""

from __future__ import annotations

from corral.rules.inline_result import shown
from corral.rules.wrappers import git_config_runs_program

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

# value is a command line a program runs (git and less run these through ``sh -c``; the editor
# and pager get the file name appended)
_SCRIPT = {
    "GIT_SSH_COMMAND": "git", "GIT_SSH": "git", "GIT_EXTERNAL_DIFF": "git",
    "GIT_PAGER": "git", "GIT_EDITOR": "git", "GIT_SEQUENCE_EDITOR": "git",
    "GIT_ASKPASS": "git", "GIT_PROXY_COMMAND": "git", "SSH_ASKPASS": "ssh",
    "SUDO_ASKPASS": "sudo", "PAGER": "man, git and others", "MANPAGER": "man",
    "SYSTEMD_PAGER": "systemctl", "PSQL_PAGER": "psql", "EDITOR": "git, crontab and others",
    "VISUAL": "git, crontab and others", "FCEDIT": "the shell's fc", "BROWSER": "xdg-open and others",
    "PROMPT_COMMAND": "bash", "LESSOPEN": "less", "LESSCLOSE": "less", "RSYNC_RSH": "rsync",
    "RSYNC_CONNECT_PROG": "rsync", "CVS_RSH": "cvs", "SVN_SSH": "svn",
}
# shared objects the dynamic loader maps into every program started with this environment
_LIBRARY = {"LD_PRELOAD": "the dynamic loader", "LD_AUDIT": "the dynamic loader"}
# a file or directory of startup code a shell runs first
_STARTUP = {"BASH_ENV": "bash", "ENV": "sh", "ZDOTDIR": "zsh"}
# option strings that can make an interpreter load code before the program
_OPTIONS = {
    "NODE_OPTIONS": ("node", ("-r", "--require", "--import", "--loader", "--experimental-loader")),
    "PERL5OPT": ("perl", ("-M", "-m", "-d")),
    "RUBYOPT": ("ruby", ("-r",)),
    "JAVA_TOOL_OPTIONS": ("java", ("-javaagent", "-agentpath", "-agentlib")),
    "_JAVA_OPTIONS": ("java", ("-javaagent", "-agentpath", "-agentlib")),
}
# git configuration from the environment: can set core.pager, alias.*, core.sshCommand ...
_GIT_CONFIG = frozenset({"GIT_CONFIG_PARAMETERS", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM",
                         "GIT_CONFIG", "GIT_EXEC_PATH", "GIT_TEMPLATE_DIR"})

NAMES = frozenset(_SCRIPT.keys() | _LIBRARY.keys() | _STARTUP.keys() | _OPTIONS.keys()
                  | _GIT_CONFIG)
PREFIXES = ("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")  # and every name starting with these


def is_hidden(name: str) -> bool:
    """Whether assigning ``name`` can make some program run another one."""
    return name in NAMES or name.startswith(PREFIXES)


def from_environment(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The entries of ``env`` that name programs, sorted (a cache key for a decision)."""
    found = [(k, v) for k, v in env.items() if is_hidden(k)]
    found.sort()
    return tuple(found)


class Hidden:
    """What one assignment makes run: shell text, shared objects, or why it cannot be checked."""

    __slots__ = ("libraries", "problem", "script")

    def __init__(self, script: str | None = None, libraries: tuple[str, ...] = (),
                 problem: str | None = None) -> None:
        self.script = script
        self.libraries = libraries
        self.problem = problem


_NOTHING = Hidden()


def classify(name: str, value: str | None) -> Hidden:
    """How ``name=value`` shapes what runs; ``value`` None means it is computed at run time."""
    who = (_SCRIPT.get(name) or _LIBRARY.get(name) or _STARTUP.get(name)
           or (_OPTIONS[name][0] if name in _OPTIONS else "git"))
    if value is None:
        return Hidden(problem=f"{name} is computed at run time, and {who} runs what it names")
    if not value.strip():
        return _NOTHING  # empty: the feature is off
    if name in _SCRIPT:
        if name in ("LESSOPEN", "LESSCLOSE"):
            value = value.lstrip("|").replace("%s", "FILE")
        return Hidden(script=value)
    if name in _LIBRARY:
        libs = tuple(p for p in value.replace(":", " ").split() if p)
        return Hidden(libraries=libs)
    if name in _STARTUP:
        if value == "/dev/null":
            return _NOTHING
        return Hidden(problem=f"{name}={shown(value)} makes {who} run startup code from that "
                              "file first; "
                              "its commands cannot be checked")
    if name in _OPTIONS:
        prog, loaders = _OPTIONS[name]
        words = value.split()
        for w in words:
            if any(w == opt or w.startswith(opt) for opt in loaders):
                return Hidden(problem=f"{name} makes every {prog} load code first (`{shown(w)}`); "
                                      "what it runs cannot be checked")
        return _NOTHING
    if name.startswith("GIT_CONFIG_KEY_"):
        if git_config_runs_program(value):
            return Hidden(problem=f"{name}={shown(value)} sets a git option that runs a program")
        return _NOTHING
    if name not in _GIT_CONFIG or value == "/dev/null":
        return _NOTHING  # GIT_CONFIG_VALUE_n: its key says whether it matters
    return Hidden(problem=f"{name}={shown(value)} gives git configuration or programs from "
                          "elsewhere; "
                          "what git runs cannot be checked")
