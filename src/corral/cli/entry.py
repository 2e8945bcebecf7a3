"""The ``corral`` entry point.

Agents run ``corral sandbox -- CMD`` once per command, so that path skips typer and click
(~70 ms of imports) through ``corral.cli.sandbox_fast``, which accepts exactly the same grammar
and hands anything else (help, usage errors, every other command) to the full Typer app.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if "sandbox" in argv:
        from corral.cli.sandbox_fast import main as sandbox_main

        status = sandbox_main(argv)
        if status is not None:
            sys.exit(status)
    from corral.cli.app import main as full_main

    full_main()
