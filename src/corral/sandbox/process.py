"""The sandboxed process as the caller holds it, and waiting for it.

Whichever way a run's bwrap was started, its end owes the run the same duties (``AfterExit``):
remove its placeholders, let its cgroup go, end what a killed bwrap left
(``corral.sandbox.leftovers``). ``corral.sandbox.popen.SandboxedProcess`` is the ``Popen``
every caller that wants pipes or a long-lived process gets; ``DirectProcess`` is a bwrap
started with ``os.posix_spawn`` for a process that runs one command and ends (``corral
sandbox``): without ``subprocess`` and the ``threading``, ``selectors`` and ``contextlib`` it
brings (~2 ms of each sandboxed command here, issue 20 item 3), with ``Popen``'s guarantees
to the child kept (below). ``wait_interruptible`` and the stderr tee serve ``Sandbox.run``
for both.
"""

from __future__ import annotations

import os
import signal

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from typing import IO, Any, Protocol

    class Waitable(Protocol):
        """What the waits and the tee need of either process type."""

        stderr: IO[bytes] | None

        def wait(self) -> int: ...

        def send_signal(self, sig: int) -> None: ...


def wait_interruptible(proc: Waitable) -> int:
    """Ctrl-C reaches bwrap too (same process group) and ends the sandbox; wait for that
    instead of dying with a traceback, and report 130 like a shell would."""
    try:
        return proc.wait()
    except KeyboardInterrupt:
        _pass_on_interrupt(proc)
        proc.wait()
        return 130


def _pass_on_interrupt(proc: Waitable) -> None:
    """Send bwrap the Ctrl-C this process got (it may be gone already)."""
    try:
        proc.send_signal(signal.SIGINT)
    except OSError:
        pass


def tee_then_wait(proc: Waitable, sink: IO[str], lines: list[str]) -> int:
    """``tee`` on this thread until the sandbox's stderr closes, then reap; Ctrl-C is passed
    on to bwrap as in ``wait_interruptible`` (what was kept before it is not scanned)."""
    assert proc.stderr is not None
    interrupted = False
    while True:
        try:
            tee(proc.stderr, sink, lines)
            break
        except KeyboardInterrupt:
            interrupted = True
            _pass_on_interrupt(proc)
    rc = wait_interruptible(proc)
    return 130 if interrupted else rc


def tee(src: IO[bytes], sink: IO[str], lines: list[str]) -> None:
    """Pass stderr on as it arrives (no line buffering: progress bars stay live) and keep the
    last ~1 MB for the violation scan."""
    out = getattr(sink, "buffer", None)
    fd = src.fileno()
    kept: list[bytes] = []
    size = 0
    while chunk := os.read(fd, 65536):
        if out is not None:
            out.write(chunk)
            out.flush()
        else:
            sink.write(chunk.decode(errors="replace"))
            sink.flush()
        kept.append(chunk)
        size += len(chunk)
        while size > 1_000_000 and len(kept) > 1:
            size -= len(kept.pop(0))
    src.close()
    lines.append(b"".join(kept).decode(errors="replace"))


class AfterExit:
    """A run's duties once its process has been reaped, mixed into both process types; the
    launcher fills the ``corral_*`` fields. ``corral_fresh_git``: roots without a ``.git``
    at launch (see ``audit_new_repo``)."""

    returncode: Any  # None until reaped; typed as loosely as Popen's, which this mixes into
    _corral_cleanup: Callable[[], None] | None = None
    corral_fresh_git: list[Path] = []  # noqa: RUF012 (replaced per instance)
    corral_cgroup: str | None = None  # this run's pids cgroup (``corral.sandbox.pidcap``)
    corral_run_id = ""  # the marker on this run's bwrap (``corral.sandbox.leftovers``)
    corral_run_note: str | None = None  # its note, for a corral killed with it

    def _after_exit(self) -> None:
        run_id, self.corral_run_id = self.corral_run_id, ""
        note, self.corral_run_note = self.corral_run_note, None
        if run_id and self.corral_cgroup is None and (self.returncode or 0) < 0:
            # bwrap was killed: what its --die-with-parent may have missed is found by its
            # marker (with a cgroup, the cgroup's cleanup ends it)
            from corral.sandbox.leftovers import kill_marked

            kill_marked(run_id)
        if note is not None:
            from corral.sandbox.leftovers import unregister

            unregister(note)
        fn, self._corral_cleanup = self._corral_cleanup, None
        if fn is not None:
            fn()


# What Popen's ``restore_signals`` puts back to the default in the child (Python ignores
# SIGPIPE and SIGXFSZ for itself; a command must not inherit that).
RESTORED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ")
                         if hasattr(signal, name))


def inherited_fds(keep: Sequence[int]) -> list[int]:
    """This process's inheritable descriptors other than stdio and ``keep``: what Popen's
    ``close_fds`` closes in its child (an agent calling corral may hold pipes and sockets
    it never meant for the sandbox). Close-on-exec descriptors end at exec anyway."""
    out: list[int] = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2 or fd in keep:
            continue
        try:
            if os.get_inheritable(fd):
                out.append(fd)
        except OSError:
            continue  # the listing's own descriptor, closed by now
    return out


class DirectProcess(AfterExit):
    """A process started with ``os.posix_spawn`` (glibc: vfork and exec), for a caller that
    runs one command, inherits its stdin and stdout and reaps it itself. The child gets what
    ``Popen(args, env=env, pass_fds=pass_fds, stderr=PIPE if capture_stderr else None)``
    would give it: only stdio and ``pass_fds`` (made inheritable here; the caller closes
    them after the spawn) stay open, SIGPIPE and SIGXFSZ are back to their defaults, and an
    exec that fails raises ``OSError`` here. One difference: glibc's posix_spawn leaves its
    two internal signals (32, 33) ignored in the child, and so in the sandboxed command;
    glibc installs its handlers for them when a program first uses them (tested). ``args[0]``
    must be an absolute path: there is no search of PATH (``Popen`` searches the child's
    PATH, ``posix_spawnp`` ours)."""

    def __init__(self, args: list[str], env: dict[str, str], pass_fds: Sequence[int] = (),
                 capture_stderr: bool = False) -> None:
        if not os.path.isabs(args[0]):
            raise ValueError(f"DirectProcess needs an absolute program path, not {args[0]!r}")
        self.args = args
        self.returncode: int | None = None
        self.stderr: IO[bytes] | None = None
        read_end = write_end = -1
        if capture_stderr:
            read_end, write_end = os.pipe()  # both close-on-exec; dup2 gives the child a copy
        actions: list[tuple[Any, ...]] = []
        try:
            for fd in pass_fds:
                os.set_inheritable(fd, True)
            if write_end >= 0:
                actions.append((os.POSIX_SPAWN_DUP2, write_end, 2))
            actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited_fds(pass_fds)]
            self.pid = os.posix_spawn(args[0], args, env, file_actions=actions,
                                      setsigdef=RESTORED_SIGNALS)
        except BaseException:
            if read_end >= 0:
                os.close(read_end)
            raise
        finally:
            if write_end >= 0:
                os.close(write_end)
        if read_end >= 0:
            self.stderr = open(read_end, "rb", buffering=0)  # noqa: SIM115 (closed by tee)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                return None
            self._reaped(status)
        return self.returncode

    def wait(self) -> int:
        """Reap the process (a KeyboardInterrupt meanwhile leaves it unreaped, as ``Popen``
        does); then the run's duties (``AfterExit``)."""
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self._reaped(status)
        assert self.returncode is not None
        return self.returncode

    def _reaped(self, status: int) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        self._after_exit()

    def send_signal(self, sig: int) -> None:
        """Signal the process unless it was reaped (its pid may belong to another by now)."""
        if self.returncode is None:
            os.kill(self.pid, sig)
