"""Asking about unknown hosts: one pending question per (host, port, protocol), answers cached.

The ask callback may be a plain function (run in a worker thread so it can block on a TTY or a
remote approval) or a coroutine function (awaited on the proxy loop).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from corral.types import Action, ActionKind

log = logging.getLogger("corral.netproxy")


@dataclass(frozen=True)
class NetworkQuestion:
    """What the asker is asked: may ``host:port`` be reached over ``protocol``?"""

    host: str
    port: int
    protocol: str
    method: str | None = None
    client: str | None = None

    def action(self, session_id: str | None = None) -> Action:
        """This question as an approvals ``Action`` (kind network)."""
        details = {"host": self.host, "port": self.port, "protocol": self.protocol}
        if self.method:
            details["method"] = self.method
        return Action(ActionKind.NETWORK, session_id=session_id, details=details)

    def prompt(self) -> str:
        return f"{self.host} is not in the allowed domains: allow {self.protocol} to port {self.port}?"


@dataclass(frozen=True)
class AskAnswer:
    """``source`` says who answered: ``user``, ``reviewer``, a grant id, ... ``remember=False``
    means allow/deny once (not cached for the session)."""

    allow: bool
    source: str = "user"
    remember: bool = True
    reason: str = ""


AskResult = AskAnswer | bool
AskCallback = Callable[[NetworkQuestion], AskResult | Awaitable[AskResult]]


@dataclass(frozen=True)
class Resolution:
    allow: bool
    source: str
    reason: str


Key = tuple[str, int, str]


class SessionAsker:
    """Session cache plus coalescing of concurrent questions. Lives on the proxy's loop."""

    def __init__(self, ask: AskCallback | None, timeout: float = 300.0) -> None:
        self._ask = ask
        self._timeout = timeout
        self._cache: dict[Key, Resolution] = {}
        self._pending: dict[Key, asyncio.Future[Resolution]] = {}

    def grant(self, host: str, port: int, protocol: str, allow: bool, source: str) -> None:
        """Record a session answer given out of band (e.g. a grant the supervisor restored)."""
        self._cache[(host, port, protocol)] = Resolution(allow, source, "session grant")

    def forget(self) -> None:
        self._cache.clear()

    async def resolve(self, q: NetworkQuestion) -> Resolution:
        key = (q.host, q.port, q.protocol)
        cached = self._cache.get(key)
        if cached is not None:
            tag = "allowed" if cached.allow else "denied"
            return Resolution(cached.allow, "session grant", f"{tag} earlier this session")
        if self._ask is None:
            return Resolution(False, "policy", "not_allowed (no one to ask)")
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Resolution] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        try:
            res, remember = await self._ask_once(q)
            if remember:
                self._cache[key] = res
            fut.set_result(res)
            return res
        except BaseException as exc:
            fut.set_result(Resolution(False, "policy", "ask_failed"))
            if isinstance(exc, asyncio.CancelledError):
                raise
            return Resolution(False, "policy", "ask_failed")
        finally:
            del self._pending[key]

    async def _ask_once(self, q: NetworkQuestion) -> tuple[Resolution, bool]:
        assert self._ask is not None
        ask = self._ask
        try:
            if inspect.iscoroutinefunction(ask):
                result = await asyncio.wait_for(ask(q), self._timeout)
            else:
                result = await asyncio.wait_for(asyncio.to_thread(ask, q), self._timeout)
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, self._timeout)
        except TimeoutError:
            return Resolution(False, "policy", "ask_timeout"), False
        except Exception:
            log.exception("network ask callback failed")
            return Resolution(False, "policy", "ask_failed"), False
        if isinstance(result, bool):
            result = AskAnswer(result)
        if not isinstance(result, AskAnswer):
            return Resolution(False, "policy", "ask_failed (bad answer)"), False
        reason = result.reason or ("approved" if result.allow else "not_allowed (declined)")
        return Resolution(result.allow, result.source, reason), result.remember


DecisionValue = Literal["allow", "deny"]
