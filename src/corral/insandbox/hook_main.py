"""Entry point the installed hook configuration runs: ``python -m corral.integrations.hook_main
AGENT`` (a thin alias of this module: installed hooks name that path). Reads one hook call on
stdin and answers. Paid on every tool call, so it does as little as it can: the call goes to the
session supervisor as it came and its answer is printed (``corral.insandbox.relay``); no JSON
is parsed here. Only without a reachable supervisor is the call parsed here, to refuse it in
the agent's own format (``corral.insandbox.hooks``).

Anything unexpected (unreadable stdin, a crash) exits 2 with one line on stderr, which both agents
treat as "block this action": a broken hook never lets a tool call through silently.
"""

from __future__ import annotations

import os
import sys

from corral.insandbox.relay import MAX_INPUT

# Gemini CLI removes variables named *TOKEN* from its hooks' environment when it redacts (and in
# GitHub Actions all but a few), never GEMINI_CLI_*: `corral run` sets these under that prefix too.
GEMINI_ALIASED = ("CORRAL_SUPERVISOR_SOCKET", "CORRAL_SUPERVISOR_TOKEN", "CORRAL_SANDBOX")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("corral: integrations: usage: python -m corral.integrations.hook_main "
              "codex|claude-code|gemini", file=sys.stderr)
        return 2
    if args[0] == "gemini":
        for name in GEMINI_ALIASED:
            if not os.environ.get(name) and os.environ.get("GEMINI_CLI_" + name):
                os.environ[name] = os.environ["GEMINI_CLI_" + name]
    try:
        raw = sys.stdin.buffer.read(MAX_INPUT + 1)
    except OSError as exc:
        print(f"corral: integrations: cannot read the hook input ({exc}); refusing",
              file=sys.stderr)
        return 2
    if len(raw) > MAX_INPUT:
        print("corral: integrations: hook input is not JSON (hook input larger than 16 MiB); "
              "refusing", file=sys.stderr)
        return 2
    where = os.environ.get("CORRAL_SUPERVISOR_SOCKET")
    token = os.environ.get("CORRAL_SUPERVISOR_TOKEN")
    failed: str | None = None
    if where and token:  # an unknown agent is refused by the supervisor (exit 2)
        from corral.insandbox.relay import RelayError, relay

        try:
            out, code, err = relay(args[0], raw, where, token)
        except RelayError as exc:
            failed = str(exc)  # answered here, below, without sending it again
        else:
            return _print(out, code, err)
    return _here(args[0], raw, failed)


def _here(agent: str, raw: bytes, failed: str | None) -> int:
    """Parse and answer in this process: no supervisor (or it failed: ``failed`` says why)."""
    import json

    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        print(f"corral: integrations: hook input is not JSON ({exc}); refusing", file=sys.stderr)
        return 2
    try:
        from corral.insandbox.hooks import answer, unreachable

        out, code, err = answer(agent, payload,
                                transport=None if failed is None else unreachable(failed))
    except Exception as exc:  # fail closed: exit 2 blocks the action in both agents
        print(f"corral: integrations: hook failed ({type(exc).__name__}: {exc}); refusing",
              file=sys.stderr)
        return 2
    return _print(out, code, err)


def _print(out: str, code: int, err: str) -> int:
    if err:
        sys.stderr.write(err + "\n")
        sys.stderr.flush()
    if out:
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
