"""Endpoint alerts in three forms, read into one ``Alert``.

Forms: corral's simple form (``{"id", "time", "host", "user", "title", "severity", "process":
{...}, "file": {...}, "network": {...}}``, any subset), OCSF Detection Finding (2004) or Process
Activity (1007), and Falco's JSON output (``rule``, ``priority``, ``time``, ``hostname``,
``output_fields``). Alerts come from outside: every field is type-checked, sizes are bounded,
and a malformed one is refused with one line naming the field (``AlertError``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from corral.errors import CorralError

MAX_TEXT = 65_536  # longest string kept from an alert (command lines can be long, not huge)
MAX_ENV = 512  # environment variables kept per process
MAX_DEPTH = 8  # parent chain depth
MAX_BYTES = 4 << 20  # an alert document larger than this is refused


class AlertError(CorralError):
    """A malformed alert: ``field`` names where, the message says what is wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__("triage", f"alert: {where}: {problem}")
        self.field = where
        self.problem = problem


@dataclass(frozen=True)
class Proc:
    pid: int | None = None
    ppid: int | None = None
    executable: str | None = None
    command_line: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    parent: Proc | None = None


@dataclass(frozen=True)
class FileRef:
    path: str
    action: str | None = None


@dataclass(frozen=True)
class NetRef:
    host: str | None = None
    ip: str | None = None
    port: int | None = None
    protocol: str | None = None


@dataclass(frozen=True)
class Alert:
    """What the triage needs from any alert form. ``time_unix_nano`` is None when the alert
    has no time (then no time window can be used)."""

    form: str  # corral | ocsf | falco
    id: str | None = None
    time_unix_nano: int | None = None
    host: str | None = None
    user: str | None = None
    title: str | None = None
    severity: str | None = None
    process: Proc | None = None
    file: FileRef | None = None
    network: NetRef | None = None

    def summary(self) -> dict[str, Any]:
        """A plain JSON view (what the model and the verdict event see)."""
        def proc(p: Proc | None) -> dict[str, Any] | None:
            if p is None:
                return None
            return {"pid": p.pid, "ppid": p.ppid, "executable": p.executable,
                    "command_line": p.command_line, "env": dict(p.env),
                    "parent": proc(p.parent)}
        return {"form": self.form, "id": self.id, "time_unix_nano": self.time_unix_nano,
                "host": self.host, "user": self.user, "title": self.title,
                "severity": self.severity, "process": proc(self.process),
                "file": None if self.file is None else {"path": self.file.path,
                                                        "action": self.file.action},
                "network": None if self.network is None else {
                    "host": self.network.host, "ip": self.network.ip,
                    "port": self.network.port, "protocol": self.network.protocol}}


# -- field readers -------------------------------------------------------------------------


def _text(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise AlertError(f"{where}{key}", f"expected a string, got {_kind(value)}")
    text = str(value)
    if len(text) > MAX_TEXT:
        raise AlertError(f"{where}{key}", f"longer than {MAX_TEXT} characters")
    if "\x00" in text:
        raise AlertError(f"{where}{key}", "contains a NUL character")
    return text


def _int(obj: dict[str, Any], key: str, where: str, lo: int = 0, hi: int = 2**31) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str) and _DIGITS.match(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise AlertError(f"{where}{key}", f"expected an integer, got {_kind(value)}")
    if not lo <= value <= hi:
        raise AlertError(f"{where}{key}", f"{value} is out of range [{lo}, {hi}]")
    return value


def _obj(obj: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AlertError(f"{where}{key}", f"expected an object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "an object", type(None): "null"}.get(type(value),
                                                                         type(value).__name__)


_DIGITS = re.compile(r"^[0-9]{1,30}$")
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?"
                  r"(Z|[+-]\d{2}:?\d{2})?$")


def parse_time(value: Any, where: str) -> int | None:
    """ISO 8601 (up to nanoseconds, UTC when no offset) or an epoch number in s, ms, us or
    ns (told apart by magnitude) -> ns since the epoch."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise AlertError(where, "expected a time, got a boolean")
    if isinstance(value, int | float):
        if value != value or value < 0 or value > 1e20:
            raise AlertError(where, f"{value!r} is not a plausible epoch time")
        return _epoch_ns(value)
    if not isinstance(value, str):
        raise AlertError(where, f"expected a time, got {_kind(value)}")
    text = value.strip()
    if _DIGITS.match(text):  # ASCII digits only: str.isdigit() accepts '²', int() does not
        return parse_time(int(text), where)
    m = _ISO.match(text)
    if not m:
        raise AlertError(where, f"{text[:60]!r} is not ISO 8601 or an epoch number")
    date, clock, frac, tz = m.groups()
    offset = "+00:00" if tz in (None, "Z") else (tz if ":" in tz else f"{tz[:3]}:{tz[3:]}")
    try:
        base = datetime.fromisoformat(f"{date}T{clock}{offset}")
    except ValueError as exc:
        raise AlertError(where, f"{text[:60]!r}: {exc}") from None
    ns = int((frac or "0").ljust(9, "0"))
    return int(base.astimezone(UTC).timestamp()) * 1_000_000_000 + ns


def _epoch_ns(value: float) -> int:
    """Epoch seconds, ms, us or ns -> ns (by magnitude: ns since 1973 is > 1e17)."""
    for threshold, scale in ((1e17, 1), (1e14, 1_000), (1e11, 1_000_000)):
        if value >= threshold:
            return int(value * scale)
    return int(value * 1_000_000_000)


def _env(value: Any, where: str) -> dict[str, str]:
    """A mapping, a list of {name, value} (OCSF) or of "K=V" strings, or one "K=V K=V" string
    (Falco's ``proc.env``)."""
    if value is None:
        return {}
    out: dict[str, str] = {}
    items: list[tuple[Any, Any]]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                items.append((item.get("name"), item.get("value")))
            elif isinstance(item, str) and "=" in item:
                items.append(tuple(item.split("=", 1)))  # type: ignore[arg-type]
            else:
                raise AlertError(f"{where}[{i}]", "expected {name, value} or \"NAME=value\"")
    elif isinstance(value, str):
        items = [tuple(w.split("=", 1)) for w in value.split() if "=" in w]  # type: ignore[misc]
    else:
        raise AlertError(where, f"expected an object or an array, got {_kind(value)}")
    for name, val in items[:MAX_ENV]:
        if not isinstance(name, str) or not name or not isinstance(val, str | int):
            raise AlertError(where, f"variable {str(name)[:40]!r} needs a name and a string value")
        if len(str(val)) > MAX_TEXT:
            raise AlertError(f"{where}.{name}", f"longer than {MAX_TEXT} characters")
        out[name] = str(val)
    return out


# -- corral's simple form --------------------------------------------------------------------


def _simple_proc(obj: dict[str, Any], where: str, depth: int = 0) -> Proc:
    if depth > MAX_DEPTH:
        raise AlertError(where, f"parent chain deeper than {MAX_DEPTH}")
    parent = _obj(obj, "parent", where)
    return Proc(pid=_int(obj, "pid", where), ppid=_int(obj, "ppid", where),
                executable=_text(obj, "executable", where),
                command_line=_text(obj, "command_line", where),
                env=_env(obj.get("env"), f"{where}env"),
                parent=None if parent is None else _simple_proc(parent, f"{where}parent.",
                                                                depth + 1))


def _simple(doc: dict[str, Any]) -> Alert:
    proc = _obj(doc, "process", "")
    f = _obj(doc, "file", "")
    n = _obj(doc, "network", "")
    file = None
    if f is not None:
        path = _text(f, "path", "file.")
        if not path:
            raise AlertError("file.path", "missing (a file object needs a path)")
        file = FileRef(path, _text(f, "action", "file."))
    net = None
    if n is not None:
        net = NetRef(_text(n, "host", "network."), _text(n, "ip", "network."),
                     _int(n, "port", "network.", 0, 65535), _text(n, "protocol", "network."))
        if not (net.host or net.ip):
            raise AlertError("network", "needs a host or an ip")
    return Alert("corral", _text(doc, "id", ""), parse_time(doc.get("time"), "time"),
                 _text(doc, "host", ""), _text(doc, "user", ""), _text(doc, "title", ""),
                 _text(doc, "severity", ""),
                 None if proc is None else _simple_proc(proc, "process."), file, net)


# -- OCSF ------------------------------------------------------------------------------------


def _ocsf_proc(obj: dict[str, Any], where: str, depth: int = 0) -> Proc:
    if depth > MAX_DEPTH:
        raise AlertError(where, f"parent chain deeper than {MAX_DEPTH}")
    f = _obj(obj, "file", where)
    parent = _obj(obj, "parent_process", where)
    par = None if parent is None else _ocsf_proc(parent, f"{where}parent_process.", depth + 1)
    return Proc(pid=_int(obj, "pid", where), ppid=par.pid if par else None,
                executable=_text(f, "path", f"{where}file.") if f else None,
                command_line=_text(obj, "cmd_line", where),
                env=_env(obj.get("environment_variables"), f"{where}environment_variables"),
                parent=par)


def _endpoint(obj: dict[str, Any] | None, where: str, proto: str | None) -> NetRef | None:
    if obj is None:
        return None
    host = _text(obj, "hostname", where) or _text(obj, "domain", where)
    ip = _text(obj, "ip", where)
    if not (host or ip):
        return None
    return NetRef(host, ip, _int(obj, "port", where, 0, 65535), proto)


def _ocsf(doc: dict[str, Any]) -> Alert:
    cls = doc.get("class_uid")
    if cls not in (2004, 1007):
        raise AlertError("class_uid", f"{cls!r} is not 2004 (Detection Finding) or 1007 "
                                      "(Process Activity)")
    info = _obj(doc, "finding_info", "")
    if cls == 2004 and info is None:
        raise AlertError("finding_info", "missing (required by Detection Finding)")
    device = _obj(doc, "device", "") or {}
    actor = _obj(doc, "actor", "") or {}
    user = _obj(actor, "user", "actor.") or {}
    proc_obj = _obj(doc, "process", "")
    file_obj = _obj(doc, "file", "")
    where_p, where_f = "process.", "file."
    net = _endpoint(_obj(doc, "dst_endpoint", ""), "dst_endpoint.", None)
    evidences = doc.get("evidences")
    if evidences is not None and not isinstance(evidences, list):
        raise AlertError("evidences", f"expected an array, got {_kind(evidences)}")
    for i, ev in enumerate(evidences or []):
        if not isinstance(ev, dict):
            raise AlertError(f"evidences[{i}]", f"expected an object, got {_kind(ev)}")
        w = f"evidences[{i}]."
        if proc_obj is None and isinstance(ev.get("process"), dict):
            proc_obj, where_p = ev["process"], f"{w}process."
        if file_obj is None and isinstance(ev.get("file"), dict):
            file_obj, where_f = ev["file"], f"{w}file."
        if net is None:
            conn = _obj(ev, "connection_info", w) or {}
            net = _endpoint(_obj(ev, "dst_endpoint", w), f"{w}dst_endpoint.",
                            _text(conn, "protocol_name", f"{w}connection_info."))
        if not user and isinstance(ev.get("actor"), dict):
            user = _obj(ev["actor"], "user", f"{w}actor.") or {}
    if proc_obj is None and isinstance(actor.get("process"), dict):
        proc_obj, where_p = actor["process"], "actor.process."
    proc = None if proc_obj is None else _ocsf_proc(proc_obj, where_p)
    if not user and isinstance(proc_obj, dict) and isinstance(proc_obj.get("user"), dict):
        user = proc_obj["user"]
    file = None
    if file_obj is not None:
        path = _text(file_obj, "path", where_f)
        if path:
            file = FileRef(path, _text(doc, "activity_name", ""))
    time = doc.get("time")
    t_ns = None
    if time is not None:
        if isinstance(time, bool) or not isinstance(time, int | str):
            raise AlertError("time", f"expected epoch milliseconds, got {_kind(time)}")
        t_ns = parse_time(time, "time") if isinstance(time, str) else _epoch_ns(time)
    title = (_text(info, "title", "finding_info.") if info else None) or \
        _text(doc, "message", "")
    uid = (_text(info, "uid", "finding_info.") if info else None) or \
        _text(_obj(doc, "metadata", "") or {}, "uid", "metadata.")
    return Alert("ocsf", uid, t_ns, _text(device, "hostname", "device."),
                 _text(user, "name", "actor.user."), title,
                 _text(doc, "severity", "") or (str(doc["severity_id"])
                                                if "severity_id" in doc else None),
                 proc, file, net)


# -- Falco -----------------------------------------------------------------------------------


def _falco(doc: dict[str, Any]) -> Alert:
    of = _obj(doc, "output_fields", "")
    if of is None:
        raise AlertError("output_fields", "missing (Falco's json_output carries the fields)")
    w = "output_fields."

    def text(key: str) -> str | None:
        return _text(of, key, w)

    env = _env(of.get("proc.env"), f"{w}proc.env")
    penv = _env(of.get("proc.aenv"), f"{w}proc.aenv") if isinstance(
        of.get("proc.aenv"), str | dict | list) else {}
    pid, ppid = _int(of, "proc.pid", w), _int(of, "proc.ppid", w)
    parent = Proc(pid=ppid, executable=text("proc.pexepath") or text("proc.pexe"),
                  command_line=text("proc.pcmdline"), env=penv) \
        if (ppid is not None or of.get("proc.pcmdline")) else None
    proc = Proc(pid=pid, ppid=ppid, executable=text("proc.exepath") or text("proc.exe"),
                command_line=text("proc.cmdline"), env=env, parent=parent) \
        if any(k.startswith("proc.") for k in of) else None
    file = None
    net = None
    fd = text("fd.name")
    fd_type = text("fd.type") or ""
    rip, rport = text("fd.sip") or text("fd.rip"), of.get("fd.sport", of.get("fd.rport"))
    if rip or fd_type in ("ipv4", "ipv6"):
        net = NetRef(text("fd.sip.name") or text("fd.rip.name"), rip,
                     _int({"p": rport}, "p", f"{w}fd.sport", 0, 65535),
                     text("fd.l4proto"))
    elif fd and fd.startswith("/"):
        file = FileRef(fd, text("evt.type"))
    if file is None and text("fs.path.name"):
        file = FileRef(str(text("fs.path.name")), text("evt.type"))
    t = doc.get("time")
    t_ns = parse_time(t, "time") if t is not None else None
    if t_ns is None and of.get("evt.time") is not None:
        t_ns = parse_time(of.get("evt.time"), f"{w}evt.time")
    return Alert("falco", _text(doc, "uuid", ""), t_ns,
                 _text(doc, "hostname", "") or text("evt.hostname"), text("user.name"),
                 _text(doc, "rule", ""), _text(doc, "priority", ""), proc, file, net)


# -- entry points ----------------------------------------------------------------------------


def parse_alert(doc: Any) -> Alert:
    """One alert from a decoded JSON document; raises ``AlertError`` when malformed."""
    if not isinstance(doc, dict):
        raise AlertError("(document)", f"expected a JSON object, got {_kind(doc)}")
    if "class_uid" in doc:
        return _ocsf(doc)
    if "output_fields" in doc or ("rule" in doc and "priority" in doc):
        return _falco(doc)
    known = {"id", "time", "host", "user", "title", "severity", "process", "file", "network"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise AlertError(unknown[0], "unknown field (not corral's simple form, and no "
                                     "class_uid or output_fields for OCSF or Falco)")
    alert = _simple(doc)
    if alert.process is None and alert.file is None and alert.network is None:
        raise AlertError("(document)", "nothing to triage: no process, file or network")
    return alert


def load_alert(text: str | bytes) -> Alert:
    """Parse alert JSON text."""
    if len(text) > MAX_BYTES:
        raise AlertError("(document)", f"larger than {MAX_BYTES} bytes")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise AlertError("(document)", f"not JSON ({str(exc)[:80]})") from None
    return parse_alert(doc)
