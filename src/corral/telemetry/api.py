"""``Telemetry``: the one object the supervisor emits through.

``emit`` does the cheap part on the caller's thread (validate, apply the content tier, stamp the
envelope) and hands the event to a writer thread that hash-chains and commits batches to the
journal, then offers them to the OTLP exporter. ``emit(..., wait=True)`` returns only once the
event is committed: use it for decisions, so nothing is approved that was not recorded. Once the
journal fails (full disk, read-only file, corrupt database) every later ``emit`` raises
``CorralError("telemetry", …)``: the supervisor must stop approving actions.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sqlite3
import threading
import time
from _queue import Empty, SimpleQueue  # queue.SimpleQueue without queue.py's heapq (~1 ms)
from pathlib import Path

from corral.errors import CorralError
from corral.telemetry.content import TIERS, apply_tier, resolve_tier
from corral.telemetry.journal import DEFAULT_CHECKPOINT_EVERY, JournalWriter, journal_file
from corral.telemetry.keys import load_or_create_signing_key
from corral.telemetry.schema import (
    ORIGIN_ATTR,
    ORIGINS,
    Event,
    EventBody,
    TelemetryDrop,
    validate,
)
from corral.telemetry.stamp import stamp_env
from corral.telemetry.ulid import new_ulid

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:  # an interface for the type checker only: typing is not imported at run time
    from typing import Any, Protocol

    class EventSink(Protocol):
        """Where committed events go next (the OTLP exporter)."""

        def offer(self, event: Event) -> None: ...
        def close(self, timeout: float = 5.0) -> None: ...

_SESSION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BATCH = 512


def _corral_version() -> str:
    """The package's own version constant: importlib.metadata scans every installed
    distribution (~30 ms on each action). tests/telemetry checks the two agree."""
    from corral import __version__

    return __version__


class Telemetry:
    """A session's event pipeline. Create with ``Telemetry.open``; always ``close()``."""

    def __init__(self, writer: JournalWriter, *, session_id: str, agent: str,
                 agent_version: str, tier: int, tier_source: str, user: str, host: str,
                 sink: EventSink | None = None) -> None:
        self.session_id = session_id
        self.journal_path = writer.path
        self.tier = tier
        self.tier_source = tier_source
        self._writer = writer
        self._envelope = (user, host, agent, agent_version, _corral_version())
        self._who: dict[str, str] = {}  # corral.user.id, corral.device.id (docs/fleet.md)
        self._sink = sink
        self._queue: SimpleQueue[tuple[int, Event] | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._ticket = 0
        self._committed = 0
        self._waited = 0  # the last ticket a caller waits for (emit(wait=True), flush)
        self._resumed = threading.Event()  # a caller waited and is on its way again
        self._failure: CorralError | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="corral-journal", daemon=True)
        self._thread.start()
        atexit.register(self._atexit)

    @classmethod
    def open(cls, cfg: Any | None = None, session_id: str | None = None, agent: str = "corral",
             agent_version: str = "", *, home: Path | None = None,
             journal_path: Path | None = None, tier: int | None = None,
             checkpoint_every: int | None = None, sink: EventSink | None = None,
             export: bool = True) -> Telemetry:
        """Open the journal (creating it and the signing key on first use) and start the writer.

        ``cfg`` is an ``EffectiveConfig`` or None (defaults). Raises ``CorralError`` when the
        journal cannot be written — callers must not start a session without a journal.
        """
        from corral.paths import corral_home

        if home is None:
            home = Path(getattr(cfg, "corral_home", None) or corral_home()) if cfg else corral_home()
        sid = session_id or new_ulid()
        if not _SESSION_ID.match(sid):
            raise CorralError("telemetry", f"bad session id {sid!r}",
                              hint="use letters, digits and . _ : - (at most 128)")
        if tier is None:
            tier, tier_source = resolve_tier(cfg)
        else:
            if tier not in TIERS or isinstance(tier, bool):
                raise CorralError("telemetry", f"content tier must be 0, 1 or 2, got {tier!r}")
            tier_source = "argument"
            forced = cfg.requirements.get("telemetry.content_tier") if cfg else None
            if forced is not None and forced != tier:
                tier, tier_source = resolve_tier(cfg)
        every = checkpoint_every or (cfg.get("telemetry.checkpoint_every") if cfg else None) \
            or DEFAULT_CHECKPOINT_EVERY
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise CorralError("telemetry", f"telemetry.checkpoint_every must be a positive "
                              f"integer, got {every!r}")
        path = journal_path or journal_file(home)
        key = load_or_create_signing_key(home)
        try:
            writer = JournalWriter(path, key, int(every))
        except sqlite3.Error as exc:
            raise CorralError("telemetry", f"cannot open journal {path}: {exc}",
                              hint="corral records every action and will not run without it"
                              ) from exc
        if sink is None and export and cfg is not None and (
                cfg.get("telemetry.exporter") or cfg.requirements.get("telemetry.exporter")):
            # only then: the exporter pulls in protobuf, urllib and ssl (~30 ms per action)
            from corral.telemetry.otlp import exporter_from_config

            try:
                sink = exporter_from_config(cfg)
            except CorralError:
                writer.close()
                raise
        if export and cfg is not None and (cfg.get("server.url")
                                           or cfg.requirements.get("server.url")):
            from corral.forward.background import with_forwarder  # issue 12: ship the journal

            sink = with_forwarder(sink, cfg, home, path)
        tel = cls(writer, session_id=sid, agent=agent, agent_version=agent_version, tier=tier,
                  tier_source=tier_source, user=_user(), host=os.uname().nodename, sink=sink)
        if sink is not None and hasattr(sink, "on_drop"):
            sink.on_drop = tel._record_drop
        tel._who = who_stamps(home)
        return tel

    # -- emitting --------------------------------------------------------------------------

    def emit(self, event_name: str, attributes: dict[str, Any] | None = None, *,
             call_id: str | None = None, turn_id: str | None = None,
             content: dict[str, str] | None = None, wait: bool = False,
             origin: str = "pipeline") -> Event:
        """Record one event. Raises ``CorralError`` if the attributes are invalid or the journal
        has failed; with ``wait=True`` also if this event could not be committed.

        ``origin`` (``corral.origin``) says who put it here: corral's own ``pipeline``, or the
        agent's claims through the ``session_api`` or an ``import``. Only this argument sets
        it; attributes may not (``corral.*`` is reserved)."""
        attrs = attributes or {}
        if origin not in ORIGINS:
            raise CorralError("telemetry", f"unknown event origin {origin!r}")
        problem = validate(event_name, attrs)
        if problem is None and content:
            bad = [k for k, v in content.items() if not isinstance(v, str)]
            if bad:
                problem = f"{event_name}: content {bad[0]!r} must be a string"
        if problem is not None:
            raise CorralError("telemetry", problem)
        ev = self._make_event(event_name, attrs, call_id, turn_id, content, origin)
        with self._lock:
            if self._failure is not None:
                raise self._failure
            if self._closed:
                raise CorralError("telemetry", "telemetry is closed")
            if not self._thread.is_alive():
                raise CorralError("telemetry", "journal writer stopped; no further actions will "
                                  "be approved")
            self._ticket += 1
            ticket = self._ticket
            if wait:
                self._waited = ticket
            self._queue.put((ticket, ev))
        if wait:
            self._wait(ticket, None)
        return ev

    def _make_event(self, event_name: str, attrs: dict[str, Any], call_id: str | None,
                    turn_id: str | None, content: dict[str, str] | None,
                    origin: str = "pipeline") -> Event:
        user, host, agent, agent_version, corral_version = self._envelope
        attributes = apply_tier(event_name, attrs, content, self.tier)
        attributes[ORIGIN_ATTR] = origin
        if self._who:
            attributes.update(self._who)
        return Event(
            id=new_ulid(), name=event_name, time_unix_nano=time.time_ns(),
            session_id=self.session_id, turn_id=turn_id, call_id=call_id, user=user, host=host,
            agent_name=agent, agent_version=agent_version, corral_version=corral_version,
            tier=self.tier, attributes=attributes,
        )

    def emit_event(self, body: EventBody, *, call_id: str | None = None,
                   turn_id: str | None = None, wait: bool = False,
                   origin: str = "pipeline") -> Event:
        """Emit a typed event (``ToolDecision(...)`` etc.)."""
        return self.emit(body.NAME, body.attributes(), call_id=call_id, turn_id=turn_id,
                         content=body.content() or None, wait=wait, origin=origin)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything emitted so far is committed; raises if the journal failed."""
        with self._lock:
            ticket = self._waited = self._ticket
        self._wait(ticket, timeout)

    def stamp_env(self, call_id: str | None = None) -> dict[str, str]:
        """Environment for a process started for ``call_id`` (see ``corral.telemetry.stamp``)."""
        return stamp_env(self.session_id, call_id)

    @property
    def failure(self) -> CorralError | None:
        return self._failure

    def _atexit(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, sign a checkpoint at the head, stop the exporter."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        atexit.unregister(self._atexit)
        self._thread.join(timeout)
        try:
            if self._failure is None:
                self._writer.checkpoint()
                self._export_checkpoints()
            if self._sink is not None:
                self._sink.close()  # may report final drops: written directly, then signed
                if self._failure is None:
                    self._writer.checkpoint()
        except sqlite3.Error as exc:
            self._fail(exc)
        finally:
            self._writer.close()
        if self._failure is not None:
            raise self._failure

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writer thread ---------------------------------------------------------------------

    def _wait(self, ticket: int, timeout: float | None) -> None:
        with self._cond:
            done = self._cond.wait_for(
                lambda: self._committed >= ticket or self._failure is not None, timeout)
        self._resumed.set()
        if self._failure is not None and self._committed < ticket:
            raise self._failure
        if not done:
            raise CorralError("telemetry", f"journal write not confirmed within {timeout}s")

    def _run(self) -> None:
        q = self._queue
        stop = False
        signer_ready = False
        while not stop:
            item = q.get()
            batch: list[tuple[int, Event]] = []
            if item is None:
                stop = True
            else:
                batch.append(item)
            while len(batch) < _BATCH:
                try:
                    nxt = q.get_nowait()
                except Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            if not batch or self._failure is not None:
                continue
            try:
                seqs = self._writer.append([ev for _, ev in batch])
            except Exception as exc:  # any failure to record is fatal: fail closed, say why
                self._fail(exc)
                continue
            with self._cond:
                self._committed = batch[-1][0]
                self._cond.notify_all()
            if not signer_ready and 0 < self._waited <= batch[-1][0] and q.empty():
                # a caller that waited for this commit is now on with its action (a decision's
                # command runs): make the signing key for the checkpoint at close meanwhile.
                # Not earlier: a decision queued behind that import would wait for it. Nor
                # before the caller has the interpreter again: it would wait for the import's
                # first switch interval (5 ms) to run its command.
                signer_ready = True
                self._resumed.wait(0.05)
                self._writer.prepare_signing()
                resume = getattr(self._sink, "resume", None)
                if resume is not None:  # the forwarder may start now too (its imports, the
                    resume()  # connection) instead of at close
            if self._sink is not None:
                try:  # export problems never touch the journal or the agent
                    for (_, ev), seq in zip(batch, seqs, strict=True):
                        self._sink.offer(_with_seq(ev, seq))
                    self._export_checkpoints()
                except Exception:
                    pass

    def _export_checkpoints(self) -> None:
        """Ship signed checkpoints off the machine too, so a local rewrite of the whole journal
        (signing key included) still disagrees with what the collector holds."""
        signed, self._writer.signed = self._writer.signed, []
        if self._sink is None:
            return
        for cp in signed:
            ev = self._make_event("agent.journal.checkpoint", cp.attributes(), None, None, None)
            self._sink.offer(ev)

    def _fail(self, exc: BaseException) -> None:
        err = CorralError(
            "telemetry", f"journal {self.journal_path} cannot be written ({exc}); "
            "no further actions will be approved",
            hint="free disk space or fix the journal's permissions, then start a new session")
        with self._lock:
            if self._failure is None:
                self._failure = err
        with self._cond:
            self._cond.notify_all()

    def _record_drop(self, dropped: int, reason: str, exporter: str) -> None:
        """Called by the exporter thread: drops are themselves journaled (not blocking)."""
        if self._failure is not None:
            return
        body = TelemetryDrop(dropped=dropped, reason=reason, exporter=exporter)
        try:
            if not self._closed:
                self.emit_event(body)
            elif not self._thread.is_alive():  # closing: the writer thread is gone
                self._writer.append([self._make_event(body.NAME, body.attributes(), None,
                                                      None, None)])
        except (CorralError, sqlite3.Error):
            pass


def _with_seq(ev: Event, seq: int) -> Event:
    return ev.replace(seq=seq)


def who_stamps(home: Path) -> dict[str, str]:
    """The signed-in user and the enrolled device, stamped on every event of a session (two
    small JSON records; nothing when the machine is neither enrolled nor signed in)."""
    out: dict[str, str] = {}
    fleet = home / "fleet"  # corral.config.enrolment.fleet_dir: its module (dataclasses, json)
    if not (fleet / "identity.json").exists() and not (fleet / "enrolment.json").exists():
        return out  # is imported only when there is something to read (every corral exec)
    from corral.config.enrolment import read_enrolment, read_identity

    try:
        ident = read_identity(home)
        enr = read_enrolment(home)
    except CorralError:
        return out
    if ident is not None:
        out["corral.user.id"] = ident.display
        out["corral.user.issuer"] = ident.issuer
    if enr is not None:
        out["corral.device.id"] = enr.device_id
    return out


def _user() -> str:
    """``getpass.getuser()`` without importing getpass (and termios) on every ``corral exec``."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):  # getpass's order
        user = os.environ.get(name)
        if user:
            return user
    try:
        import pwd

        return pwd.getpwuid(os.getuid())[0]
    except (KeyError, OSError):
        return str(os.getuid())
