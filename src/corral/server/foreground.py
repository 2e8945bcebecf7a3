"""Background folds give way to requests.

``corral server run`` folds its state (sessions, users, ...) and the analytics rollups in
background threads; on a 1,000,000-event store that is over a minute of CPU after a start, and
the threads share the interpreter with the request handlers: a page of the event cursor then
waited for the GIL behind them (p95 above 150 ms on two CPUs). The requests that do not read
the folds (the cursor, files, ingest, proofs) count themselves here while they are answered,
and a background fold calls ``pause()`` every 64 events, which waits while any of them
is in flight (at most ``max_pause`` at a time, so a steady stream of requests slows a fold
down but cannot stop it).
"""

from __future__ import annotations

import threading
from typing import Any

# Requests answered from the folds: they wait for a fold rather than the fold for them.
FOLDED = ("/v1/sessions", "/v1/users", "/v1/devices", "/v1/mcp-servers", "/v1/tools",
          "/v1/triage", "/analytics")


class Foreground:
    def __init__(self, max_pause: float = 0.05) -> None:
        self.max_pause = max_pause
        self._n = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()

    def enter(self) -> None:
        with self._lock:
            self._n += 1
            self._idle.clear()

    def leave(self) -> None:
        with self._lock:
            self._n -= 1
            if self._n == 0:
                self._idle.set()

    def pause(self) -> None:
        """From a background fold: wait while a request is being answered."""
        if self._n:
            self._idle.wait(self.max_pause)


class Middleware:
    """ASGI middleware counting the requests that do not read the folds."""

    def __init__(self, app: Any, fg: Foreground) -> None:
        self.app, self.fg = app, fg

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(FOLDED):
            await self.app(scope, receive, send)
            return
        self.fg.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.fg.leave()
