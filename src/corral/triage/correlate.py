"""Deterministic correlation: which session and tool call (if any) explain an alert.

No model is involved. Keys, strongest first: the stamp corral puts on every process it starts
(``CORRAL_SESSION_ID``, ``CORRAL_CALL_ID``, ``TRACEPARENT``) in the alerted process's
environment or its parents'; pid lineage (the supervisor's pid, a network request's pid);
normalised command lines; the file path against patches and command lines; the destination
against network decisions; host, user and time window. The stamp is alert data, so it could
be forged: it only counts when the journal has that session.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from corral.telemetry.redact import redact
from corral.telemetry.schema import Event
from corral.telemetry.stamp import parse_traceparent, span_id, trace_id
from corral.triage.alerts import Alert, Proc
from corral.triage.source import EventSource

STRONG, MEDIUM, WEAK = 3, 2, 1
_WRAPPERS = frozenset(("env", "sudo", "command", "exec", "nohup"))
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
ORIGIN = "corral.origin"


@dataclass(frozen=True)
class Link:
    """One reason an event relates to the alert."""

    event: Event
    key: str  # marker | traceparent | pid | command | path | destination | window
    strength: int
    why: str

    @property
    def trusted(self) -> bool:
        """corral's own record (pipeline origin), not something the agent reported."""
        return self.event.attributes.get(ORIGIN, "pipeline") == "pipeline"


@dataclass
class Correlation:
    session_id: str | None = None
    call_ids: list[str] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    session_events: list[Event] = field(default_factory=list)
    marker_problem: str | None = None  # a stamp names what the journal does not have
    window_cut: bool = False
    first_seq: int | None = None  # where the alert window starts (for prior behaviour)

    @property
    def strength(self) -> int:
        return max((lk.strength for lk in self.links if lk.trusted), default=0)

    @property
    def claimed_strength(self) -> int:
        return max((lk.strength for lk in self.links if not lk.trusted), default=0)


def normalise(cmd: str) -> str:
    """Command line in one spelling: words split as a shell would, the program by basename,
    ``env``/``sudo`` wrappers and VAR=value prefixes dropped, single spaces."""
    try:
        words = shlex.split(cmd)
    except ValueError:
        words = cmd.split()
    i, after_wrapper = 0, False
    while i < len(words):
        w = words[i]
        if w in _WRAPPERS or _ASSIGN.match(w) or (after_wrapper and w.startswith("-")):
            after_wrapper = after_wrapper or w in _WRAPPERS
            i += 1
            continue
        break
    words = words[i:]
    if words:
        words[0] = PurePosixPath(words[0]).name or words[0]
    return " ".join(" ".join(w.split()) for w in words)


def _contains(outer: str, inner: str) -> bool:
    return bool(inner) and f" {inner} " in f" {outer} "


def markers(proc: Proc | None) -> dict[str, str]:
    """The stamp variables of the process or its nearest stamped parent."""
    depth = 0
    while proc is not None and depth < 16:
        found = {k: v for k, v in proc.env.items()
                 if k in ("CORRAL_SESSION_ID", "CORRAL_CALL_ID", "TRACEPARENT")}
        if found:
            return found
        proc, depth = proc.parent, depth + 1
    return {}


def _lineage(proc: Proc | None) -> list[Proc]:
    out: list[Proc] = []
    while proc is not None and len(out) < 16:
        out.append(proc)
        proc = proc.parent
    return out


def _same_host(a: str, b: str) -> bool:
    return a.lower().split(".")[0] == b.lower().split(".")[0]


def _path_in(path: str, cmdline: str, cwd: str | None = None) -> bool:
    """The path (or ~/relative spelling of it) is a word of the command line. A relative word
    counts only for a path inside the session's working directory, when that is known."""
    words = normalise(cmdline).split(" ")
    inside = cwd is None or (path + "/").startswith(cwd.rstrip("/") + "/")
    name = PurePosixPath(path).name
    for w in words:
        w = w.rstrip(";&|)")
        if w == path or (w.startswith("~/") and path.endswith(w[1:])):
            return True
        if w.startswith("$HOME/") and path.endswith(w[5:]):
            return True
        if not inside or w.startswith(("/", "~", "$")):
            continue
        if "/" in w and len(w) > 3 and path.endswith("/" + w.lstrip("./")):
            return True
        if w == name and len(name) > 4 and "." in name:
            return True
    return False


def links_for(alert: Alert, events: list[Event]) -> list[Link]:
    """Every content link between the alert and these events (one session's, usually)."""
    out: list[Link] = []
    lineage = _lineage(alert.process)
    cmds = [(p is alert.process, normalise(redact(p.command_line)))
            for p in lineage if p.command_line]
    pids = {p.pid for p in lineage if p.pid} | {p.ppid for p in lineage if p.ppid}
    path = alert.file.path if alert.file else None
    dests = {d.lower() for d in ((alert.network.host, alert.network.ip) if alert.network
                                  else ()) if d}
    start = next((ev for ev in events if ev.name == "agent.session.start"), None)
    cwd = start.attributes.get("process.working_directory") if start else None
    cwd = cwd if isinstance(cwd, str) and cwd.startswith("/") else None
    for ev in events:
        a = ev.attributes
        cl = a.get("process.command_line")
        if isinstance(cl, str) and ev.name in ("agent.tool.decision", "agent.tool.result"):
            tool = normalise(cl)
            for own, c in cmds:
                if c == tool:
                    out.append(Link(ev, "command", STRONG if own else MEDIUM,
                                    "same command line" if own else
                                    "the alerted process's parent ran this command"))
                    break
                if _contains(tool, c) or (own and len(tool) > 3 and _contains(c, tool)):
                    out.append(Link(ev, "command", MEDIUM,
                                    "the command line contains the alerted one"
                                    if _contains(tool, c) else
                                    "the alerted command line contains this one"))
                    break
            if path and _path_in(path, cl, cwd):
                out.append(Link(ev, "path", MEDIUM, f"the command names {path}"))
        files = a.get("agent.patch.files")
        if path and isinstance(files, tuple) and any(
                f == path or path.endswith("/" + f.lstrip("./")) for f in files):
            out.append(Link(ev, "path", MEDIUM, f"a patch touched {path}"))
        pid = a.get("process.pid")
        if isinstance(pid, int) and pid in pids:
            if ev.name == "agent.session.start":
                out.append(Link(ev, "pid", STRONG, "the alerted process descends from this "
                                                   "session's supervisor"))
            elif ev.name == "agent.network.decision":
                out.append(Link(ev, "pid", STRONG, "this network request came from the "
                                                   "alerted process"))
        if ev.name == "agent.network.decision" and dests:
            host = str(a.get("server.address", "")).lower()
            if host in dests:
                port = a.get("server.port")  # EDRs see ports differently: host decides
                out.append(Link(ev, "destination", MEDIUM,
                                f"network decision for {host}"
                                f"{f':{port}' if port else ''}: "
                                f"{a.get('network.policy.decision')}"))
    return out


def correlate(alert: Alert, source: EventSource, *, window_s: float = 600.0) -> Correlation:
    """Find the session (and calls) behind the alert; an empty result means no agent."""
    res = Correlation()
    window: list[Event] = []
    if alert.time_unix_nano is not None:
        span = int(window_s * 1e9)
        window, res.window_cut = source.window(alert.time_unix_nano - span,
                                               alert.time_unix_nano + span)
        if window:
            res.first_seq = window[0].seq
    stamp = markers(alert.process)
    marked: str | None = None
    marked_call: str | None = None
    if "CORRAL_SESSION_ID" in stamp:
        marked = stamp["CORRAL_SESSION_ID"]
    elif "CORRAL_CALL_ID" in stamp and "TRACEPARENT" not in stamp:
        res.marker_problem = ("the alerted process carries a corral call id without the "
                              "session corral always stamps with it")
    tp = parse_traceparent(stamp["TRACEPARENT"]) if "TRACEPARENT" in stamp else None
    if "TRACEPARENT" in stamp and tp is None:
        res.marker_problem = "the TRACEPARENT in the alerted process is malformed"
    if tp is not None and marked is None:
        for sid in dict.fromkeys(ev.session_id for ev in window):
            if trace_id(sid).hex() == tp[0]:
                marked = sid
                break
        else:
            res.marker_problem = ("the alerted process carries a corral TRACEPARENT whose "
                                  "session is not in this journal's alert window")
    if marked is not None:
        events = source.session(marked)
        if not events:
            res.marker_problem = (f"the alerted process is stamped with session {marked}, "
                                  "which this journal does not have")
        else:
            if tp is not None and trace_id(marked).hex() != tp[0]:
                res.marker_problem = "TRACEPARENT and CORRAL_SESSION_ID disagree"
            calls = {ev.call_id for ev in events if ev.call_id}
            marked_call = stamp.get("CORRAL_CALL_ID")
            if marked_call is None and tp is not None:
                marked_call = next((c for c in calls if span_id(c).hex() == tp[1]), None)
            if marked_call is not None and marked_call not in calls:
                res.marker_problem = (f"the alerted process is stamped with call "
                                      f"{marked_call}, which session {marked} does not have")
                marked_call = None
            res.session_id, res.session_events = marked, events
            start = next((ev for ev in events if ev.name == "agent.session.start"), events[0])
            res.links.append(Link(start, "marker", STRONG,
                                  "the alerted process carries this session's stamp"))
            if marked_call:
                res.call_ids.append(marked_call)
                dec = next((ev for ev in events if ev.call_id == marked_call), None)
                if dec is not None:
                    res.links.append(Link(dec, "marker", STRONG,
                                          f"the alerted process carries call {marked_call}'s "
                                          "stamp"))
            res.links += links_for(alert, events)
            _calls_from_links(res)
            return res
    # No usable stamp: candidate sessions by host, user and time.
    by_session: dict[str, list[Event]] = {}
    for ev in window:
        if alert.host and ev.host and not _same_host(alert.host, ev.host):
            continue
        if alert.user and ev.user and alert.user != ev.user:
            continue
        by_session.setdefault(ev.session_id, []).append(ev)
    best: tuple[int, int, str] | None = None
    found: dict[str, list[Link]] = {}
    for sid, evs in by_session.items():
        links = links_for(alert, evs)
        found[sid] = links
        score = (max((lk.strength for lk in links if lk.trusted), default=0),
                 len(links), sid)
        if links and (best is None or score > best):
            best = score
    if best is None:
        return res
    sid = best[2]
    res.session_id = sid
    res.session_events = source.session(sid)
    res.links = links_for(alert, res.session_events) or found[sid]
    _calls_from_links(res)
    return res


def _calls_from_links(res: Correlation) -> None:
    for lk in sorted(res.links, key=lambda x: -x.strength):
        cid = lk.event.call_id
        if cid and cid not in res.call_ids and lk.strength >= MEDIUM:
            res.call_ids.append(cid)
