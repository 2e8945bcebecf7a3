"""The exec boundary: command rules and approvals for every program an agent starts under
``corral run``, whether or not it has hooks (``rules.exec_boundary``).

The sandbox's init hands the supervisor a seccomp listener for ``execve``/``execveat``
(``corral.sandbox.execnotify``) over a private unix socket; this module serves it:

- ``top``: the programs the agent process starts itself (its tool calls) are decided; ``bash
  -lc SCRIPT`` is decided as the script (the rules analyse it), and what those programs start
  runs without a question. Execs by the agent's own processes (its launcher, ``env node``, its
  native binary) are the agent starting, not tool calls.
- ``all``: every exec in the tree is decided.

A decision is ``rules.decide`` with the session pipeline's policy: ``allow`` continues at once
(an ``agent.exec`` event, committed in order without holding the exec); anything else goes
through the same ``Pipeline.decide`` as a hook or ``corral exec`` (forbidden, reviewer, grants,
the terminal, ``corral approve``) in a worker thread while the exec waits in the kernel. A
refused exec fails with EACCES, its reason is written to the command's own stderr and it is in
the journal. A hook's decision is remembered for the exec that follows it, so nothing is asked
twice.

The kernel's notification id is checked (``still_waiting``) after reading the exec's memory and
before every answer. The read itself races with the process (``execnotify``'s note): the
sandbox stays the security boundary, this is the rules' view of what runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import select
import shlex
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corral.sandbox import execnotify as en
from corral.supervisor.execwrappers import decision_argv, same_command, script_index
from corral.types import RuleDecision

MODES = ("off", "top", "all")
UNAVAILABLE = ("refuse", "warn")
WORKERS = 4  # decisions that may wait (prompts) are served by this many threads
HOOK_MEMORY_SECONDS = 120.0
_MEMO = 4096
RECORD_SECONDS = 0.25  # allowed execs are journaled in batches this often
REFUSED_SCRIPT = b"exit 126"  # what a refused shell tool call runs instead (exit 126 as EACCES)


class ExecBoundary:
    """Serve one session's exec listener. ``start()`` binds ``socket_path`` (0600) before the
    sandbox starts; the init connects once and passes the listener; ``close()`` stops it."""

    def __init__(self, pipeline: Any, mode: str, socket_path: Path,
                 agent_names: Sequence[str] = ()) -> None:
        """``agent_names``: the program names of a known agent's own binaries (Codex's native
        ``codex``), which its launcher starts; empty for any other program."""
        if mode not in ("top", "all"):
            raise ValueError(f"exec boundary mode {mode!r}")
        self.pipeline = pipeline
        self.telemetry = pipeline.telemetry
        self.mode = mode
        self.socket_path = socket_path
        self.agent_names = frozenset(agent_names)
        self._root: int | None = None  # the agent's first process (what corral started)
        self.listener: int | None = None
        self.connected = threading.Event()
        self.problem: str | None = None  # why the listener never arrived or the loop stopped
        self.counts = {"allowed": 0, "refused": 0, "asked": 0, "agent": 0, "unread": 0}
        # the agent's own processes: pid -> a pidfd (readable once it exits: no pid reuse)
        self._agents: dict[int, int] = {}
        # allowed execs (pid, path, argv, by, reason, rule), journaled by the recorder
        self._records: deque[tuple[int, str, tuple[str, ...], str, str, str | None]] = deque()
        self._journal_failed: str | None = None
        from corral.rules import decide, hidden_env

        self._decide = decide
        self._memo: OrderedDict[tuple[int, int], tuple[tuple[str, ...], bool, str]] = \
            OrderedDict()
        self._memo_pids: dict[int, int] = {}  # pid -> its entries in the memo
        # (path, argv, cwd, environment read) -> (argv decided, by, reason, rule) of execs the
        # rules allowed, valid while the policy is as ``_cache_stamp`` says
        self._cache: dict[tuple[Any, ...], tuple[tuple[str, ...], str, str, str | None]] = {}
        self._cache_stamp: tuple[Any, ...] = ()
        self._env = en.EnvFilter(frozenset(x.encode() for x in hidden_env.NAMES),
                                 tuple(x.encode() for x in hidden_env.PREFIXES))
        self._hooks: list[tuple[float, tuple[str, ...], str, bool, str]] = []
        self._lock = threading.Lock()
        # Questions asked at corral's own terminal are asked one at a time (the queue and the
        # reviewer take several at once)
        from corral.supervisor.pipeline import no_terminal

        interactive = getattr(pipeline, "terminal", None) not in (None, no_terminal)
        self._terminal: Any = threading.Lock() if interactive else contextlib.nullcontext()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._work: queue.Queue[tuple[en.Notification, en.ExecRequest, tuple[str, ...],
                                      tuple[int, int], dict[str, str] | None] | None] = \
            queue.Queue()
        self._baseline: frozenset[bytes] = frozenset()  # the agent's environment at start
        self._times: list[int] = []  # ns from receiving an exec to answering it (or queuing)
        self._waiting: dict[int, tuple[str, ...]] = {}  # notification id -> argv being asked
        self._threads: list[threading.Thread] = []
        self._server: socket.socket | None = None
        self._conn: socket.socket | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            srv.bind(str(self.socket_path))
        finally:
            os.umask(old)
        srv.listen(1)
        self._server = srv
        self._spawn(self._serve, "corral-exec-boundary")
        self._spawn(self._recorder, "corral-exec-record")
        for i in range(WORKERS):
            self._spawn(self._worker, f"corral-exec-decide-{i}")

    def _spawn(self, target: Any, name: str) -> None:
        # daemon: a question left waiting (nobody answered yet) never holds corral's exit
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def close(self) -> None:
        """Stop serving: questions still waiting for this session are cancelled, the listener
        and the socket closed (any exec still waiting then fails)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._cancel_questions()
        for _ in range(WORKERS):
            self._work.put(None)
        for t in self._threads:
            t.join(timeout=2)
        self._summary()
        for s in (self._conn, self._server):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()
        with contextlib.suppress(OSError):
            self.socket_path.unlink()
        with self._lock:
            fd, self.listener = self.listener, None
        for f in (fd, self._wake_r, self._wake_w, *self._agents.values()):
            if f is not None:
                with contextlib.suppress(OSError):
                    os.close(f)

    def _summary(self) -> None:
        """One ``agent.exec.summary`` event: how many execs, how they went, and the median and
        p99 time the supervisor took to answer one (or hand it to a worker)."""
        if not self._times:
            return
        times = sorted(self._times)
        attrs: dict[str, Any] = {
            "agent.exec.mode": self.mode, "agent.exec.handled": len(times),
            "agent.exec.median_us": round(times[len(times) // 2] / 1000, 1),
            "agent.exec.p99_us": round(times[min(len(times) - 1, len(times) * 99 // 100)]
                                       / 1000, 1)}
        attrs.update({f"agent.exec.{k}": v for k, v in self.counts.items()})
        with contextlib.suppress(Exception):
            self.telemetry.emit("agent.exec.summary", attrs)

    def _cancel_questions(self, argv: tuple[str, ...] | None = None) -> None:
        """Questions of this session in the `corral approve` queue that nobody needs any more
        (the exec is gone, or the session ends): closed, so the waiting decision returns."""
        from corral.approvals.queue import PendingQueue

        with contextlib.suppress(Exception):
            PendingQueue(self.pipeline.grants).cancel(self.telemetry.session_id, argv)

    # -- the listener -----------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._server is not None
        try:
            if not self._receive_listener():
                return
            self._loop()
        except Exception as exc:  # the boundary must say why it stopped, never just vanish
            self.problem = f"the exec boundary stopped: {exc}"
            with contextlib.suppress(Exception):
                self.telemetry.emit("agent.exec.boundary", {
                    "agent.exec.mode": self.mode, "agent.exec.problem": self.problem})

    def _receive_listener(self) -> bool:
        assert self._server is not None
        srv = self._server
        while not self._stop.is_set():
            ready = select.select([srv.fileno(), self._wake_r], [], [])[0]
            if self._wake_r in ready:
                return False
            conn, _ = srv.accept()
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            uid = int.from_bytes(creds[4:8], "little")
            if uid != os.getuid() or self._conn is not None:
                conn.close()
                continue
            conn.settimeout(10)
            note, fd = en.recv_listener(conn)
            if fd is None or note != en.HELLO or not en.is_listener(fd):
                if fd is not None:
                    os.close(fd)
                conn.close()
                self.problem = "the sandbox's init sent no seccomp listener"
                continue
            self._conn = conn
            with self._lock:
                self.listener = fd
            srv.close()  # one listener per session: nobody else may connect
            self._server = None
            conn.sendall(b"ok\n")
            self.connected.set()
            return True
        return False

    def _loop(self) -> None:
        fd = self.listener
        assert fd is not None
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        last_sweep = time.monotonic()
        while not self._stop.is_set():
            events = poller.poll(1000)
            for f, ev in events:
                if f == self._wake_r:
                    return
                if ev & select.POLLIN:
                    n = en.receive(fd)
                    if n is not None:
                        t0 = time.perf_counter_ns()
                        self._handle(fd, n)
                        if len(self._times) < 100_000:
                            self._times.append(time.perf_counter_ns() - t0)
                elif ev & (select.POLLHUP | select.POLLERR):
                    return  # no process of the sandbox is left
            if self._waiting and time.monotonic() - last_sweep > 0.5:
                last_sweep = time.monotonic()
                self._sweep(fd)

    def _sweep(self, fd: int) -> None:
        """A process killed while its exec waits for approval: its question is cancelled."""
        with self._lock:
            gone = [(i, a) for i, a in self._waiting.items() if not en.still_waiting(fd, i)]
            for i, _ in gone:
                self._waiting.pop(i, None)
        for _, argv in gone:
            self._cancel_questions(argv)

    # -- one exec ---------------------------------------------------------------------------

    def _answer(self, fd: int, n: en.Notification, allow: bool) -> None:
        if en.still_waiting(fd, n.id):
            en.answer(fd, n.id, 0 if allow else errno.EACCES)

    def _is_agent(self, pid: int) -> bool:
        pidfd = self._agents.get(pid)
        if pidfd is None:
            return False
        if select.select([pidfd], [], [], 0)[0]:  # it exited: the pid may be someone's now
            del self._agents[pid]
            os.close(pidfd)
            return False
        return True

    def _add_agent(self, pid: int) -> None:
        """The process waiting in exec ``pid`` (a thread of it) is one of the agent's own."""
        try:
            tgid = en.proc_identity(pid)[0]
            if tgid not in self._agents:
                self._agents[tgid] = os.pidfd_open(tgid)
        except OSError:
            pass

    def _stamp(self) -> tuple[Any, ...]:
        """What the allowed-exec cache depends on besides the exec: the policy and its state."""
        pipe = self.pipeline
        p = pipe.policy
        return (id(p), p.generation, len(p.load_errors), len(p.host_executables),
                pipe.approval_policy)

    def _first(self, n: en.Notification) -> None:
        """The first exec is the agent itself, started by corral: its process is the agent's,
        its environment what "differs" is judged against."""
        self._add_agent(n.pid)
        self._root = next(iter(self._agents), 0)  # 0: it could not be told (it is gone)
        with contextlib.suppress(OSError):
            self._baseline = frozenset(en.read_exec(n, env=True).env_raw)

    def _launches(self, parent: int) -> bool:
        """Whether ``parent`` is the agent's first process still running a launcher (``node``
        with Codex's script), not the agent's own binary: only then is a child named like that
        binary the agent starting, never a tool call of the agent."""
        if parent != self._root or not self._is_agent(parent):
            return False
        try:
            exe = os.readlink(f"/proc/{parent}/exe").rpartition("/")[2]
        except OSError:
            return False
        return exe.removesuffix(".exe") not in self.agent_names  # Claude's is claude.exe

    def _handle(self, fd: int, n: en.Notification) -> None:
        pid = n.pid  # the thread that execs; the memo and the agents are keyed by it
        if self._root is None:  # once: after the agent has gone, nothing else becomes it
            self._first(n)
        if pid in self._agents and self._is_agent(pid):
            self.counts["agent"] += 1
            en.answer(fd, n.id)
            return
        if self._journal_failed is not None:
            self._refuse(fd, n, (), f"corral: telemetry: the journal failed "
                         f"({self._journal_failed}); no further exec is allowed")
            return
        # /proc/PID/stat (parent, start time) only where it is needed: mode top, a program
        # named like the agent's own, a process with a remembered exec, a decision that waits
        stat: tuple[int, int] | None = None
        if self.mode == "top":
            if (stat := self._stat(fd, n)) is None:
                return
            if not self._is_agent(stat[0]):
                self._answer(fd, n, True)  # what a tool call starts runs (mode top)
                return
            seen = self._memo.get((pid, stat[1]))
            if seen is not None and seen[1]:
                # an allowed tool call exec'ing onward (`bash -c 'touch x'` becomes touch
                # in the same process): part of that call, like its children
                self._answer(fd, n, True)
                return
        try:
            req = en.read_exec(n, env_filter=self._env)
        except OSError as exc:
            if not en.still_waiting(fd, n.id):
                return
            self.counts["unread"] += 1
            self._refuse(fd, n, (), f"corral: rules: an exec was refused: its command could "
                         f"not be read ({exc.strerror or exc})")
            return
        if not en.still_waiting(fd, n.id):
            return  # the memory read may have been another process's: nothing to answer
        if req.path.rpartition("/")[2] in self.agent_names:
            if stat is None and (stat := self._stat(fd, n)) is None:
                return
            if self._launches(stat[0]):
                self._add_agent(pid)  # the agent's own program (Codex's native binary)
                self.counts["agent"] += 1
                en.answer(fd, n.id)
                return
        if pid in self._memo_pids:
            if stat is None and (stat := self._stat(fd, n)) is None:
                return
            seen = self._memo.get((pid, stat[1]))
            if seen is not None and seen[0] == req.argv:  # the same exec retried along PATH
                en.answer(fd, n.id, 0 if seen[1] else errno.EACCES)
                return
        key = (req.path, req.argv, req.cwd, tuple(req.env_raw))
        if not self._hooks:  # a hook's decision, when there is one, is taken first
            stamp = self._stamp()
            if stamp != self._cache_stamp:
                self._cache.clear()
                self._cache_stamp = stamp
            hit = self._cache.get(key)
            if hit is not None:  # the same exec was allowed by the rules: no question
                en.answer(fd, n.id)
                self._allowed(pid, req.path, *hit)
                return
        if not os.path.lexists(f"/proc/{pid}/root{req.path}" if req.path.startswith("/")
                               else f"/proc/{pid}/cwd/{req.path}"):
            en.answer(fd, n.id)  # nothing there: the kernel answers ENOENT (PATH search)
            return
        if stat is None and (stat := self._stat(fd, n)) is None:
            return
        self._decide_exec(fd, n, req, (pid, stat[1]), key)

    def _stat(self, fd: int, n: en.Notification) -> tuple[int, int] | None:
        """(parent, start time) of the waiting process; None (and refused) when it is gone.
        Checked against the notification id afterwards: the pid was still that process's."""
        try:
            stat = en.proc_stat(n.pid)
        except OSError:
            self._answer(fd, n, False)
            return None
        return stat if en.still_waiting(fd, n.id) else None

    def _decide_exec(self, fd: int, n: en.Notification, req: en.ExecRequest,
                     me: tuple[int, int], key: tuple[Any, ...]) -> None:
        decide, pipe = self._decide, self.pipeline

        def setup_allowed(script: str) -> bool:
            return decide(["bash", "-lc", script], pipe.policy, pipe.approval_policy,
                          cwd=req.cwd).decision is RuleDecision.ALLOW

        argv = decision_argv(req.path, req.argv, setup_allowed)
        hooked = self._hook_verdict(argv)
        if hooked is not None:
            allowed, message = hooked
            self._remember(me, req.argv, allowed, message)
            if allowed:
                en.answer(fd, n.id)
                self._allowed(n.pid, req.path, argv, "hook", "decided by the agent's hook")
            else:
                self._refuse(fd, n, req.argv, message, req)
            return
        env = en.environment(req.env_raw, self._baseline) or None
        d = decide(list(argv), pipe.policy, pipe.approval_policy, cwd=req.cwd, env=env)
        if d.decision is RuleDecision.ALLOW:
            if self.mode == "top":  # its onward execs are part of it
                self._remember(me, req.argv, True, "")
            source = d.matches[0].source if d.matches else None
            if len(self._cache) >= _MEMO:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (argv, "rule", d.reason, source)
            en.answer(fd, n.id)
            self._allowed(n.pid, req.path, argv, "rule", d.reason, source)
            return
        with self._lock:
            self._waiting[n.id] = argv
        self._work.put((n, req, argv, me, env))

    def _worker(self) -> None:
        while (item := self._work.get()) is not None:
            n, req, argv, me, env = item
            fd = self.listener
            try:
                if fd is None or self._stop.is_set():
                    continue
                self.counts["asked"] += 1
                with self._terminal:  # one question at a time on a person's terminal
                    gate = self.pipeline.decide(argv, Path(req.cwd), tool="exec", env=env)
                with self._lock:
                    still = self._waiting.pop(n.id, None) is not None
                if not still or self.listener is None:
                    continue  # the process is gone (killed while it waited)
                self._remember(me, req.argv, gate.allowed, gate.message)
                if gate.allowed:
                    self.counts["allowed"] += 1
                    self._answer(fd, n, True)
                else:
                    self._refuse(fd, n, req.argv, gate.message, req)
            except Exception as exc:  # fail closed, and say why
                with self._lock:
                    self._waiting.pop(n.id, None)
                if fd is not None and self.listener is not None:
                    self._refuse(fd, n, req.argv, f"corral: rules: `{shlex.join(argv)}` was "
                                 f"refused: the decision failed ({exc})", req)

    def _remember(self, me: tuple[int, int], argv: tuple[str, ...], allowed: bool,
                  message: str) -> None:
        with self._lock:
            if me not in self._memo:
                self._memo_pids[me[0]] = self._memo_pids.get(me[0], 0) + 1
            self._memo[me] = (argv, allowed, message)
            self._memo.move_to_end(me)
            while len(self._memo) > _MEMO:
                old, _ = self._memo.popitem(last=False)
                if self._memo_pids[old[0]] <= 1:
                    del self._memo_pids[old[0]]
                else:
                    self._memo_pids[old[0]] -= 1

    def _refuse(self, fd: int, n: en.Notification, argv: tuple[str, ...], message: str,
                req: en.ExecRequest | None = None) -> None:
        """The reason on the command's own stderr (fd 2 of the process whose exec it is: what
        the agent reads), then EACCES. A shell started with ``-c SCRIPT`` instead runs ``exit
        126`` (its script replaced in place before it starts, nothing of it runs): an agent
        that starts the shell itself (Codex) drops a failed spawn's stderr, but reads a shell
        that ran."""
        self.counts["refused"] += 1
        if not en.still_waiting(fd, n.id):
            return
        en.write_to_stderr(n.pid, message.rstrip("\n") + "\n")
        i = script_index(req.argv) if req is not None else None
        if req is not None and i is not None and i < len(req.addrs):
            with contextlib.suppress(OSError):
                if en.rewrite_arg(n.pid, req.addrs[i], req.raw[i], REFUSED_SCRIPT) and \
                        en.still_waiting(fd, n.id):
                    en.answer(fd, n.id)
                    return
        en.answer(fd, n.id, errno.EACCES)

    def _allowed(self, pid: int, path: str, argv: tuple[str, ...], by: str, reason: str,
                 source: str | None = None) -> None:
        """Journaled by the recorder thread in batches, not waited for: an allowed exec is not
        held for the disk (a failed journal refuses every exec from then on)."""
        self.counts["allowed"] += 1
        self._records.append((pid, path, argv, by, reason, source))

    def _recorder(self) -> None:
        while not self._stop.wait(RECORD_SECONDS):
            self._flush_records()
        self._flush_records()

    def _flush_records(self) -> None:
        records = self._records
        while records and self._journal_failed is None:
            pid, path, argv, by, reason, source = records.popleft()
            attrs: dict[str, Any] = {
                "process.command_line": shlex.join(argv), "process.executable.path": path,
                "process.pid": pid, "agent.exec.mode": self.mode, "agent.decision":
                "auto_approved", "agent.decision.source": by}
            if source:
                attrs["agent.decision.rule"] = source
            if reason:
                attrs["agent.decision.rationale"] = reason[:500]
            try:
                self.telemetry.emit("agent.exec", attrs)
            except Exception as exc:  # the journal failed: fail closed from now on
                self._journal_failed = str(exc)
                self.problem = f"the exec boundary cannot journal: {exc}"
                return

    # -- hooks ------------------------------------------------------------------------------

    def hook_decided(self, argv: Sequence[str], cwd: Path, gate: Any) -> None:
        """The agent's hook asked about ``argv`` and corral decided ``gate``: the exec that
        follows is answered the same way instead of being asked about again."""
        now = time.monotonic()
        with self._lock:
            self._hooks = [h for h in self._hooks if h[0] > now][-256:]
            self._hooks.append((now + HOOK_MEMORY_SECONDS, tuple(argv), str(cwd),
                                bool(gate.allowed), str(gate.message or "")))

    def _hook_verdict(self, argv: tuple[str, ...]) -> tuple[bool, str] | None:
        now = time.monotonic()
        with self._lock:
            for i, (expiry, hooked, _, allowed, message) in enumerate(self._hooks):
                if expiry > now and same_command(hooked, argv):
                    del self._hooks[i]  # one hook decision covers one exec
                    return allowed, message
        return None


def boundary_mode(cfg: Any) -> tuple[str, str]:
    """(``rules.exec_boundary``, ``rules.exec_boundary_unavailable``) as configured."""
    mode = str(cfg.get("rules.exec_boundary", "top") or "top")
    unavailable = str(cfg.get("rules.exec_boundary_unavailable", "refuse") or "refuse")
    return mode, unavailable


def open_boundary(cfg: Any, session: Any, agent_names: Sequence[str] = ()
                  ) -> ExecBoundary | None:
    """The exec boundary for a ``corral run`` session, started (or None when configured off,
    or unavailable with ``rules.exec_boundary_unavailable = "warn"``: said on the terminal and
    in the journal). Unavailable with ``"refuse"``: the run is refused."""
    import sys

    from corral.errors import CorralError

    mode, unavailable = boundary_mode(cfg)
    attrs: dict[str, Any] = {"agent.exec.mode": mode}
    if mode == "off":
        session.telemetry.emit("agent.exec.boundary", attrs, wait=True)
        return None
    problem = en.kernel_support()
    if problem is not None:
        if unavailable != "warn":
            raise CorralError(
                "rules", f"the exec boundary (rules.exec_boundary = \"{mode}\") cannot be "
                f"enforced here: {problem}; the run is refused",
                'run `corral doctor`; or accept running without it: '
                'rules.exec_boundary_unavailable = "warn"')
        line = (f"corral: rules: warning: the exec boundary (rules.exec_boundary = \"{mode}\") "
                f"cannot be enforced here: {problem}; running WITHOUT it (rules."
                "exec_boundary_unavailable = \"warn\"): only hooks show commands to the rules")
        print(line, file=sys.stderr, flush=True)
        session.telemetry.emit("agent.exec.boundary", {
            "agent.exec.mode": "off", "agent.exec.problem": problem}, wait=True)
        return None
    boundary = ExecBoundary(session.pipeline, mode, session.rundir / "x.sock", agent_names)
    boundary.start()
    if session.api is not None:
        session.api.on_shell_decision = boundary.hook_decided
    session.telemetry.emit("agent.exec.boundary", attrs, wait=True)
    return boundary
