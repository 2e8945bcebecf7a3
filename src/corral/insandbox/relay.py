"""The hook's fast path: the agent's hook call goes to the session supervisor as it came (one
framed request: agent, token, the hook's working directory, the raw stdin bytes), and the
answer comes back ready to print (stdout, stderr, exit status). The supervisor runs the hook
adapter (``corral.insandbox.hooks``) against its own session API, in process.

An agent pays for this on every tool call, so it imports next to nothing: no ``json`` (which
brings ``re`` and ``enum``) and no ``socket`` module (enum conversions, ``selectors``), only
``_socket``, the C module ``socket`` is built on. The decision, the journal and the answer's
format are the same code as before, on the other side of the socket.

Request::

    HOOK1 <agent> <token> <0|1 inside corral's sandbox> <len(cwd)> <len(payload)>\\n<cwd><payload>

Answer::

    HOOK1 <exit status> <len(stdout)> <len(stderr)>\\n<stdout><stderr>
"""

from __future__ import annotations

import _socket
import os

MAGIC = b"HOOK1"
MAX_INPUT = 16 * 1024 * 1024  # the largest hook call accepted (stdin)
MAX_CWD = 4096
MAX_ANSWER = 64 * 1024 * 1024
DEFAULT_TIMEOUT = 590.0  # below the agents' own 600 s hook timeout, so our deny is what they see
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class RelayError(Exception):
    """The supervisor could not be reached or answered badly (the reason is the message)."""


def address(where: str) -> tuple[int, str | tuple[str, int]]:
    """(socket family, address) for a CORRAL_SUPERVISOR_SOCKET value: a unix socket path, or
    ``tcp:127.0.0.1:PORT`` (also ``tcp://``) inside a sandbox, where a loopback bridge relays to
    the bind-mounted socket. Only loopback: the session token must not leave the machine."""
    if not where.startswith("tcp:"):
        return _socket.AF_UNIX, where
    host, _, port = where[4:].removeprefix("//").rpartition(":")
    host = host.strip("[]")
    if host not in _LOOPBACK or not port.isdigit() or not 0 < int(port) < 65536:
        raise RelayError(f"CORRAL_SUPERVISOR_SOCKET {where!r}: only tcp:127.0.0.1:PORT "
                         "(loopback) or a unix socket path is accepted")
    return (_socket.AF_INET6 if host == "::1" else _socket.AF_INET), (host, int(port))


def timeout_from_env() -> float:
    """CORRAL_HOOK_TIMEOUT seconds (default 590)."""
    try:
        value = float(os.environ.get("CORRAL_HOOK_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def request(agent: str, token: str, raw: bytes, cwd: str, sandboxed: bool) -> bytes:
    where = cwd.encode("utf-8", "surrogateescape")[:MAX_CWD]
    head = b"%s %s %s %d %d %d\n" % (MAGIC, agent.encode(), token.encode(), sandboxed,
                                     len(where), len(raw))
    return head + where + raw


def parse_request_head(line: bytes) -> tuple[str, str, bool, int, int]:
    """(agent, token, inside the sandbox, len(cwd), len(payload)); ValueError if malformed."""
    parts = line.split()
    if len(parts) != 6 or parts[0] != MAGIC or parts[3] not in (b"0", b"1"):
        raise ValueError("malformed hook request")
    cwd_len, size = int(parts[4]), int(parts[5])
    if not 0 <= cwd_len <= MAX_CWD or not 0 <= size <= MAX_INPUT:
        raise ValueError("hook request too large")
    return (parts[1].decode("ascii"), parts[2].decode("ascii"), parts[3] == b"1", cwd_len,
            size)


def answer(out: str, code: int, err: str) -> bytes:
    o, e = out.encode("utf-8", "surrogateescape"), err.encode("utf-8", "surrogateescape")
    return b"%s %d %d %d\n" % (MAGIC, code, len(o), len(e)) + o + e


def relay(agent: str, raw: bytes, where: str, token: str,
          timeout: float | None = None) -> tuple[str, int, str]:
    """Send one hook call to the supervisor at ``where``; (stdout, exit status, stderr)."""
    family, addr = address(where)
    data = request(agent, token, raw, os.getcwd(), os.environ.get("CORRAL_SANDBOX") == "1")
    limit = timeout_from_env() if timeout is None else timeout
    try:
        s = _socket.socket(family, _socket.SOCK_STREAM)
        try:
            s.settimeout(limit)
            s.connect(addr)
            s.sendall(data)
            buf = b""
            need = -1
            while need < 0 or len(buf) < need:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
                if need < 0 and b"\n" in buf:
                    need = _answer_size(buf)
        finally:
            s.close()
    except TimeoutError as exc:
        raise RelayError(f"the corral supervisor did not answer within {limit:g}s") from exc
    except OSError as exc:
        raise RelayError(f"cannot reach the corral supervisor at {where} "
                         f"({exc.strerror or exc})") from exc
    if need < 0 or len(buf) < need:
        raise RelayError("the corral supervisor closed the connection without an answer")
    head, _, body = buf.partition(b"\n")
    parts = head.split()
    code, n_out, n_err = int(parts[1]), int(parts[2]), int(parts[3])
    return (body[:n_out].decode("utf-8", "surrogateescape"), code,
            body[n_out:n_out + n_err].decode("utf-8", "surrogateescape"))


def _answer_size(buf: bytes) -> int:
    head = buf.partition(b"\n")[0]
    parts = head.split()
    try:
        if len(parts) != 4 or parts[0] != MAGIC:
            raise ValueError
        code, n_out, n_err = int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        raise RelayError("the corral supervisor sent a malformed answer") from None
    if not 0 <= n_out + n_err <= MAX_ANSWER or not 0 <= code < 256:
        raise RelayError("the corral supervisor sent a malformed answer")
    return len(head) + 1 + n_out + n_err
