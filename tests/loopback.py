"""A listener on loopback for tests, served by a thread that can be stopped safely.

Closing a socket that another thread is blocked on in ``accept()`` is a trap: the descriptor
number is free for the next socket the test process opens (often the next test's server), and
the old thread's loop then accepts that socket's connections and answers them. ``close()``
here wakes the blocked ``accept()`` with ``shutdown()``, joins the thread, then closes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable


class AcceptLoop:
    """Accepts on ``host``:(free port) and hands each connection to ``handle`` (on its own
    thread when ``threaded``); the handler closes the connection."""

    def __init__(self, handle: Callable[[socket.socket], None], host: str = "127.0.0.1",
                 threaded: bool = False) -> None:
        self.sock = socket.create_server((host, 0))
        self.port: int = self.sock.getsockname()[1]
        self._handle, self._threaded = handle, threaded
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self._threaded:
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
            else:
                self._handle(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() above with an error
        self._thread.join(10)
        self.sock.close()
