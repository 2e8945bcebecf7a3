"""First process inside a ``proxy``-mode sandbox: loopback bridge + command under a stricter filter.

``python -m corral.sandbox.proxyinit --port 3128 --port 1080 --to SOCK [--bridge PORT=SOCK2]...
--bpf-fd N -- CMD...``

The sandbox has its own network namespace, and its only way out is the managed proxy's unix
socket, which is bind-mounted at SOCK. Tools speak TCP to a proxy URL, so this process:

1. listens on 127.0.0.1 at each ``--port``;
2. forks the command, which first stacks the strict ``proxy`` seccomp filter read from fd N
   (no AF_UNIX ``socket()``), so the command itself cannot open the proxy socket or any other
   unix socket;
3. relays every accepted connection to SOCK until the command exits, then exits with its status.

``--bridge PORT=SOCK2`` adds another loopback port relayed to another bind-mounted socket (the
supervisor's session API for hooks inside the sandbox, for example).

This process is made non-dumpable, so the command cannot write into its memory through
/proc/PID/mem and borrow its AF_UNIX capability. Stdlib only, to start fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading

PR_SET_NO_NEW_PRIVS, PR_SET_DUMPABLE, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 4, 22, 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_filter(bpf: bytes) -> None:
    """Stack a raw BPF program onto this process (and what it execs)."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.prctl(
        PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0
    ) != 0:
        raise OSError(ctypes.get_errno(), "cannot install the seccomp filter")


async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while chunk := await r.read(1 << 16):
            w.write(chunk)
            await w.drain()
        if w.can_write_eof():
            w.write_eof()
    except OSError:
        w.close()


def _handler(path: str):  # type: ignore[no-untyped-def]
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_unix_connection(path)
        except OSError as exc:
            print(f"corral: network: cannot reach the proxy socket ({exc})", file=sys.stderr)
            w.close()
            return
        try:
            await asyncio.gather(_pipe(r, uw), _pipe(ur, w))
        finally:
            w.close()
            uw.close()

    return handle


async def _relay(listeners: list[tuple[socket.socket, str]], done: asyncio.Event) -> None:
    servers = [await asyncio.start_server(_handler(path), sock=s) for s, path in listeners]
    await done.wait()
    for srv in servers:
        srv.close()


def main(argv: list[str]) -> int:
    ports: list[int] = []
    bridges: list[tuple[int, str]] = []
    to = ""
    bpf_fd = -1
    i = 0
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--port":
            ports.append(int(argv[i + 1]))
        elif argv[i] == "--to":
            to = argv[i + 1]
        elif argv[i] == "--bridge":
            port_text, _, path = argv[i + 1].partition("=")
            bridges.append((int(port_text), path))
        elif argv[i] == "--bpf-fd":  # "none": the weaker mode 'no-seccomp' was accepted
            bpf_fd = -2 if argv[i + 1] == "none" else int(argv[i + 1])
        else:
            print(f"corral: sandbox: proxyinit: unknown argument {argv[i]!r}", file=sys.stderr)
            return 126
        i += 2
    cmd = argv[i + 1:]
    if not cmd or not to or bpf_fd == -1:
        print("corral: sandbox: proxyinit: usage: --port P --to SOCK --bpf-fd N|none -- CMD",
              file=sys.stderr)
        return 126
    bpf = b""
    if bpf_fd >= 0:
        with os.fdopen(bpf_fd, "rb") as f:
            bpf = f.read()
    listeners: list[tuple[socket.socket, str]] = []
    for port, path in [(p, to) for p in ports] + bridges:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(128)
        s.set_inheritable(False)
        listeners.append((s, path))
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    pid = os.fork()
    if pid == 0:
        try:
            for s, _ in listeners:
                s.close()
            if bpf:
                load_filter(bpf)
            os.execvp(cmd[0], cmd)
        except OSError as exc:
            print(f"corral: sandbox: {cmd[0]}: {exc.strerror or exc}", file=sys.stderr)
            os._exit(126 if isinstance(exc, PermissionError) else 127)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command decides what Ctrl-C means
    loop = asyncio.new_event_loop()
    done = asyncio.Event()
    status: list[int] = []

    def reap() -> None:
        _, st = os.waitpid(pid, 0)
        status.append(os.waitstatus_to_exitcode(st))
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=reap, daemon=True).start()
    with contextlib.suppress(Exception):
        loop.run_until_complete(_relay(listeners, done))
    rc = status[0] if status else 1
    return 128 - rc if rc < 0 else rc


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)  # relays still open when the command ended: no teardown noise
