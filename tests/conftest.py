"""Settings for the whole suite."""

from __future__ import annotations

import signal

from hypothesis import settings

# A shell without job control starts a background command (`./.ci/run &`, nohup) with SIGINT
# ignored, and an ignored signal stays ignored across exec: every process a test starts would
# then shrug off the Ctrl-C that the interrupt tests send (tests/sandbox/test_cli.py,
# tests/approvals/test_properties.py). Handled here, it is back to the default in each child.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# `pytest --hypothesis-profile=deep` runs every property with ten times the examples: a search
# for the rare input a CI run's random seed would otherwise find one day (not part of CI).
settings.register_profile("deep", max_examples=1000)
