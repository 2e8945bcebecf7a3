"""The background forwarder: a thread beside a session's journal writer.

It attaches to ``Telemetry`` as (part of) its event sink: ``offer`` only wakes the thread, which
then forwards from the persisted cursor like ``corral forward`` does. Nothing here can slow or
fail the session: the token is looked up and the connection opened on the thread, errors wait
and retry, and ``close`` gives the last batches a bounded moment before the session ends (whatever is left
goes with the next session or ``corral forward``).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

TYPE_CHECKING = False
if TYPE_CHECKING:
    from corral.forward.forwarder import Forwarder

POLL_SECONDS = 2.0
REFUSED_WAIT = 60.0
CLOSE_SECONDS = 3.0
START_SECONDS = 1.0


class BackgroundForwarder:
    """Forwards ``journal_path`` while the session runs. ``last_error`` says why it is idle."""

    def __init__(self, cfg: Any, home: Path, journal_path: Path) -> None:
        self._cfg, self._home, self._journal = cfg, home, journal_path
        self._wake = threading.Event()
        self._go = threading.Event()  # end the start delay (the session is closing)
        self._stop = threading.Event()
        self._draining = False
        self._drain_deadline = 0.0
        self.last_error: str | None = None
        self.forwarded = 0
        self.last_checkin_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="corral-forward", daemon=True)
        self._thread.start()

    def offer(self, event: object) -> None:
        self._wake.set()

    def resume(self) -> None:
        """End the start delay: the session's caller is on with its action (a decision was
        committed and its command runs), so work beside it no longer holds it up."""
        self._go.set()

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Forward what is left for at most ``timeout`` seconds, then stop."""
        self._drain_deadline = time.monotonic() + timeout
        self._draining = True
        self._go.set()
        self._wake.set()
        self._thread.join(timeout + 0.5)
        self._stop.set()

    def _checkin(self, settings: Any, fwd: Forwarder) -> None:
        from corral.forward.checkin import report, send

        try:  # refresh the cached policy first, so the report says what the next start applies
            from corral.config.enrolment import read_enrolment
            from corral.config.requirements import server_policy

            enr = read_enrolment(self._home)
            if enr is not None:
                server_policy(enr, lambda: settings.token, self._home / "state", [])
        except Exception:  # refused or unreachable: the last good bundle stays cached
            pass
        try:
            send(settings, report(self._home, self._journal, fwd.lag()), timeout=5.0)
        except Exception as exc:  # the fleet view only; forwarding goes on
            self.last_checkin_error = str(exc)
        else:
            self.last_checkin_error = None

    def _run(self) -> None:
        """Forwarding starts ``START_SECONDS`` into the session, once its caller is running an
        action (``resume``), or at its end, whichever comes first. Until then the thread only
        sleeps, so its imports and work do not compete for the interpreter with the session's
        decision (``corral exec`` with a server configured). The records are still acknowledged
        before the session ends; a longer session's go to the server while it runs."""
        tls = _early_tls(self._cfg)
        self._go.wait(START_SECONDS)
        from corral.forward.forwarder import Backoff, Forwarder, Retryable
        from corral.forward.settings import resolve

        try:
            settings = resolve(self._cfg, self._home)
        except Exception as exc:  # no server, no token: idle, and `corral forward` says why
            self.last_error = str(exc)
            return
        early = tls[2] if tls is not None and tls[:2] == (settings.url, settings.ca_file) \
            else None  # made for the server the settings name: else the forwarder makes its own
        fwd = Forwarder(settings, self._journal, home=self._home, tls=early)
        backoff = Backoff()
        checkin_every = _checkin_interval(self._home, settings.url)
        try:
            while not self._stop.is_set():
                self._wake.clear()
                if checkin_every and not self._draining and _checkin_due(self._home,
                                                                         checkin_every):
                    self._checkin(settings, fwd)
                try:
                    recs, cps = fwd.step()
                except Retryable as exc:
                    self.last_error = exc.reason
                    wait = backoff.next(exc.retry_after)
                except Exception as exc:  # refused (token, malformed) or a journal read error
                    self.last_error = str(exc)
                    wait = REFUSED_WAIT
                else:
                    if recs or cps:
                        self.forwarded += recs
                        self.last_error = None
                        backoff.reset()
                        if not self._draining or time.monotonic() < self._drain_deadline:
                            continue
                    wait = POLL_SECONDS
                    if self._draining:
                        return  # caught up (or out of time) at the end of the session
                if self._draining:
                    return  # failing at the end of the session: the journal keeps it
                self._wake.wait(wait)
        finally:
            fwd.close()


def _early_tls(cfg: Any) -> tuple[str, str | None, Any] | None:
    """(server URL, ca_file, their TLS context) for an https server, made as the session
    opens: loading the system trust store (~20 ms) lets go of the interpreter lock, so it
    passes beside the session's decision instead of after it (``corral exec`` with a server
    waits for its records' acknowledgement before it ends). None for http or no server; a
    failure is left to the forwarder, which makes the context again and reports it."""
    from corral.forward.settings import configured_ca_file, configured_url

    try:
        url = configured_url(cfg)
        if url is None or not url.startswith("https://"):
            return None
        from corral.forward.trust import tls_for

        ca_file = configured_ca_file(cfg)
        return url, ca_file, tls_for(url, ca_file)
    except Exception:
        return None


def _checkin_interval(home: Path, url: str) -> float | None:
    """The policy refresh interval when this machine is enrolled with ``url`` (it checks in
    that often); None when it is not."""
    from corral.config.enrolment import read_enrolment

    try:
        enr = read_enrolment(home)
    except Exception:
        return None
    return max(1.0, enr.refresh_seconds) if enr is not None and enr.server == url else None


def _checkin_due(home: Path, every: float) -> bool:
    """At most one check-in per interval from all of this machine's sessions: the time of the
    last one is the mtime of ``state/fleet-checkin`` (touched before sending, so two sessions
    starting together do not both send)."""
    import os

    mark = home / "state" / "fleet-checkin"
    try:
        if time.time() - mark.stat().st_mtime < every:
            return False
    except FileNotFoundError:
        pass
    except OSError:
        return False
    try:
        mark.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        mark.touch()
        os.utime(mark)
    except OSError:
        return False
    return True


class ForwardingSink:
    """The session's sink: the best-effort exporter (if any) and the background forwarder."""

    def __init__(self, first: Any | None, forwarder: BackgroundForwarder) -> None:
        self._first = first
        self.forwarder = forwarder

    @property
    def on_drop(self) -> Any:
        return getattr(self._first, "on_drop", None)

    @on_drop.setter
    def on_drop(self, value: Any) -> None:
        if self._first is not None and hasattr(self._first, "on_drop"):
            self._first.on_drop = value

    def offer(self, event: Any) -> None:
        if self._first is not None:
            self._first.offer(event)
        self.forwarder.offer(event)

    def resume(self) -> None:
        self.forwarder.resume()

    def close(self, timeout: float = 5.0) -> None:
        try:
            if self._first is not None:
                self._first.close(timeout)
        finally:
            self.forwarder.close(min(timeout, CLOSE_SECONDS))


def with_forwarder(sink: Any | None, cfg: Any, home: Path, journal_path: Path) -> ForwardingSink:
    """``sink`` plus a background forwarder of ``journal_path`` (for ``Telemetry.open``)."""
    return ForwardingSink(sink, BackgroundForwarder(cfg, home, journal_path))
