"""Byte relay between two connections once a tunnel is open.

After the handshake (read with asyncio streams) both transports are switched to a small
protocol that writes each received chunk straight to the other side, with back-pressure via
pause/resume reading. This avoids the per-chunk coroutine overhead of stream-based copying.
"""

from __future__ import annotations

import asyncio
from typing import Any


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

    def eof_received(self) -> bool:
        self.eof = True
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
        self.state.close()


class _Tunnel:
    def __init__(self) -> None:
        self.a = _Pipe(self)
        self.b = _Pipe(self)
        self.a.peer, self.b.peer = self.b, self.a
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.bytes = 0

    def close(self) -> None:
        for p in (self.a, self.b):
            if p.transport is not None and not p.transport.is_closing():
                p.transport.close()
        if not self.done.done():
            self.done.set_result(None)


def _take_buffer(reader: asyncio.StreamReader) -> bytes:
    # StreamReader exposes no public way to take what it already buffered without awaiting.
    buf: Any = getattr(reader, "_buffer", b"")
    data = bytes(buf)
    if data:
        del buf[:]
    return data


async def relay(
    r1: asyncio.StreamReader,
    w1: asyncio.StreamWriter,
    r2: asyncio.StreamReader,
    w2: asyncio.StreamWriter,
    idle_timeout: float | None = None,
) -> int:
    """Relay until both sides closed. Returns bytes relayed (both directions)."""
    t1 = w1.transport
    t2 = w2.transport
    assert isinstance(t1, asyncio.Transport) and isinstance(t2, asyncio.Transport)
    tun = _Tunnel()
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
    for t in (t1, t2):
        if not t.is_closing() and not t.is_reading():
            t.resume_reading()
    try:
        await tun.done
    finally:
        tun.close()
    return tun.bytes
