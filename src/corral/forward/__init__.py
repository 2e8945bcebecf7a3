"""Forwarding the journal to ``corral server`` without losing or duplicating a record.

``Forwarder`` ships journal records in order from a persisted cursor (see ``cursor``) and moves
the cursor only on the server's acknowledgement; ``corral forward`` runs it in the foreground and
``background.with_forwarder`` beside a session. The wire format is the contract in
docs/server.md ("Forwarding wire contract").
"""

from __future__ import annotations

from corral.forward.cursor import Cursor
from corral.forward.forwarder import Backoff, Forwarder, Retryable, Stats
from corral.forward.settings import ForwardError, ServerSettings, login, logout, resolve

__all__ = ["Backoff", "Cursor", "ForwardError", "Forwarder", "Retryable", "ServerSettings",
           "Stats", "login", "logout", "resolve"]
