"""Package runners that fetch and run code, and tools that run a command in an environment:
the command they run, so rules judge what runs (and the runner itself).

``npx cowsay@1 hi`` runs ``cowsay hi``; ``uvx --from httpie http GET x`` runs ``http GET x``;
``npx -c 'rm -rf x'`` runs a shell command. The package's version is dropped so a rule for the
package matches every version. Each function has the shape of a ``wrappers.UNWRAPPERS`` entry:
the inner command lines, ``[]`` when the runner runs nothing of ours (``npm install``), None
when what it runs is computed at run time.
"""

from __future__ import annotations

from collections.abc import Callable

from corral.rules.argv import Argv
from corral.rules.wrappers import _skip_options, option_value

_Unwrap = Callable[[Argv], "list[Argv] | None"]


def npm_package(spec: str) -> str:
    """``@scope/name@1.2`` -> ``@scope/name``; ``name@latest`` -> ``name``; paths and URLs
    are kept."""
    if ("/" in spec and not spec.startswith("@")) or ":" in spec:
        return spec
    at = spec.find("@", 1)
    return spec[:at] if at > 0 else spec


def python_package(spec: str) -> str:
    """``black[jupyter]==23.1`` -> ``black``; ``ruff@0.3`` -> ``ruff``."""
    for k, ch in enumerate(spec):
        if ch in "=<>!~;[@ " and k > 0:
            return spec[:k]
    return spec


def _run_package(a: Argv, start: int, with_value: str, long_with_value: tuple[str, ...],
                 package_opts: tuple[str, ...], shell_opts: tuple[str, ...],
                 strip: Callable[[str], str]) -> list[Argv] | None:
    """``RUNNER [options] PACKAGE ARGS...``: the package (version dropped) and its arguments,
    or the command named after ``--package``-style options, or a shell command (``-c``)."""
    i = _skip_options(a, start, frozenset(with_value), frozenset(long_with_value))
    if i is None:
        return None
    if shell_opts:
        present, value = option_value(a.sub(start - 1, i), shell_opts)
        if present:
            return None if value is None else [Argv(("sh", "-c", value))]
    if i >= len(a):
        return []
    if not a.known(i):
        return None
    named = any(a.known(k) and (a.tokens[k] in package_opts or a.tokens[k].startswith(
        tuple(o + "=" for o in package_opts if o.startswith("--")))) for k in range(start, i))
    inner = a.sub(i)
    return [inner if named else inner.with_first(strip(a.tokens[i]))]


def _npx(a: Argv, start: int = 1) -> list[Argv] | None:
    return _run_package(a, start, "pcw", ("--package", "--call", "--cache", "--userconfig",
                                          "--workspace", "--registry"),
                        ("-p", "--package"), ("-c", "--call"), npm_package)


def _subcommand(a: Argv) -> str | None:
    """The word after the program ("" when there is none), None when it is computed."""
    if len(a) < 2:
        return ""
    return a.tokens[1] if a.known(1) else None


def _npm(a: Argv) -> list[Argv] | None:
    sub = _subcommand(a)
    if sub is None:
        return None
    return _npx(a, 2) if sub in ("exec", "x") else []


def _pnpm(a: Argv) -> list[Argv] | None:
    sub = _subcommand(a)
    if sub is None:
        return None
    if sub == "dlx":
        rest = a.sub(1)
        if any(rest.known(k) and rest.tokens[k] in ("-c", "--shell-mode") for k in range(len(rest))):
            words = _after_options(a, 2)
            return None if words is None else _joined(words)
        return _run_package(a, 2, "", ("--package",), ("--package",), (), npm_package)
    if sub == "exec":
        return _command_after(a, 2, "", ("--filter",))
    return []


def _yarn(a: Argv) -> list[Argv] | None:
    sub = _subcommand(a)
    if sub is None:
        return None
    if sub == "dlx":
        return _run_package(a, 2, "p", ("--package",), ("-p", "--package"), (), npm_package)
    if sub == "exec":  # yarn (berry) runs its arguments as a shell script
        words = _after_options(a, 2)
        return None if words is None else _joined(words)
    return []


def _bun(a: Argv) -> list[Argv] | None:
    sub = _subcommand(a)
    if sub is None:
        return None
    if sub == "x":
        return _bunx(a, 2)
    if sub in ("-e", "--eval", "-p", "--print"):
        return [Argv(("node", *a.tokens[1:]), a.unknown, a.open_from)]  # same as node -e
    return []


def _bunx(a: Argv, start: int = 1) -> list[Argv] | None:
    return _run_package(a, start, "p", ("--package",), ("-p", "--package"), (), npm_package)


_UV_VALUE = ("--from", "--with", "--with-editable", "--with-requirements", "--python",
             "--index", "--default-index", "--index-url", "--extra-index-url", "--find-links",
             "--directory", "--project", "--config-file", "--cache-dir", "--env-file",
             "--constraints", "--overrides", "--build-constraints", "--python-platform",
             "--package", "--extra", "--group", "--only-group", "--no-group", "--exclude-newer")


def _uvx(a: Argv, start: int = 1) -> list[Argv] | None:
    return _run_package(a, start, "pwfc", _UV_VALUE, ("--from",), (), python_package)


def _uv(a: Argv) -> list[Argv] | None:
    sub = _subcommand(a)
    if sub is None:
        return None
    if sub == "tool" and len(a) > 2 and a.known(2) and a.tokens[2] == "run":
        return _uvx(a, 3)
    if sub == "run":
        return _command_after(a, 2, "pw", _UV_VALUE)
    return []


def _pipx(a: Argv) -> list[Argv] | None:
    sub = _subcommand(a)
    if sub is None:
        return None
    if sub != "run":
        return []
    return _run_package(a, 2, "", ("--spec", "--python", "--pip-args", "--index-url"),
                        ("--spec",), (), python_package)


def _env_run(with_value: str, long_with_value: tuple[str, ...]) -> _Unwrap:
    """``poetry run CMD``, ``conda run -n ENV CMD``: the command, as written."""

    def unwrap(a: Argv) -> list[Argv] | None:
        sub = _subcommand(a)
        if sub is None:
            return None
        if sub != "run":
            return []
        return _command_after(a, 2, with_value, long_with_value)

    return unwrap


def _command_after(a: Argv, start: int, with_value: str, long_with_value: tuple[str, ...]
                   ) -> list[Argv] | None:
    i = _skip_options(a, start, frozenset(with_value), frozenset(long_with_value))
    if i is None:
        return None
    return [a.sub(i)] if i < len(a) else []


def _after_options(a: Argv, start: int) -> Argv | None:
    rest = a.sub(start)
    if not rest.fully_static:
        return None
    k = 0
    while k < len(rest) and rest.tokens[k].startswith("-"):
        k += 1
    return rest.sub(k)


def _joined(words: Argv) -> list[Argv]:
    return [Argv(("sh", "-c", " ".join(words.tokens)))] if len(words) else []


RUNNERS: dict[str, _Unwrap] = {
    "npx": _npx, "npm": _npm, "pnpm": _pnpm, "yarn": _yarn, "bunx": _bunx, "bun": _bun,
    "uvx": _uvx, "uv": _uv, "pipx": _pipx,
    "poetry": _env_run("", ("--directory", "-C", "--project", "-P")),
    "pipenv": _env_run("", ()),
    "pdm": _env_run("p", ("--project",)),
    "conda": _env_run("np", ("--name", "--prefix", "--cwd")),
    "mamba": _env_run("np", ("--name", "--prefix", "--cwd")),
    "micromamba": _env_run("np", ("--name", "--prefix", "--cwd")),
}
