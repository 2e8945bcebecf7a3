"""JSON-RPC on the wire: channels that carry the MCP SDK's ``SessionMessage`` both ways.

* ``FdChannel``: newline-delimited JSON-RPC over a pair of pipes (the agent's stdio, a stdio
  server's), read without threads and bounded: a message over ``max_bytes`` is skipped to its
  end and comes back as one ``WireError`` (with the request id when its head shows one), so a
  huge message costs a bounded buffer, never the whole of it in memory.
* ``StreamsChannel``: the SDK's own transport streams (the streamable-HTTP client).

Every message is parsed and checked by the SDK (``mcp.types.jsonrpc_message_adapter``); what
is not JSON, or not JSON-RPC, is a ``WireError`` naming what was wrong.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.shared.message import SessionMessage
from mcp.types import (
    INVALID_REQUEST,
    PARSE_ERROR,
    ErrorData,
    JSONRPCError,
    jsonrpc_message_adapter,
)

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
_HEAD = 4096
_ID = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,200}")')


class WireError(Exception):
    """A message that could not be used: ``code`` is the JSON-RPC error to answer with and
    ``request_id`` the id of the request it was, when that could be read."""

    def __init__(self, code: int, message: str, request_id: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def _request_id(head: bytes) -> Any:
    """The ``id`` of a message from its first bytes (a broken or huge one), or None."""
    m = _ID.search(head[:_HEAD])
    if m is None:
        return None
    with contextlib.suppress(ValueError):
        value = json.loads(m.group(1))
        if isinstance(value, int | str):
            return value
    return None


@dataclass
class WireMessage(SessionMessage):
    """A message as it came off the wire: passed on as those very bytes (checked, not
    re-encoded) unless the gateway answers with one of its own."""

    raw: bytes = b""


def parse(line: bytes, who: str) -> SessionMessage | WireError:
    """One line off the wire: the SDK's message, or why it is not one."""
    try:
        return WireMessage(jsonrpc_message_adapter.validate_json(line, by_name=False),
                           raw=line)
    except ValueError as exc:
        try:
            doc = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return WireError(PARSE_ERROR, f"{who} sent a line that is not JSON "
                             f"({len(line)} bytes)")
        rid = doc.get("id") if isinstance(doc, dict) else None
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return WireError(INVALID_REQUEST, f"{who} sent JSON that is not a JSON-RPC 2.0 "
                         f"message ({first})", rid if isinstance(rid, int | str) else None)


def dump(message: Any) -> bytes:
    """A message (SDK model) as one line."""
    text: str = message.model_dump_json(by_alias=True, exclude_unset=True)
    return text.encode() + b"\n"


def error_message(request_id: Any, code: int, text: str) -> SessionMessage:
    return SessionMessage(JSONRPCError(jsonrpc="2.0", id=request_id,
                                       error=ErrorData(code=code, message=text)))


class FdChannel:
    """Messages over two file descriptors (non-blocking while in use, restored on close)."""

    def __init__(self, read_fd: int, write_fd: int, who: str, *,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self.who = who
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._scan = 0
        self._skipping: bytes | None = None  # the head of a message over the limit
        self._lock = anyio.Lock()
        self._flags = {fd: os.get_blocking(fd) for fd in {read_fd, write_fd}}
        for fd in self._flags:
            os.set_blocking(fd, False)
        self.closed = False

    async def _read(self) -> bytes:
        while True:
            try:
                return os.read(self.read_fd, 1 << 16)
            except BlockingIOError:
                await anyio.wait_readable(self.read_fd)
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    return b""
                raise

    async def receive(self) -> SessionMessage | WireError | None:
        """The next message, a ``WireError``, or None at the end of the stream."""
        while True:
            nl = self._buf.find(b"\n", self._scan)
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[:nl + 1]
                self._scan = 0
                if self._skipping is not None:
                    head, self._skipping = self._skipping, None
                    return self._too_large(head)
                if line.strip():
                    return parse(line, self.who)
                continue
            if len(self._buf) > self.max_bytes:
                if self._skipping is None:
                    self._skipping = bytes(self._buf[:_HEAD])
                self._buf.clear()
            self._scan = len(self._buf)
            data = await self._read()
            if not data:
                if self._skipping is not None:
                    head, self._skipping = self._skipping, None
                    return self._too_large(head)
                if self._buf.strip():
                    line = bytes(self._buf)
                    self._buf.clear()
                    return parse(line, self.who)
                return None
            self._buf += data

    def _too_large(self, head: bytes) -> WireError:
        return WireError(INVALID_REQUEST, f"{self.who} sent a message of more than "
                         f"{self.max_bytes} bytes; it was dropped", _request_id(head))

    async def send(self, message: SessionMessage) -> None:
        raw = message.raw if isinstance(message, WireMessage) else b""
        data = memoryview(raw + b"\n" if raw else dump(message.message))
        async with self._lock:
            while data:
                try:
                    n = os.write(self.write_fd, data)
                except BlockingIOError:
                    await anyio.wait_writable(self.write_fd)
                    continue
                data = data[n:]

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fd, blocking in self._flags.items():
            with contextlib.suppress(OSError):
                os.set_blocking(fd, blocking)


class StreamsChannel:
    """The SDK transport's (read, write) memory streams as a channel. ``why``: the line that
    explains the next error the transport reports (the SDK says only "Server returned an error
    response"; a refusal of the managed proxy says what and why)."""

    def __init__(self, read_stream: Any, write_stream: Any, who: str, *,
                 why: Callable[[], str | None] | None = None) -> None:
        self.read_stream, self.write_stream = read_stream, write_stream
        self.who = who
        self.why = why or (lambda: None)

    async def receive(self) -> SessionMessage | WireError | None:
        try:
            item = await self.read_stream.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None
        if isinstance(item, SessionMessage):
            msg = item.message
            if isinstance(msg, JSONRPCError) and (line := self.why()) is not None:
                return error_message(msg.id, msg.error.code,
                                     f"corral: mcp: {self.who} could not be reached: {line}")
            return item
        text = str(item).splitlines()[0][:300] if str(item) else type(item).__name__
        return WireError(INVALID_REQUEST, f"{self.who}: {text}")

    async def send(self, message: SessionMessage) -> None:
        await self.write_stream.send(message)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.write_stream.aclose()
