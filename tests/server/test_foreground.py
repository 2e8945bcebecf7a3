"""Background folds give way to requests (corral.server.foreground)."""

from __future__ import annotations

import threading
import time

from corral.server.foreground import Foreground


def test_a_fold_pauses_while_a_request_is_answered_and_never_longer_than_max_pause() -> None:
    fg = Foreground(max_pause=2.0)  # wide bounds: a loaded CI machine may pause the test
    t0 = time.monotonic()
    fg.pause()  # nothing in flight: no wait
    assert time.monotonic() - t0 < 1.0
    fg.enter()
    threading.Timer(0.1, fg.leave).start()
    t0 = time.monotonic()
    fg.pause()  # waits for the request to finish
    assert 0.08 < time.monotonic() - t0 < 1.5
    fg.enter()  # a request that does not end: the fold goes on after max_pause
    t0 = time.monotonic()
    fg.pause()
    assert 1.95 < time.monotonic() - t0 < 4
    fg.leave()
