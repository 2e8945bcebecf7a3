"""Cold-start path for ``corral policy check``: builtins only (sys, os, marshal, zlib).

When the same rules files (same inode, size, mtime, ctime) were parsed before, their compiled
form is read from the cache that ``corral.rules.check`` writes (``marshal`` of plain lists,
dicts and strings, checked for shape before use), and matching runs over plain data here. Not
``json``: it imports ``re``, which alone costs more than codex's whole check on this machine;
the compact answer is written by ``compact_json`` instead. Anything else (first run, changed
file, bad file, bad arguments) falls through to the full implementation. The differential test checks both paths against the real codex binary.
"""

from __future__ import annotations

import marshal
import os
import sys
import zlib

TYPE_CHECKING = False  # typing costs ~5 ms here, a quarter of this path's own imports
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

CACHE_FORMAT = 2  # 1 was JSON
_SEVERITY = {"allow": 0, "prompt": 1, "forbidden": 2}


def cache_dir() -> str:
    """``$CORRAL_HOME/state/rules-cache`` (same rule as ``corral.paths``, without pathlib)."""
    home = os.environ.get("CORRAL_HOME")
    base = os.path.abspath(os.path.expanduser(home)) if home else os.path.join(
        os.path.expanduser("~"), ".corral")
    return os.path.join(base, "state", "rules-cache")


def identity(files: Sequence[str]) -> list[Any] | None:
    ident: list[Any] = [CACHE_FORMAT]
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            return None
        ident.append([os.path.abspath(f), f, st.st_ino, st.st_size, st.st_mtime_ns,
                      st.st_ctime_ns])
    return ident


def cache_path(folder: str, ident: list[Any]) -> str:
    raw = repr(ident).encode("utf-8", "surrogateescape")
    return os.path.join(folder, f"{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}{len(raw):x}.marshal")


def dump_cache(data: dict[str, Any]) -> bytes:
    return marshal.dumps(data)


def load_cache(path: str, ident: list[Any]) -> dict[str, Any] | None:
    """The cached entry for ``ident``, or None when absent, stale or not of the expected shape."""
    try:
        with open(path, "rb") as fh:
            data = marshal.loads(fh.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if type(data) is not dict or data.get("identity") != ident:
        return None
    return data


# JSON string escapes as serde_json and json.dumps(ensure_ascii=False) write them
_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_ESCAPES.update({ord("\""): "\\\"", ord("\\"): "\\\\", ord("\b"): "\\b", ord("\f"): "\\f",
                 ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def compact_json(value: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` for dicts, lists,
    strings, booleans and None (the shapes of a check result), without importing ``json``."""
    if type(value) is str:
        return '"' + value.translate(_ESCAPES) + '"'
    if type(value) is dict:
        return "{" + ",".join(compact_json(k) + ":" + compact_json(v)
                              for k, v in value.items()) + "}"
    if type(value) is list:
        return "[" + ",".join(compact_json(v) for v in value) + "]"
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    raise TypeError(f"compact_json: unsupported {type(value).__name__}")


def _normalize_abs(raw: str) -> str | None:
    if not raw:
        return None
    if raw == "~" or raw.startswith("~/"):
        raw = os.path.expanduser("~") + raw[1:]
    if not raw.startswith("/"):
        raw = os.getcwd() + "/" + raw
    parts: list[str] = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def _match(rules: list[list[Any]], cmd: list[str], resolved: str | None) -> list[dict[str, Any]]:
    out = []
    for _program, rest, decision, justification, _source in rules:
        n = len(rest) + 1
        if len(cmd) < n or any(cmd[i] not in alts for i, alts in enumerate(rest, 1)):
            continue
        inner: dict[str, Any] = {"matchedPrefix": cmd[:n], "decision": decision}
        if resolved is not None:
            inner["resolvedProgram"] = resolved
        if justification is not None:
            inner["justification"] = justification
        out.append({"prefixRuleMatch": inner})
    return out


def check(data: dict[str, Any], cmd: list[str], resolve: bool) -> dict[str, Any]:
    by_program: dict[str, list[list[Any]]] = {}
    for rule in data["rules"]:
        by_program.setdefault(rule[0], []).append(rule)
    matched = _match(by_program.get(cmd[0], []), cmd, None)
    if not matched and resolve:
        program = _normalize_abs(cmd[0])
        base = program.rsplit("/", 1)[-1] if program else ""
        if program and base and base in by_program:
            allowed = data["host"].get(base)
            if allowed is None or program in allowed:
                matched = _match(by_program[base], [base, *cmd[1:]], program)
    result: dict[str, Any] = {"matchedRules": matched}
    if matched:
        result["decision"] = max((m["prefixRuleMatch"]["decision"] for m in matched),
                                 key=_SEVERITY.__getitem__)
    return result


def main(args: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if args is None else args)
    files: list[str] = []
    pretty = resolve = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("-r", "--rules") and i + 1 < len(argv):
            files.append(argv[i + 1])
            i += 2
            continue
        if a == "--pretty":
            pretty = True
        elif a == "--resolve-host-executables":
            resolve = True
        elif a == "--":
            i += 1
            break
        else:
            files = []  # anything unusual: let the full implementation handle it
            break
        i += 1
    command = argv[i:]
    try:
        "".join(argv).encode("utf-8")
    except UnicodeEncodeError:
        files = []  # not UTF-8: the full implementation reports it like codex
    ident = identity(files) if files and command else None
    if ident is not None:
        data = load_cache(cache_path(cache_dir(), ident), ident)
        try:
            if data is not None and "rules" in data:
                result = check(data, command, resolve)
                if pretty:
                    import json  # rare: --pretty pays for json (and re)

                    text = json.dumps(result, ensure_ascii=False, indent=2)
                else:
                    text = compact_json(result)
                sys.stdout.write(text + "\n")
                return 0
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            pass
    from corral.rules.check import main as full_main

    return full_main(argv)


if __name__ == "__main__":
    sys.exit(main())
