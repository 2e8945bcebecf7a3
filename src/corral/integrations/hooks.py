"""Alias of :mod:`corral.insandbox.hooks` (the hook adapters run inside the sandbox, next to the
agent): ``corral.integrations.hooks`` is that very module object."""

from __future__ import annotations

import sys

from corral.insandbox import hooks as _hooks

sys.modules[__name__] = _hooks
