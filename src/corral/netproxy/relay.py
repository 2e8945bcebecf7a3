"""Byte relay between two connections once a tunnel is open.

Every tunnel starts with both transports switched to a small protocol that writes each received
chunk straight to the other side, with back-pressure via pause/resume: cheapest for the small,
interactive exchanges most tunnels are. On Linux, once a tunnel has moved ``SPLICE_AFTER`` bytes,
reading pauses, both write buffers drain, the sockets are taken over from asyncio and bytes move
with ``splice(2)`` through a pipe (zero-copy, no Python object per chunk): by two threads doing
blocking splice loops (up to ``THREADED_MAX`` tunnels at once), else by event-loop callbacks.

A tunnel that moves no byte in either direction for ``idle_timeout`` seconds is closed (in every
mode, by one event-loop timer that also reads the kernel's per-socket counters, so a splice
thread inside one long write to a slow reader still counts as moving), so forgotten or stalled
tunnels do not hold descriptors, upstream connections and threads for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import struct
import termios
import threading
from typing import Any

_SPLICE = hasattr(os, "splice")
SPLICE_AFTER = 256 * 1024
THREADED_MAX = 64  # tunnels spliced by threads at once; beyond, by event-loop callbacks
_PIPE_SIZE = 1 << 20
_BULK_SOCKBUF = 4 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_TCPI_BYTES_ACKED, _TCP_INFO_LEN = 120, 136  # struct tcp_info: bytes_acked, bytes_received
_UNIX_STEP = 64 * 1024
IDLE_TIMEOUT = 300.0  # default seconds without a byte either way before a tunnel is closed
_IDLE_TICKS = 4  # idle checks per timeout: a tunnel ends at most a quarter late


class _Pipe(asyncio.Protocol):
    def __init__(self, state: _Tunnel) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.eof = False

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None and self.peer.transport is not None
        self.peer.transport.write(data)
        self.state.bytes += len(data)
        if self.state.upgrade_at is not None and self.state.bytes >= self.state.upgrade_at:
            self.state.request_upgrade()

    def eof_received(self) -> bool:
        self.eof = True
        self.state.upgrade_at = None  # half-closed tunnels finish where they are
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            if peer.transport.can_write_eof():
                peer.transport.write_eof()
            else:
                peer.transport.close()
        if peer is not None and peer.eof:
            self.state.close()
        return True  # keep the other direction open (half-close)

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.state.detached:
            self.state.close()


class _Tunnel:
    def __init__(self, upgrade_at: int | None) -> None:
        self.a = _Pipe(self)
        self.b = _Pipe(self)
        self.a.peer, self.b.peer = self.b, self.a
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.bytes = 0
        self.upgrade_at = upgrade_at
        self.upgrading = False
        self.detached = False

    def request_upgrade(self) -> None:
        self.upgrade_at = None
        if self.a.eof or self.b.eof:
            return
        self.upgrading = True
        for p in (self.a, self.b):
            if p.transport is not None and not p.transport.is_closing():
                p.transport.pause_reading()
        if not self.done.done():
            self.done.set_result(None)

    def resume(self) -> None:
        """Upgrade abandoned: carry on in protocol mode."""
        self.upgrading = False
        self.done = asyncio.get_running_loop().create_future()
        for p in (self.a, self.b):
            if p.transport is not None and not p.transport.is_closing():
                p.transport.resume_reading()

    def close(self) -> None:
        if self.detached:
            return
        for p in (self.a, self.b):
            if p.transport is not None and not p.transport.is_closing():
                p.transport.close()
        if not self.done.done():
            self.done.set_result(None)


class IdleWatch:
    """Calls ``on_idle`` once ``progress()`` has returned the same value for ``timeout`` s.

    Checked by a loop timer a few times per timeout rather than on every chunk, so the bulk
    path pays nothing for it; the first reading is taken at the first tick, not at tunnel setup
    (a tunnel idle from the start is closed up to one tick late, never early).

    A tick that comes more than a tick late means this process was not running its loop (a
    long GC pause, a stopped or starved proxy): that time is not counted as the tunnel's, since
    the proxy may be why nothing moved, so the watch starts again from the late tick."""

    def __init__(self, timeout: float | None, progress: Any, on_idle: Any) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeout, self.progress, self.on_idle = timeout, progress, on_idle
        self.last: object = IdleWatch  # no reading yet
        self.since = self.due = 0.0
        self.every = (timeout or 0.0) / _IDLE_TICKS  # seconds between checks
        self.handle: asyncio.TimerHandle | None = None
        if timeout:
            self._schedule(self.loop.time())

    def _schedule(self, now: float) -> None:
        self.due = now + self.every
        self.handle = self.loop.call_at(self.due, self._tick)

    def _tick(self) -> None:
        assert self.timeout
        now, cur = self.loop.time(), self.progress()
        if cur != self.last or now - self.due > self.every:
            self.last, self.since = cur, now
        elif now - self.since >= self.timeout:
            self.on_idle()
            return
        self._schedule(now)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()


def _take_buffer(reader: asyncio.StreamReader) -> bytes:
    # StreamReader exposes no public way to take what it already buffered without awaiting.
    buf: Any = getattr(reader, "_buffer", b"")
    data = bytes(buf)
    if data:
        del buf[:]
    return data


class _SpliceDir:
    """One direction: src socket -> pipe -> dst socket, driven by readiness callbacks."""

    def __init__(self, loop: asyncio.AbstractEventLoop, src: int, dst: int, owner: _Splicer) -> None:
        self.loop, self.src, self.dst, self.owner = loop, src, dst, owner
        self.pr, self.pw = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.pw, _F_SETPIPE_SZ, _PIPE_SIZE)
        self.pending = 0
        self.eof = False
        self.done = False
        self.moved = 0

    def start(self) -> None:
        self.loop.add_reader(self.src, self._readable)

    def _readable(self) -> None:
        for _ in range(16):  # keep moving while data keeps coming, up to a fairness bound
            try:
                n = os.splice(self.src, self.pw, _PIPE_SIZE,
                              flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
            except BlockingIOError:
                return
            except OSError:
                self.owner.finish()
                return
            if n == 0:
                self.eof = True
                self.loop.remove_reader(self.src)
            self.pending += n
            self.moved += n
            self._flush()
            if self.pending or self.eof or self.owner.closed:
                return

    def _flush(self) -> None:
        while self.pending:
            try:
                m = os.splice(self.pr, self.dst, self.pending,
                              flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
            except BlockingIOError:
                self.loop.remove_reader(self.src)
                self.loop.add_writer(self.dst, self._writable)
                return
            except OSError:
                self.owner.finish()
                return
            self.pending -= m
        if self.eof:
            with contextlib.suppress(OSError), socket.socket(fileno=os.dup(self.dst)) as s:
                s.shutdown(socket.SHUT_WR)
            self.done = True
            self.owner.check()

    def _writable(self) -> None:
        self.loop.remove_writer(self.dst)
        self._flush()
        if not self.pending and not self.eof and not self.owner.closed:
            self.loop.add_reader(self.src, self._readable)

    def close(self) -> None:
        for fd in (self.src, self.dst):
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)
        for fd in (self.pr, self.pw):
            with contextlib.suppress(OSError):
                os.close(fd)


class _Splicer:
    def __init__(self, a: int, b: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.a, self.b = a, b
        self.closed = False
        self.fut: asyncio.Future[None] = self.loop.create_future()
        self.dirs = (_SpliceDir(self.loop, a, b, self), _SpliceDir(self.loop, b, a, self))

    def check(self) -> None:
        if all(d.done for d in self.dirs):
            self.finish()

    def finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        for d in self.dirs:
            d.close()
        for fd in (self.a, self.b):
            with contextlib.suppress(OSError):
                os.close(fd)
        if not self.fut.done():
            self.fut.set_result(None)


class _ThreadSplice:
    """Both directions as blocking ``splice(2)`` loops, one thread each.

    A bulk tunnel then costs two system calls per chunk and no event-loop wake-up, epoll change
    or Python callback; ``os.splice`` releases the GIL, so the loop keeps serving other clients.
    Descriptors are closed only by the last thread out, never under a blocked call.
    """

    running = 0  # tunnels currently relayed this way (event-loop thread only)

    def __init__(self, a: int, b: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.fut: asyncio.Future[None] = self.loop.create_future()
        self.a, self.b = a, b
        self.moved = [0, 0]
        self.left = 2
        self.lock = threading.Lock()
        self.stopped = False
        _ThreadSplice.running += 1
        for fd in (a, b):
            os.set_blocking(fd, True)
            # Bigger kernel buffers: fewer sleeps and wake-ups per byte (measured: about 10% less
            # proxy CPU per GiB on loopback). Only bulk tunnels get here, at most THREADED_MAX.
            with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BULK_SOCKBUF)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BULK_SOCKBUF)
        for i, (src, dst) in enumerate(((a, b), (b, a))):
            threading.Thread(target=self._pump, args=(i, src, dst), daemon=True,
                             name="corral-splice").start()

    def _pump(self, i: int, src: int, dst: int) -> None:
        pr = pw = -1
        ok = False
        try:
            # A blocking write returns only when done; to a unix socket (no kernel byte counter
            # for the idle watch) it is cut into steps so a slow reader still shows progress.
            step = _PIPE_SIZE if _is_inet(dst) else _UNIX_STEP
            pr, pw = os.pipe2(os.O_CLOEXEC)
            with contextlib.suppress(OSError):
                fcntl.fcntl(pw, _F_SETPIPE_SZ, _PIPE_SIZE)
            while n := os.splice(src, pw, _PIPE_SIZE, flags=os.SPLICE_F_MOVE):
                while n:
                    m = os.splice(pr, dst, min(n, step), flags=os.SPLICE_F_MOVE)
                    n -= m
                    self.moved[i] += m
            _shutdown(dst, socket.SHUT_WR)
            ok = True
        except OSError:
            pass
        finally:
            if not ok:  # one side failed: end the other direction too
                self.stop()
            for fd in (pr, pw):
                if fd >= 0:
                    os.close(fd)
            with self.lock:
                self.left -= 1
                last = self.left == 0
            if last:
                os.close(self.a)
                os.close(self.b)
                with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
                    self.loop.call_soon_threadsafe(self._done)

    def progress(self) -> tuple[int, ...]:
        """Changes whenever bytes move, also while a thread is inside one long blocking write
        to a slow reader (its ``moved`` count is only updated when the call returns)."""
        return (self.moved[0], self.moved[1], _socket_progress(self.a), _socket_progress(self.b))

    def _done(self) -> None:
        _ThreadSplice.running -= 1
        if not self.fut.done():
            self.fut.set_result(None)

    def stop(self) -> None:
        with self.lock:
            if self.stopped or self.left == 0:
                return
            self.stopped = True
            for fd in (self.a, self.b):
                _shutdown(fd, socket.SHUT_RDWR)


def _is_inet(fd: int) -> bool:
    with socket.socket(fileno=os.dup(fd)) as s:
        return s.family in (socket.AF_INET, socket.AF_INET6)


def _socket_progress(fd: int) -> int:
    """A number that changes while the peer of socket ``fd`` keeps reading or writing: TCP's
    bytes acknowledged + received (``tcp_info``), else the bytes queued either way."""
    try:
        with socket.socket(fileno=os.dup(fd)) as s:
            if s.family in (socket.AF_INET, socket.AF_INET6):
                info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
                acked, received = struct.unpack_from("QQ", info, _TCPI_BYTES_ACKED)
                return int(acked + received)
            queued = struct.unpack("ii", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0" * 4)
                                   + fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))
            return int(queued[0]) * 1_000_003 + int(queued[1])
    except OSError:
        return -1


def _shutdown(fd: int, how: int) -> None:
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as s:
        s.shutdown(how)


async def relay(
    r1: asyncio.StreamReader,
    w1: asyncio.StreamWriter,
    r2: asyncio.StreamReader,
    w2: asyncio.StreamWriter,
    idle_timeout: float | None = IDLE_TIMEOUT,
) -> int:
    """Relay until both sides closed, or nothing moved for ``idle_timeout`` seconds (None or 0:
    never). Returns bytes relayed (both directions)."""
    t1 = w1.transport
    t2 = w2.transport
    assert isinstance(t1, asyncio.Transport) and isinstance(t2, asyncio.Transport)
    tun = _Tunnel(SPLICE_AFTER if _SPLICE else None)
    pending1, pending2 = _take_buffer(r1), _take_buffer(r2)
    eof1, eof2 = r1.at_eof(), r2.at_eof()
    tun.a.transport, tun.b.transport = t1, t2
    for t in (t1, t2):
        t.set_write_buffer_limits(high=1 << 20)
    t1.set_protocol(tun.a)
    t2.set_protocol(tun.b)
    if pending1:
        tun.a.data_received(pending1)
    if pending2:
        tun.b.data_received(pending2)
    if eof1:
        tun.a.eof_received()
    if eof2:
        tun.b.eof_received()
    if not tun.upgrading:
        for t in (t1, t2):
            if not t.is_closing() and not t.is_reading():
                t.resume_reading()
    # Progress in protocol mode: bytes received, or a write buffer or kernel queue draining to a
    # slow reader (asyncio writes again only once the socket has room for a good part of it).
    s1, s2 = t1.get_extra_info("socket").fileno(), t2.get_extra_info("socket").fileno()
    watch = IdleWatch(idle_timeout, lambda: (
        tun.bytes, t1.get_write_buffer_size(), t2.get_write_buffer_size(),
        _socket_progress(s1), _socket_progress(s2)), tun.close)
    try:
        while True:
            await tun.done
            if not tun.upgrading:
                return tun.bytes
            if await _drained(t1, t2):
                break
            tun.resume()
        tun.detached = True
        fd1, fd2 = _detach(t1), _detach(t2)
    finally:
        watch.cancel()
        tun.close()
    if _ThreadSplice.running < THREADED_MAX:
        ts = _ThreadSplice(fd1, fd2)
        watch = IdleWatch(idle_timeout, ts.progress, ts.stop)
        try:
            await asyncio.shield(ts.fut)
        finally:
            watch.cancel()
            ts.stop()  # cancelled: wake both threads; the last one out closes the descriptors
        return tun.bytes + sum(ts.moved)
    sp = _Splicer(fd1, fd2)
    watch = IdleWatch(idle_timeout, lambda: (
        [(d.moved, d.pending) for d in sp.dirs], _socket_progress(fd1), _socket_progress(fd2)),
        sp.finish)
    for d in sp.dirs:
        d.start()
    try:
        await sp.fut
    finally:
        watch.cancel()
        sp.finish()
    return tun.bytes + sum(d.moved for d in sp.dirs)


async def _drained(t1: asyncio.Transport, t2: asyncio.Transport, wait: float = 2.0) -> bool:
    """Wait until both write buffers are empty (so no byte is left behind in asyncio)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + wait
    while t1.get_write_buffer_size() or t2.get_write_buffer_size():
        if t1.is_closing() or t2.is_closing() or loop.time() > end:
            return False
        await asyncio.sleep(0.001)
    return not (t1.is_closing() or t2.is_closing())


def _detach(t: asyncio.Transport) -> int:
    """A dup of the transport's socket; the transport itself is then aborted."""
    sock = t.get_extra_info("socket")
    fd = os.dup(sock.fileno())
    t.abort()
    return fd
