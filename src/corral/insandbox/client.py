"""The client side of the session API, stdlib only (hooks import it on every tool call).

``CORRAL_SUPERVISOR_SOCKET`` is a unix socket path, or ``tcp:127.0.0.1:PORT`` (also ``tcp://``)
inside a sandbox, where a loopback bridge relays to the bind-mounted socket because the sandbox
cannot open unix sockets. Only loopback: the session token must not leave the machine.
"""

from __future__ import annotations

import json
import socket
from typing import Any

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ClientError(Exception):
    """The session could not be reached or answered badly (the reason is the message)."""


def address(where: str) -> tuple[int, Any]:
    """(socket family, address) for a CORRAL_SUPERVISOR_SOCKET value."""
    if not where.startswith("tcp:"):
        return socket.AF_UNIX, where
    host, _, port = where[4:].removeprefix("//").rpartition(":")
    host = host.strip("[]")
    if host not in _LOOPBACK or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClientError(f"CORRAL_SUPERVISOR_SOCKET {where!r}: only tcp:127.0.0.1:PORT "
                          "(loopback) or a unix socket path is accepted")
    return (socket.AF_INET6 if host == "::1" else socket.AF_INET), (host, int(port))


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
