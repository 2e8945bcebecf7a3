"""Commands that run other commands: find the inner command line of each.

Each unwrapper takes the wrapper's Argv and returns the inner Argvs (possibly none, e.g.
``command -v rm`` runs nothing). Option tables list which options take a value, so the first
operand is found the way the real tool finds it.
"""

from __future__ import annotations

from collections.abc import Callable

from corral.rules.argv import Argv

SHELLS = frozenset({"bash", "sh", "zsh", "dash", "ksh", "mksh", "ash", "yash", "posh", "rbash"})


def basename(word: str) -> str:
    return word.rstrip("/").rsplit("/", 1)[-1] if "/" in word else word


def _skip_options(
    a: Argv, start: int, with_value: frozenset[str], long_with_value: frozenset[str] = frozenset(),
    assignments: bool = False, stop_at_dashdash: bool = True, numeric_opts: bool = False,
) -> int | None:
    """Index of the first operand after options, or None if options never end (unknown words)."""
    i = start
    n = len(a)
    while i < n:
        if not a.known(i):
            return None
        tok = a.tokens[i]
        if tok == "--" and stop_at_dashdash:
            return i + 1
        if tok.startswith("--") and len(tok) > 2:
            name = tok.split("=", 1)[0]
            i += 2 if (name in long_with_value and "=" not in tok) else 1
            continue
        if tok.startswith("-") and len(tok) > 1:
            if numeric_opts and tok[1:].isdigit():
                i += 1
                continue
            # a cluster like -un: value-taking option consumes the rest or the next word
            for j, ch in enumerate(tok[1:], 1):
                if ch in with_value:
                    i += 1 if j < len(tok) - 1 else 2
                    break
            else:
                i += 1
            continue
        if assignments and "=" in tok and not tok.startswith("=") and tok.split("=", 1)[0].replace("_", "a").isalnum():
            i += 1
            continue
        return i
    return n


def _simple(with_value: str, long_with_value: tuple[str, ...] = (), assignments: bool = False,
            numeric: bool = False, extra_operands: int = 0) -> Callable[[Argv], list[Argv] | None]:
    wv = frozenset(with_value)
    lwv = frozenset(long_with_value)

    def unwrap(a: Argv) -> list[Argv] | None:
        i = _skip_options(a, 1, wv, lwv, assignments=assignments, numeric_opts=numeric)
        if i is None:
            return None
        i += extra_operands
        if i >= len(a):
            return []
        return [a.sub(i)]

    return unwrap


def _command_builtin(a: Argv) -> list[Argv] | None:
    i = 1
    while i < len(a) and a.known(i) and a.tokens[i].startswith("-") and a.tokens[i] != "--":
        if any(c in a.tokens[i] for c in "vV"):
            return []  # command -v/-V only describes the command
        i += 1
    if i < len(a) and a.tokens[i] == "--":
        i += 1
    if i < len(a) and not a.known(i):
        return None
    return [a.sub(i)] if i < len(a) else []


def _xargs(a: Argv) -> list[Argv] | None:
    i = _skip_options(a, 1, frozenset("adEILnPs"),
                      frozenset({"--arg-file", "--delimiter", "--max-args", "--max-procs",
                                 "--max-chars", "--max-lines", "--replace", "--eof",
                                 "--process-slot-var"}))
    if i is None:
        return None
    inner = a.sub(i) if i < len(a) else Argv.of(["echo"])
    return [inner.plus_open_tail()]


def _time(a: Argv) -> list[Argv] | None:
    i = 1
    while i < len(a) and a.known(i) and a.tokens[i] in ("-p", "!", "--"):
        i += 1
    return [a.sub(i)] if i < len(a) else []


def _find(a: Argv) -> list[Argv] | None:
    out = []
    i = 1
    while i < len(a):
        if a.known(i) and a.tokens[i] in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            while j < len(a) and not (a.known(j) and a.tokens[j] in (";", "+")):
                j += 1
            inner = a.sub(i + 1, j)
            if len(inner):
                braces = frozenset(k for k, t in enumerate(inner.tokens) if "{}" in t)
                out.append(Argv(inner.tokens, inner.unknown | braces, inner.open_from))
            i = j + 1
            continue
        i += 1
    return out


def _coproc(a: Argv) -> list[Argv] | None:
    """``coproc [NAME] CMD`` / ``coproc NAME { ...; }``: bash's keyword, unknown to the parser."""
    out = [a.sub(1)] if len(a) > 1 else []
    for i in range(1, min(len(a), 3)):
        if a.known(i) and a.tokens[i] in ("{", "("):
            out.append(a.sub(i + 1))
    return out


def _watch(a: Argv) -> list[Argv] | None:
    """watch joins its arguments and runs them with ``sh -c``."""
    i = _skip_options(a, 1, frozenset("nq"), frozenset({"--interval", "--differences"}))
    if i is None:
        return None
    rest = a.sub(i)
    if not len(rest):
        return []
    if not rest.fully_static:
        return None
    return [Argv(("sh", "-c", " ".join(rest.tokens)))]


def _parallel(a: Argv) -> list[Argv] | None:
    """GNU ``parallel [options] CMD ::: ARGS``: CMD with arguments appended at run time; with no
    CMD the commands come from the arguments or standard input (unknown)."""
    i = _skip_options(a, 1, frozenset("jSanNLIdEl"),
                      frozenset({"--jobs", "--sshlogin", "--arg-file", "--max-args",
                                 "--max-lines", "--replace", "--delimiter", "--eof", "--colsep",
                                 "--joblog", "--results", "--tmpdir", "--workdir", "--wd",
                                 "--delay", "--timeout", "--retries", "--env", "--basefile",
                                 "--return", "--transfer-file", "--sshloginfile", "--nice",
                                 "--memfree", "--load", "--tagstring", "--header"}))
    if i is None:
        return None
    end = i
    while end < len(a) and not (a.known(end) and a.tokens[end].startswith(":::")):
        end += 1
    if end == i:
        return None
    return [a.sub(i, end).plus_open_tail()]


UNWRAPPERS: dict[str, Callable[[Argv], list[Argv] | None]] = {
    "env": _simple("uCSP", ("--unset", "--chdir", "--split-string", "--block-signal",
                            "--default-signal", "--ignore-signal"), assignments=True),
    "sudo": _simple("ughpCDrtTUR", ("--user", "--group", "--host", "--prompt", "--close-from",
                                    "--chdir", "--role", "--type", "--command-timeout",
                                    "--other-user", "--chroot"), assignments=True),
    "doas": _simple("uC"),
    "nice": _simple("n", ("--adjustment",), numeric=True),
    "ionice": _simple("cnp", ("--class", "--classdata", "--pid")),
    "nohup": _simple(""),
    "setsid": _simple(""),
    "stdbuf": _simple("ioe", ("--input", "--output", "--error")),
    "timeout": _simple("ks", ("--kill-after", "--signal"), extra_operands=1),
    "chrt": _simple("T", ("--sched-runtime", "--sched-period", "--sched-deadline"),
                    extra_operands=1),
    "taskset": _simple("", extra_operands=1),
    "flock": _simple("wEc", ("--timeout", "--conflict-exit-code", "--command"), extra_operands=1),
    "chroot": _simple("", ("--userspec", "--groups"), extra_operands=1),
    "exec": _simple("a"),
    "builtin": _simple(""),
    "command": _command_builtin,
    "time": _time,
    "xargs": _xargs,
    "find": _find,
    "watch": _watch,
    "busybox": _simple(""),
    "strace": _simple("abeEIOopPsSuX", ("--output", "--expr", "--attach", "--string-limit",
                                        "--user", "--env", "--detach-on", "--signal",
                                        "--trace", "--trace-path", "--status")),
    "ltrace": _simple("aAeEfnopsSuwx", ("--output", "--align", "--indent", "--library")),
    "unbuffer": _simple(""),
    # tree-sitter-bash reads these as plain command names; bash/zsh run what follows
    "!": _simple(""),
    "coproc": _coproc,
    "noglob": _simple(""),
    "nocorrect": _simple(""),
    "repeat": _simple("", extra_operands=1),
    # more programs that run the command after their options
    "parallel": _parallel,
    "unshare": _simple("SGRw", ("--setuid", "--setgid", "--root", "--wd")),
    "nsenter": _simple("tSGrw", ("--target", "--setuid", "--setgid", "--root", "--wd")),
    "setpriv": _simple("", ("--reuid", "--regid", "--groups", "--inh-caps", "--ambient-caps",
                            "--bounding-set", "--securebits", "--selinux-label",
                            "--apparmor-profile", "--pdeathsig", "--ruid", "--euid", "--rgid",
                            "--egid")),
    "prlimit": _simple("p", ("--pid", "--output")),
    "numactl": _simple("CmNpPi", ("--physcpubind", "--membind", "--cpunodebind", "--preferred",
                                   "--interleave")),
    "fakeroot": _simple("is", ("--lib", "--faked")),
    "faketime": _simple("mf", (), extra_operands=1),
    "xvfb-run": _simple("nsfe", ("--server-num", "--server-args", "--auth-file",
                                 "--error-file", "--xauth-protocol")),
    "dbus-run-session": _simple("", ("--config-file", "--dbus-daemon")),
    "systemd-run": _simple("pEuMH", ("--unit", "--property", "--description", "--slice",
                                     "--uid", "--gid", "--setenv", "--working-directory",
                                     "--machine", "--host", "--on-active", "--on-calendar",
                                     "--nice")),
    "firejail": _simple(""),
    "torsocks": _simple("uapPi"),
    "proxychains": _simple("f"),
    "proxychains4": _simple("f"),
    "valgrind": _simple(""),
    "chronic": _simple(""),
}

SCRIPT_OPTIONS: dict[str, tuple[str, ...]] = {
    # wrappers that take a whole shell command line in an option value
    "su": ("-c", "--command"),
    "runuser": ("-c", "--command"),
    "script": ("-c", "--command"),
    "flock": ("-c", "--command"),
}


def option_value(a: Argv, names: tuple[str, ...], leading_only: bool = False,
                 limit: int = 16) -> tuple[bool, str | None]:
    """(present, value) of the first of ``names`` (``-c V``, ``-cV`` for short, ``--x=V``)
    among the first ``limit`` words; value None when it is computed at run time. With
    ``leading_only`` the search stops at the first operand (``env``: options come first)."""
    for i in range(1, min(len(a), limit + 1)):
        if not a.known(i):
            continue
        tok = a.tokens[i]
        if leading_only and (tok == "--" or (not tok.startswith("-") and "=" not in tok)):
            break
        for name in names:
            if tok == name:
                return True, a.tokens[i + 1] if a.known(i + 1) else None
            if name.startswith("--") and tok.startswith(name + "="):
                return True, tok.split("=", 1)[1]
            if not name.startswith("--") and tok.startswith(name) and len(tok) > len(name):
                return True, tok[len(name):]
    return False, None


def git_script(norm: Argv) -> tuple[str, str | None] | None:
    """Shell commands a git subcommand runs: ``submodule foreach CMD``, ``rebase --exec CMD``,
    ``bisect run CMD...``. (kind, text) with kind "script" or "argv"; text None if dynamic."""
    t = norm.tokens
    if len(t) > 2 and t[1] == "submodule" and "foreach" in t:
        j = t.index("foreach") + 1
        while j < len(t) and t[j] in ("--recursive", "-q", "--quiet"):
            j += 1
        rest = norm.sub(j)
        return ("script", " ".join(rest.tokens) if rest.fully_static else None) if len(rest) else None
    if len(t) > 1 and t[1] == "rebase":
        present, value = option_value(norm, ("--exec", "-x"))
        return ("script", value) if present else None
    if len(t) > 3 and t[1] == "bisect" and t[2] == "run":
        return ("argv", None)
    return None


GIT_RISKY_CONFIG = (
    "alias.", "core.pager", "core.editor", "core.sshcommand", "core.fsmonitor", "core.hookspath",
    "diff.external", "credential.helper", "sequence.editor", "core.askpass", "pager.",
    "gpg.program", "uploadpack.", "receivepack.", ".textconv", ".command", "ssh.variant",
    "protocol.")


# Values that switch a program-running setting off (or to git's built-in behaviour): agents
# pass e.g. ``-c core.fsmonitor=false -c core.askPass= -c protocol.file.allow=never`` on
# every git call, and asking about those would bury the real questions.
GIT_HARMLESS_VALUES = frozenset({"", "false", "no", "off", "0", "never", "/dev/null"})
GIT_BUILTIN_VALUES = {"core.fsmonitor": frozenset({"true", "yes", "on", "1"})}


def git_config_runs_program(key: str, value: str | None = None) -> bool:
    """Whether setting the git configuration ``key`` (to ``value``, when known) can make git
    run a program."""
    low = key.lower()
    if not any(r in low or low.startswith(r) for r in GIT_RISKY_CONFIG):
        return False
    if value is None:
        return True
    val = value.strip().lower()
    return val not in GIT_HARMLESS_VALUES and val not in GIT_BUILTIN_VALUES.get(low, ())


def _git_setting_runs_program(setting: str, option: str) -> bool:
    """``KEY=VALUE`` given to ``git -c`` (``KEY`` alone means true); ``--config-env`` names an
    environment variable for the value, which is not known here."""
    key, eq, value = setting.partition("=")
    if option != "-c":
        return git_config_runs_program(key)
    return git_config_runs_program(key, value if eq else "true")


def git_normalized(a: Argv) -> tuple[Argv | None, str | None]:
    """``git [global options] SUB ...`` as ``git SUB ...``, and a problem if a global option can
    make git run arbitrary programs (``-c alias.x=!cmd``, ``-c core.pager=...``)."""
    i = 1
    problem = None
    while i < len(a):
        if not a.known(i):
            return None, "git global options are computed at run time"
        tok = a.tokens[i]
        if tok in ("-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path",
                   "--super-prefix", "--config-env", "--list-cmds", "--attr-source"):
            if tok in ("-c", "--config-env") and i + 1 < len(a) and (
                    not a.known(i + 1) or _git_setting_runs_program(a.tokens[i + 1], tok)):
                problem = f"git {tok} {a.tokens[i + 1]} can make git run another program"
            i += 2
            continue
        if (tok.startswith("-c") and len(tok) > 2) or tok.startswith("--config-env="):
            if tok.startswith("-c"):
                risky_setting = _git_setting_runs_program(tok[2:], "-c")
            else:
                risky_setting = _git_setting_runs_program(tok.split("=", 1)[1], "--config-env")
            if risky_setting:
                problem = f"git {tok} can make git run another program"
            i += 1
            continue
        if (tok.startswith("-C") and len(tok) > 2) or (tok.startswith("--") and "=" in tok):
            i += 1
            continue
        if tok.startswith("-"):
            i += 1
            continue
        break
    if i == 1:
        return None, problem
    return Argv(("git", *a.tokens[i:]), frozenset(k - i + 1 for k in a.unknown if k >= i),
                None if a.open_from is None else max(a.open_from - i + 1, 1)), problem


def shell_script(a: Argv) -> tuple[str, str | None]:
    """How a shell invocation gets its commands: ("script", text), ("file", None),
    ("stdin", None) or ("unknown", None)."""
    i = 1
    command_mode = False
    stdin_mode = False
    while i < len(a):
        if not a.known(i):
            return "unknown", None
        tok = a.tokens[i]
        if tok in ("--", "-"):
            i += 1
            break
        if tok.startswith("--"):
            if tok in ("--rcfile", "--init-file"):
                i += 2
                continue
            i += 1
            continue
        if tok[:1] in ("-", "+") and len(tok) > 1:
            flags = tok[1:]
            if "c" in flags:
                command_mode = True
            if "s" in flags:
                stdin_mode = True
            i += 2 if ("o" in flags or "O" in flags) else 1
            continue
        break
    if command_mode:
        if i >= len(a):
            return "unknown", None
        if not a.known(i):
            return "unknown", None
        return "script", a.tokens[i]
    if stdin_mode or i >= len(a):
        return "stdin", None
    return "file", None
