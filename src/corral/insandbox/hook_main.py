"""Entry point the installed hook configuration runs: ``python -m corral.integrations.hook_main
AGENT`` (a thin alias of this module: installed hooks name that path). Reads one hook call on stdin and answers; no CLI framework is loaded, so a call costs one
interpreter start and one socket round trip.

Anything unexpected (unreadable stdin, a crash) exits 2 with one line on stderr, which both agents
treat as "block this action": a broken hook never lets a tool call through silently.
"""

from __future__ import annotations

import json
import sys

MAX_INPUT = 16 * 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("corral: integrations: usage: python -m corral.integrations.hook_main "
              "codex|claude-code", file=sys.stderr)
        return 2
    try:
        raw = sys.stdin.buffer.read(MAX_INPUT + 1)
        if len(raw) > MAX_INPUT:
            raise ValueError("hook input larger than 16 MiB")
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        print(f"corral: integrations: hook input is not JSON ({exc}); refusing", file=sys.stderr)
        return 2
    try:
        from corral.insandbox.hooks import handle

        out, code = handle(args[0], payload)
    except Exception as exc:  # fail closed: exit 2 blocks the action in both agents
        print(f"corral: integrations: hook failed ({type(exc).__name__}: {exc}); refusing",
              file=sys.stderr)
        return 2
    if out:
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
