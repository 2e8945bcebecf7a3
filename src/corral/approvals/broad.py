"""Prefixes too broad to grant: a grant for them would approve arbitrary code.

Three kinds of refusal, each with a one-line reason (documented in docs/approvals.md):

* runners: programs whose job is to run another command (``sudo``, ``env``, ``xargs``,
  ``find``...). Any pattern starting with them is refused, however long.
* interpreters and shells: refused alone (``python3``) and with an inline-code flag whose code
  is not pinned (``python3 -c``, ``bash -lc``, ``node -e``). ``bash -c 'make test'`` (code
  pinned) is fine.
* broad prefixes: ``git``, ``npm``, ``pip``, ``npx``... alone, and sub-commands that run
  arbitrary code (``git -c``, ``npm exec``, ``uv run``), with or without further tokens.
"""

from __future__ import annotations

import re

RUNNERS = frozenset({
    "sudo", "doas", "su", "pkexec", "run0", "env", "xargs", "find", "nohup", "nice", "ionice",
    "timeout", "time", "stdbuf", "setsid", "chroot", "unshare", "nsenter", "flock", "watch",
    "parallel", "busybox", "eval", "exec", "command", "builtin", "strace", "ltrace", "gdb",
    "script", "chrt", "taskset", "systemd-run", "firejail", "bwrap", "ssh", "docker", "podman",
    "kubectl", "corral",
})

SHELLS = frozenset({"bash", "sh", "zsh", "dash", "ksh", "mksh", "fish", "csh", "tcsh", "ash",
                    "pwsh", "powershell", "cmd", "osascript"})

INTERPRETERS = frozenset({
    "python", "python2", "python3", "pypy", "pypy3", "node", "nodejs", "deno", "bun", "perl",
    "ruby", "irb", "php", "lua", "luajit", "tclsh", "wish", "Rscript", "R", "julia", "awk",
    "gawk", "mawk", "nawk", "sed", "jshell", "groovy", "scala", "java", "dotnet", "swift",
    "ghci", "runghc", "guile", "sbcl", "clojure", "elixir", "erl", "escript", "raku", "expect",
    "vim", "nvim", "emacs", "make", "gcc", "cc",
})

# Flags that take program text (or a module/file to execute chosen at run time).
CODE_FLAGS = frozenset({
    "-c", "-e", "-E", "-p", "-r", "-m", "-x", "--eval", "--print", "--command", "-Command",
    "-command", "-EncodedCommand", "-enc", "-f", "--exec", "-i", "-", "--run", "run", "eval",
    "--expression", "-ne", "-pe", "-le", "-lne", "-pie",
})

# Refused when the pattern equals one of these or is a shorter prefix of one.
BROAD: tuple[tuple[str, ...], ...] = (
    ("git",), ("npm",), ("pnpm",), ("yarn",), ("pip",), ("pip3",), ("npx",), ("uvx",),
    ("bunx",), ("pipx",), ("uv",), ("poetry",), ("cargo",), ("go",), ("gh",), ("apt",),
    ("apt-get",), ("brew",), ("curl",), ("wget",), ("rm",), ("chmod",), ("chown",), ("dd",),
    ("mv",), ("cp",), ("tee",), ("install",), ("ln",), ("rsync",), ("scp",), ("nc",),
    ("ncat",), ("socat",), ("openssl",), ("crontab",), ("systemctl",), ("launchctl",),
)

# Refused with or without further tokens: these run code chosen later.
BROAD_ANY_TAIL: tuple[tuple[str, ...], ...] = (
    ("git", "-c"), ("git", "--config-env"), ("git", "--exec-path"), ("npm", "exec"),
    ("npm", "x"), ("npm", "run-script"), ("pnpm", "exec"), ("pnpm", "dlx"), ("yarn", "dlx"),
    ("yarn", "exec"), ("uv", "run"), ("uv", "tool"), ("poetry", "run"), ("pipx", "run"),
    ("cargo", "run"), ("go", "run"), ("pip", "install"), ("pip3", "install"),
)

_VERSIONED = re.compile(r"^(python|pypy|perl|ruby|php|lua|node)[0-9][0-9.]*$")


def shown(tokens: tuple[str, ...] | list[str]) -> str:
    """Tokens for a one-line message: quoted (JSON, ASCII only, so DEL, C1, bidi and
    zero-width characters are escapes too) when not plain; safe for a terminal either way."""
    import json

    from corral.display import shown as safe

    return " ".join(safe(t) if t and all(c.isprintable() and c not in ' "\\' for c in t)
                    else json.dumps(t) for t in tokens)


def program_name(token: str) -> str:
    """The basename of argv[0], with version suffixes folded (python3.12 -> python3)."""
    base = token.rsplit("/", 1)[-1]
    m = _VERSIONED.match(base)
    if m:
        return m.group(1) + ("3" if base.startswith(("python3", "pypy3")) else "")
    return base


def _is_code_flag(tok: str, shell: bool) -> bool:
    if tok in CODE_FLAGS:
        return True
    # bash -lc, -ic, -xc, -ec ...: a short-option cluster that ends in c takes a script.
    return shell and tok.startswith("-") and not tok.startswith("--") and tok.endswith("c")


def why_too_broad(pattern: tuple[str, ...] | list[str]) -> str | None:
    """The reason a command prefix may not be granted, or None when it is narrow enough."""
    if not pattern:
        return "an empty prefix would approve every command"
    if any("\x00" in t for t in pattern):
        return "a prefix token contains a NUL byte"
    head = program_name(pattern[0])
    norm: tuple[str, ...] = (head, *pattern[1:])
    if not head.strip():
        return "the program name is empty"
    if head in RUNNERS:
        return f"`{head}` runs whatever command follows it, so no prefix starting with it is granted"
    if head in SHELLS or head in INTERPRETERS:
        if len(norm) == 1:
            return f"`{head}` alone would approve any program it is given"
        if _is_code_flag(norm[1], head in SHELLS) and len(norm) == 2:
            return f"`{shown(norm[:2])}` without the code itself would approve arbitrary code"
        if norm[1] in ("-m",) and len(norm) >= 3 and norm[2] in ("pip", "venv", "http.server"):
            return f"`{shown(norm[:3])}` runs arbitrary code or serves files"
    for broad in BROAD_ANY_TAIL:
        if norm[: len(broad)] == broad:
            return f"`{' '.join(broad)}` runs code chosen at run time, so it is never granted"
    for broad in BROAD:
        if len(norm) <= len(broad) and broad[: len(norm)] == norm:
            return f"`{shown(norm)}` alone is too broad; grant a specific sub-command"
    return None
