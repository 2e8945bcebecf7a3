"""The gateway between an agent and one MCP server: to the agent it is the server, to the server
it is the client.

Messages pass through as they are (initialize, listings, notifications, and requests the server
makes of the agent such as sampling and elicitation) with three exceptions:

* ``tools/call``, ``resources/read`` and ``prompts/get`` (``ACTIONS``): the pipeline decides
  first (``Decider.decide``; a resource or prompt no rule names passes undecided). A refusal
  never reaches the server: for a tool the agent gets a tool error result (``isError``) whose
  text tells the model why, for a resource or prompt a JSON-RPC error (``REFUSED``) with that
  text. Every one is recorded with its outcome and duration (``Decider.record``).
* ``tools/list`` answers: each tool's definition is hashed and compared with its pin
  (``Decider.tools_seen``) before the agent sees the list.
* Every request the agent makes gets an answer: a server that does not answer in
  ``timeout`` seconds, that answers with garbage or too much, or that exits, is one error to
  the agent (a tool error for ``tools/call``) and one line on stderr, never a hang.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from mcp.shared.message import SessionMessage
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    PARSE_ERROR,
    CallToolResult,
    JSONRPCError,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    TextContent,
)

from corral.approvals.pins import tool_hash
from corral.mcpgateway.wire import WireError, error_message

# the requests that are actions, and the parameter naming what they act on
ACTIONS = {"tools/call": "name", "resources/read": "uri", "prompts/get": "name"}
REFUSED = -32001  # JSON-RPC error for a refused resources/read or prompts/get (server range)


class Channel(Protocol):
    async def receive(self) -> SessionMessage | WireError | None: ...

    async def send(self, message: SessionMessage) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    message: str = ""  # the refusal line when not allowed
    call_id: str | None = None


class Decider(Protocol):
    """Where the gateway's questions go: a ``Session``'s pipeline in this process, or the
    session API of the corral session the agent runs in. Blocking; called on worker threads.
    ``tool`` is what the ``method`` acts on: the tool, the resource's URI or the prompt."""

    def decide(self, tool: str, arguments: str, annotations: dict[str, Any] | None,
               method: str = "tools/call") -> Verdict:
        ...

    def tools_seen(self, tools: dict[str, str], complete: bool) -> None: ...

    def record(self, verdict: Verdict, tool: str, arguments: str, outcome: str,
               duration_ms: float, error: str | None, method: str = "tools/call") -> None: ...


@dataclass
class _Pending:
    method: str
    request_id: Any
    started: float
    tool: str | None = None
    arguments: str = ""
    verdict: Verdict | None = None
    cursor: bool = False  # tools/list: a later page
    done: anyio.Event = field(default_factory=anyio.Event)


def _key(request_id: Any) -> str:
    return json.dumps(request_id)  # 1 and "1" are different ids


def refusal(method: str, request_id: Any, text: str) -> SessionMessage:
    """The answer to an action that was not made: a tool error result the model reads, or
    for a resource or prompt a JSON-RPC error with the same line."""
    if method == "tools/call":
        return tool_error(request_id, text)
    return error_message(request_id, REFUSED, text)


def tool_error(request_id: Any, text: str) -> SessionMessage:
    """A ``tools/call`` answer the model reads: an error result, not a protocol error."""
    result = CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
    return SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result.model_dump(
        by_alias=True, exclude_unset=True, mode="json")))


class Gateway:
    def __init__(self, server: str, agent: Channel, upstream: Channel, decider: Decider, *,
                 timeout: float | None = 600.0, log: Callable[[str], None] | None = None,
                 exit_status: Callable[[], int | None] | None = None) -> None:
        self.server = server
        self.agent = agent
        self.upstream = upstream
        self.decider = decider
        self.timeout = timeout or None
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.exit_status = exit_status or (lambda: None)
        self.pending: dict[str, _Pending] = {}
        self.annotations: dict[str, dict[str, Any]] = {}
        self.errors = 0  # lines said about bad traffic (for tests)
        self.unchecked: str | None = None  # why the tool list could not be checked
        self._tg: Any = None
        self._records: queue.Queue[tuple[Any, ...] | None] = queue.Queue()

    async def run(self) -> None:
        """Until either side closes; then every request still open gets its answer."""
        worker = threading.Thread(target=self._recorder, name="corral-mcp-record", daemon=True)
        worker.start()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._from_upstream, tg)
                await self._from_agent(tg)
                tg.cancel_scope.cancel()
        finally:
            self._records.put(None)
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(worker.join)
                await self.upstream.aclose()

    def _say(self, text: str) -> None:
        self.errors += 1
        self.log(f"corral: mcp: {text}")

    # -- agent -> server ------------------------------------------------------------------

    async def _from_agent(self, tg: Any) -> None:
        while (item := await self.agent.receive()) is not None:
            if isinstance(item, WireError):
                self._say(f"{item.message} (server {self.server!r})")
                code = PARSE_ERROR if item.request_id is None else item.code
                await self.agent.send(error_message(item.request_id, code,
                                                    f"corral: mcp: {item.message}"))
                continue
            msg = item.message
            if isinstance(msg, JSONRPCRequest) and msg.method in ACTIONS:
                tg.start_soon(self._call, msg)
                continue
            if isinstance(msg, JSONRPCRequest):
                p = _Pending(msg.method, msg.id, time.perf_counter(),
                             cursor=bool((msg.params or {}).get("cursor")))
                if not self._track(msg.id, p):
                    continue
                tg.start_soon(self._deadline, _key(msg.id), p)
            await self._to_upstream(item)

    def _track(self, request_id: Any, p: _Pending) -> bool:
        key = _key(request_id)
        if key in self.pending:
            self._say(f"the agent reused request id {key} while it was still open")
            self._tg.start_soon(self.agent.send, error_message(
                request_id, INVALID_PARAMS, f"corral: mcp: request id {key} is already in use"))
            return False
        self.pending[key] = p
        return True

    async def _to_upstream(self, item: SessionMessage) -> None:
        try:
            await self.upstream.send(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            msg = item.message
            if isinstance(msg, JSONRPCRequest):
                await self._answer_closed(_key(msg.id), f"cannot write to it ({exc})")

    async def _call(self, msg: JSONRPCRequest) -> None:
        """An action (``ACTIONS``): decided, then passed on or refused, and recorded."""
        started = time.perf_counter()
        method, params = msg.method, msg.params or {}
        key = ACTIONS[method]
        tool, args = params.get(key), params.get("arguments")
        if not isinstance(tool, str) or not tool:
            self._say(f"the agent sent {method} without params.{key}")
            await self.agent.send(error_message(msg.id, INVALID_PARAMS,
                                                f"corral: mcp: {method} needs params.{key}"))
            return
        arguments = json.dumps({} if args is None else args, sort_keys=True,
                               ensure_ascii=False)
        if self.unchecked is not None and method == "tools/call":
            verdict = Verdict(False, f"corral: mcp: the tools of server {self.server!r} could "
                              f"not be checked against their pin ({self.unchecked}); the call "
                              "was not made")
            await self.agent.send(tool_error(msg.id, verdict.message))
            self._record(verdict, tool, arguments, "refused", started, verdict.message)
            return
        try:
            verdict = await anyio.to_thread.run_sync(
                self.decider.decide, tool, arguments, self.annotations.get(tool), method,
                abandon_on_cancel=True)
        except Exception as exc:  # fail closed: no decision, no call
            text = getattr(exc, "line", None)
            why = text() if callable(text) else f"corral: mcp: no decision ({exc})"
            verdict = Verdict(False, f"{why}; the call was not made")
        if not verdict.allowed:
            await self.agent.send(refusal(method, msg.id, verdict.message))
            self._record(verdict, tool, arguments, "refused", started, verdict.message, method)
            return
        p = _Pending(method, msg.id, started, tool, arguments, verdict)
        if not self._track(msg.id, p):
            return
        self._tg.start_soon(self._deadline, _key(msg.id), p)
        # re-encoded, not the raw line: the server reads the call that was decided (a
        # duplicate key read one way here and another way there cannot slip through)
        await self._to_upstream(SessionMessage(msg))

    async def _deadline(self, key: str, p: _Pending) -> None:
        if self.timeout is None:
            return
        with anyio.move_on_after(self.timeout):
            await p.done.wait()
            return
        if self.pending.get(key) is not p:
            return
        del self.pending[key]
        what = f"{p.method} {p.tool}" if p.tool else p.method
        text = (f"corral: mcp: server {self.server!r} did not answer {what} within "
                f"{self.timeout:g} s (mcp.servers.{self.server}.timeout_seconds); the request "
                "was cancelled")
        self._say(text.removeprefix("corral: mcp: "))
        await self._answer(p, text, "timeout")
        cancel = JSONRPCNotification(jsonrpc="2.0", method="notifications/cancelled",
                                     params={"requestId": p.request_id,
                                             "reason": "timed out in corral's MCP gateway"})
        await self._to_upstream(SessionMessage(cancel))

    async def _answer(self, p: _Pending, text: str, outcome: str) -> None:
        """The agent's answer to a request the server will not answer."""
        p.done.set()
        if p.method == "tools/call":
            await self.agent.send(tool_error(p.request_id, text))
        else:
            await self.agent.send(error_message(p.request_id, INTERNAL_ERROR, text))
        if p.method in ACTIONS:
            assert p.verdict is not None and p.tool is not None
            self._record(p.verdict, p.tool, p.arguments, outcome, p.started, text, p.method)

    async def _answer_closed(self, key: str, why: str) -> None:
        p = self.pending.pop(key, None)
        if p is not None:
            await self._answer(p, f"corral: mcp: server {self.server!r} {why}", "server_error")

    def _record(self, verdict: Verdict, tool: str, arguments: str, outcome: str,
                started: float, error: str | None, method: str = "tools/call") -> None:
        """Recorded off the event loop, in order, and drained before the gateway returns."""
        ms = (time.perf_counter() - started) * 1000
        self._records.put((verdict, tool, arguments, outcome, ms, error, method))

    def _recorder(self) -> None:
        while (item := self._records.get()) is not None:
            verdict, tool, arguments, outcome, ms, error, method = item
            try:
                self.decider.record(verdict, tool, arguments, outcome, ms, error, method)
            except Exception as exc:  # said, never dropped silently
                self.log(f"corral: mcp: the record of {self.server}.{tool} failed: {exc}")

    # -- server -> agent ------------------------------------------------------------------

    async def _from_upstream(self, tg: Any) -> None:
        while (item := await self.upstream.receive()) is not None:
            if isinstance(item, WireError):
                self._say(item.message)
                key = _key(item.request_id) if item.request_id is not None else None
                if key is not None and key in self.pending:
                    await self._answer_closed(key, f"sent an unusable answer: {item.message}")
                continue
            msg = item.message
            if isinstance(msg, JSONRPCResponse | JSONRPCError) and msg.id is not None:
                p = self.pending.pop(_key(msg.id), None)
                if p is not None:
                    p.done.set()
                    item = await self._answered(p, item)
            await self.agent.send(item)
        status = self.exit_status()
        for _ in range(20):  # a server that closed its stdout is usually exiting: its status
            if status is not None:
                break
            await anyio.sleep(0.05)
            status = self.exit_status()
        why = "closed the connection" + (f" (exit status {status})" if status is not None
                                         else "")
        if self.pending:
            self._say(f"server {self.server!r} {why} with {len(self.pending)} request(s) open")
        for key in list(self.pending):
            await self._answer_closed(key, why)
        await self.agent.aclose()
        # the agent sees the end of the stream: a server gone is a server gone
        tg.cancel_scope.cancel()

    async def _answered(self, p: _Pending, item: SessionMessage) -> SessionMessage:
        msg = item.message
        if p.method in ACTIONS:
            assert p.verdict is not None and p.tool is not None
            if isinstance(msg, JSONRPCError):
                self._record(p.verdict, p.tool, p.arguments, "server_error", p.started,
                             msg.error.message[:500], p.method)
            elif isinstance(msg, JSONRPCResponse):
                failed = bool(msg.result.get("isError"))
                self._record(p.verdict, p.tool, p.arguments,
                             "tool_error" if failed else "success", p.started, None, p.method)
        elif p.method == "tools/list" and isinstance(msg, JSONRPCResponse):
            await self._tools_listed(p, msg)
            return SessionMessage(msg)  # re-encoded: the agent reads the list that was hashed
        return item

    async def _tools_listed(self, p: _Pending, msg: JSONRPCResponse) -> None:
        tools = msg.result.get("tools")
        if not isinstance(tools, list):
            return
        seen: dict[str, str] = {}
        for t in tools:
            if isinstance(t, dict) and isinstance(t.get("name"), str):
                seen[t["name"]] = tool_hash(t)
                ann = t.get("annotations")
                self.annotations[t["name"]] = ann if isinstance(ann, dict) else {}
        complete = not p.cursor and not msg.result.get("nextCursor")
        try:
            await anyio.to_thread.run_sync(self.decider.tools_seen, seen, complete)
        except Exception as exc:  # fail closed: no call until the list can be checked
            text = getattr(exc, "line", None)
            self.unchecked = text() if callable(text) else str(exc)
            self._say(f"the tool list of {self.server!r} could not be checked against its "
                      f"pin ({self.unchecked}); its tools will not be called")
