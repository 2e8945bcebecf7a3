"""``corral policy check``: the Codex ``execpolicy check`` contract, as a pure function, plus a
lean entry point (``main``) that skips the CLI framework and reuses parsed policies from disk.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corral.rules.check_fast import cache_path, dump_cache, identity, load_cache
from corral.rules.model import NetworkRule, Policy, PrefixRule, RulesLoadError, codex_json
from corral.rules.starlark_loader import load_rules_file
from corral.types import RuleDecision


def run_check(
    files: Sequence[str], argv: Sequence[str], resolve_host_executables: bool = False,
    pretty: bool = False, cache_dir: Path | None = None,
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) exactly as ``codex execpolicy check`` would produce them.

    stdout and the exit code are byte-identical to Codex; on a bad file the first stderr line is
    identical and the cause names ``file:line`` in our own words.
    """
    if not all(_utf8(a) for a in (*files, *argv)):
        return 2, "", f"error: invalid UTF-8 was detected in one or more arguments\n\n{USAGE}\n"
    loaded = _load_cached(files, cache_dir) if cache_dir is not None else None
    if loaded is None:
        loaded = _load(files)
        if cache_dir is not None:
            _store(files, cache_dir, loaded)
    if isinstance(loaded, tuple):
        path, err = loaded
        verb = "read" if err.message.startswith("cannot read") else "parse"
        return 1, "", f"Error: failed to {verb} policy at {path}\n\nCaused by:\n    {err}\n"
    return 0, codex_json(loaded.check(list(argv), resolve_host_executables), pretty) + "\n", ""


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes: the OS gave bytes that are not UTF-8
        return False
    return True


def _load(files: Sequence[str]) -> Policy | tuple[str, RulesLoadError]:
    policy = Policy()
    for path in files:
        err = load_rules_file(path, policy)
        if err is not None:
            return path, err
    return policy


# ---- on-disk cache of parsed policies (marshal of plain data, never code) ------------------

def _cache_file(files: Sequence[str], cache_dir: Path) -> tuple[Path, list[Any]] | None:
    ident = identity(files)
    if ident is None:
        return None  # errors reading files are cheap to reproduce: not cached
    return Path(cache_path(str(cache_dir), ident)), ident


def _load_cached(files: Sequence[str], cache_dir: Path) -> Policy | tuple[str, RulesLoadError] | None:
    where = _cache_file(files, cache_dir)
    if where is None:
        return None
    data = load_cache(str(where[0]), where[1])
    if data is None:
        return None
    try:
        return _decode(data)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


def _store(files: Sequence[str], cache_dir: Path, loaded: Policy | tuple[str, RulesLoadError]) -> None:
    where = _cache_file(files, cache_dir)
    if where is None:
        return
    data = {"identity": where[1], **_encode(loaded)}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = where[0].with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(dump_cache(data))
        os.replace(tmp, where[0])
    except OSError:
        pass  # a cache is an optimisation only


def _encode(loaded: Policy | tuple[str, RulesLoadError]) -> dict[str, Any]:
    if isinstance(loaded, tuple):
        path, e = loaded
        return {"error": [path, e.path, e.line, e.column, e.message]}
    rules = [[r.program, [list(a) for a in r.rest_display], r.decision.value, r.justification,
              r.source] for rs in loaded.rules_by_program.values() for r in rs]
    # keep per-program insertion order: Codex reports matches in declaration order
    return {"rules": rules, "host": {k: list(v) for k, v in loaded.host_executables.items()},
            "network": [[n.host, n.protocol, n.decision.value, n.justification, n.source]
                        for n in loaded.network_rules]}


def _decode(data: dict[str, Any]) -> Policy | tuple[str, RulesLoadError]:
    if "error" in data:
        path, epath, line, col, msg = data["error"]
        return path, RulesLoadError(epath, line, col, msg)
    policy = Policy()
    for program, rest, decision, just, source in data["rules"]:
        alts = tuple(tuple(a) for a in rest)
        policy.add_rule(PrefixRule(program, tuple(frozenset(a) for a in alts), alts,
                                   RuleDecision(decision), just, source))
    policy.host_executables = {k: tuple(v) for k, v in data["host"].items()}
    policy.network_rules = [NetworkRule(h, p, RuleDecision(d), j, s)
                            for h, p, d, j, s in data["network"]]
    return policy


# ---- lean command line ---------------------------------------------------------------------

USAGE = ("Usage: corral policy check --rules <PATH> [--resolve-host-executables] [--pretty] "
         "-- <COMMAND>...")


def parse_args(args: Sequence[str]) -> tuple[list[str], bool, bool, list[str]] | str:
    """``-r/--rules PATH`` (repeatable), ``--pretty``, ``--resolve-host-executables``, then the
    command (after ``--``, or from the first non-option word)."""
    files: list[str] = []
    pretty = resolve = False
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if a in ("-h", "--help"):
            return "help"
        if a in ("-r", "--rules"):
            if i + 1 >= len(args):
                return f"error: a value is required for '--rules <PATH>' but none was supplied\n\n{USAGE}"
            files.append(args[i + 1])
            i += 2
            continue
        if a.startswith("--rules="):
            files.append(a.split("=", 1)[1])
        elif a.startswith("-r") and len(a) > 2:
            files.append(a[2:])
        elif a == "--pretty":
            pretty = True
        elif a == "--resolve-host-executables":
            resolve = True
        elif a.startswith("-"):
            return f"error: unexpected argument '{a}' found\n\n{USAGE}"
        else:
            break
        i += 1
    command = list(args[i:])
    if not files:
        return f"error: the following required arguments were not provided:\n  --rules <PATH>\n\n{USAGE}"
    if not command:
        return f"error: the following required arguments were not provided:\n  <COMMAND>...\n\n{USAGE}"
    return files, resolve, pretty, command


def main(args: Sequence[str] | None = None) -> int:
    """``corral policy check`` without the CLI framework (cold start matters for hooks)."""
    parsed = parse_args(sys.argv[1:] if args is None else args)
    if parsed == "help":
        sys.stdout.write(USAGE + "\n\nPrint what `codex execpolicy check` prints for these rules "
                         "files and command.\n")
        return 0
    if isinstance(parsed, str):
        sys.stderr.write(parsed + "\n")
        return 2
    files, resolve, pretty, command = parsed
    from corral.rules.check_fast import cache_dir

    code, out, err = run_check(files, command, resolve, pretty, cache_dir=Path(cache_dir()))
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


if __name__ == "__main__":
    sys.exit(main())
