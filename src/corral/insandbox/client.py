"""The client side of the session API, stdlib only (hooks import it on every tool call).

``CORRAL_SUPERVISOR_SOCKET`` is a unix socket path, or ``tcp:127.0.0.1:PORT`` (also ``tcp://``)
inside a sandbox, where a loopback bridge relays to the bind-mounted socket because the sandbox
cannot open unix sockets. Only loopback: the session token must not leave the machine.
"""

from __future__ import annotations

import json
import socket

from corral.insandbox import relay

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from typing import Any


class ClientError(Exception):
    """The session could not be reached or answered badly (the reason is the message)."""


def address(where: str) -> tuple[int, Any]:
    """(socket family, address) for a CORRAL_SUPERVISOR_SOCKET value (``relay.address``)."""
    try:
        return relay.address(where)
    except relay.RelayError as exc:
        raise ClientError(str(exc)) from None


def exchange(where: str, token: str, op: str, fields: dict[str, Any],
             timeout: float) -> dict[str, Any]:
    """Send one request and read its one-line answer."""
    family, addr = address(where)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(addr)
            s.sendall(json.dumps({"token": token, "op": op, **fields}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except TimeoutError as exc:
        raise ClientError(f"the corral supervisor did not answer within {timeout:g}s") from exc
    except OSError as exc:
        raise ClientError(f"cannot reach the corral supervisor at {where} "
                          f"({exc.strerror or exc})") from exc
    try:
        reply = json.loads(buf)
    except ValueError as exc:
        raise ClientError("the corral supervisor closed the connection without an answer"
                          ) from exc
    if not isinstance(reply, dict):
        raise ClientError("the corral supervisor sent a malformed answer")
    return reply
