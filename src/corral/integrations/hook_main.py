"""``python -m corral.integrations.hook_main AGENT``: the module path installed hooks run, kept as
a thin alias of :mod:`corral.insandbox.hook_main` (the hook's code lives with the rest of the
in-sandbox code)."""

from __future__ import annotations

import sys

from corral.insandbox.hook_main import main
from corral.insandbox.relay import MAX_INPUT

__all__ = ["MAX_INPUT", "main"]

if __name__ == "__main__":
    sys.exit(main())
