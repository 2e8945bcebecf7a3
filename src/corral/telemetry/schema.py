"""Event schema v1: one dataclass per event kind, and the envelope every event carries.

The dataclasses are the single source of truth: ``SPECS`` (used to validate every emit) is built
from their fields, and docs/events.md is checked against it by a test. Attribute names reuse
OpenTelemetry semantic conventions (gen_ai.*, mcp.*, network.*, server.*, process.*, user.*)
where one exists; the rest live in the ``agent.*`` namespace.
"""

from __future__ import annotations

import json
import math
import re

from corral.record import Frozen
from corral.telemetry.sha import sha256_hex

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start (see _plain_types)
if TYPE_CHECKING:
    from typing import Any, ClassVar

SCHEMA_VERSION = 1

AttrValue = str | int | float | bool | tuple[str, ...]

DECISIONS = (
    "approved", "approved_for_session", "approved_for_project", "approved_persistent",
    "denied", "abort", "timed_out", "auto_approved", "forbidden", "deferred_to_agent",
)
DECISION_SOURCES = ("rule", "heuristic", "requirements", "automated_reviewer", "user", "hook",
                    "agent")
TOOL_KINDS = ("shell", "patch", "mcp", "web")
SANDBOX_OUTCOMES = (
    "success", "failure", "sandbox_denied", "escalation_requested", "escalation_approved",
    "escalation_denied", "error",
)
NETWORK_DECISIONS = ("allow", "deny", "ask")
NETWORK_SOURCES = ("rule", "requirements", "user", "default", "address_check", "proxy")
NETWORK_PROTOCOLS = ("http", "https_connect", "socks5_tcp", "socks5_udp")
GRANT_SCOPES = ("once", "session", "project", "persistent")
GRANTERS = ("user", "automated_reviewer", "requirements", "hook")
DROP_REASONS = ("queue_full", "export_failed")
MCP_OUTCOMES = ("success", "tool_error", "refused", "timeout", "server_error")
MCP_TOOLS_CHANGES = ("pinned", "changed", "approved")
# Who put an event in the journal. Set by ``Telemetry.emit`` itself, never by the caller's
# attributes: ``pipeline`` (corral's own decisions, results and outcomes), ``session_api`` (what
# the agent reported through the session API: claims) and ``import`` (the agent's own OTLP
# telemetry: claims, whatever their names say).
ORIGIN_ATTR = "corral.origin"
ORIGINS = ("pipeline", "session_api", "import")
# Attribute names callers may not use: corral.* is what corral itself stamps.
RESERVED_PREFIX = "corral."

# Envelope keys of the stored record; attribute and content keys may not reuse them.
ENVELOPE_KEYS = (
    "v", "seq", "id", "name", "time_unix_nano", "session_id", "turn_id", "call_id", "user", "host",
    "agent_name", "agent_version", "corral_version", "tier", "attributes",
)
_ATTR_KEY = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*$")
_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$")


class Field:
    """One field of an event class: ``name``, ``type`` (the annotation text), ``default``
    (``REQUIRED`` if none) and ``metadata`` (``attr``, ``allowed``, ``doc``, ``redact``)."""

    __slots__ = ("default", "metadata", "name", "type")

    def __init__(self, default: Any, metadata: dict[str, Any]) -> None:
        self.name = ""
        self.type: Any = None
        self.default = default
        self.metadata = metadata


REQUIRED: Any = object()


def attr(name: str, allowed: tuple[str, ...] = (), doc: str = "", redact: bool = False) -> Any:
    """Field metadata: the wire attribute name, allowed values and whether to redact secrets."""
    return Field(REQUIRED, {"attr": name, "allowed": allowed, "doc": doc, "redact": redact})


def opt(name: str, allowed: tuple[str, ...] = (), doc: str = "", redact: bool = False) -> Any:
    return Field(None, {"attr": name, "allowed": allowed, "doc": doc, "redact": redact})


def fields(cls: Any) -> tuple[Field, ...]:
    """An event class's (or event's) fields, in order (as ``dataclasses.fields``)."""
    return tuple(cls._FIELDS)


if TYPE_CHECKING:
    from dataclasses import dataclass as event_class  # what type checkers see
else:
    def event_class(*, frozen: bool) -> Any:
        """``@dataclass(frozen=True)`` for the event classes without generating code for each
        (~0.5 ms a class, 14 of them, on every ``corral exec``): ``EventBody`` provides the
        constructor (keywords or positions in field order, defaults), immutability, equality,
        hash and repr over the fields collected here."""

        def make(cls: Any) -> Any:
            found = []
            # the class's own annotations (strings: ``from __future__ import annotations``),
            # as inspect.get_annotations gives them, without importing inspect (~10 ms)
            for name, ann in dict(cls.__dict__.get("__annotations__", {})).items():  # noqa: RUF063
                if str(ann).startswith("ClassVar"):
                    continue
                value = cls.__dict__.get(name, REQUIRED)
                f = value if isinstance(value, Field) else Field(value, {})
                f.name, f.type = name, ann
                found.append(f)
                if f.default is REQUIRED:
                    if name in cls.__dict__:
                        delattr(cls, name)
                else:
                    setattr(cls, name, f.default)
            cls._FIELDS = tuple(found)
            return cls

        return make


class EventBody:
    """Base of the typed events: attributes() for metadata, content() for tiered content."""

    NAME: ClassVar[str]
    CONTENT: ClassVar[tuple[str, ...]] = ()
    _FIELDS: ClassVar[tuple[Field, ...]] = ()

    if not TYPE_CHECKING:  # the dataclass protocol, for the classes of event_class
        def __init__(self, *args: Any, **kw: Any) -> None:
            fs = self._FIELDS
            if len(args) > len(fs):
                raise TypeError(f"{type(self).__name__}() takes {len(fs)} positional "
                                f"arguments but {len(args)} were given")
            for f, value in zip(fs, args, strict=False):
                if f.name in kw:
                    raise TypeError(f"{type(self).__name__}() got multiple values for "
                                    f"argument {f.name!r}")
                kw[f.name] = value
            for f in fs:
                value = kw.pop(f.name, f.default)
                if value is REQUIRED:
                    raise TypeError(f"{type(self).__name__}() missing required argument "
                                    f"{f.name!r}")
                object.__setattr__(self, f.name, value)
            if kw:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                                f"{next(iter(kw))!r}")

        def __setattr__(self, name: str, value: Any) -> None:
            raise AttributeError(f"cannot assign to field {name!r}")

        def __delattr__(self, name: str) -> None:
            raise AttributeError(f"cannot delete field {name!r}")

        def _values(self) -> tuple[Any, ...]:
            return tuple(getattr(self, f.name) for f in self._FIELDS)

        def __eq__(self, other: object) -> bool:
            if other.__class__ is not self.__class__:
                return NotImplemented
            return self._values() == other._values()  # type: ignore[attr-defined]

        def __hash__(self) -> int:
            return hash(self._values())

        def __repr__(self) -> str:
            inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self._FIELDS)
            return f"{type(self).__qualname__}({inner})"

    def attributes(self) -> dict[str, AttrValue]:
        out: dict[str, AttrValue] = {}
        for f in self._FIELDS:
            name = f.metadata.get("attr")
            value = getattr(self, f.name)
            if name and value is not None:
                out[name] = tuple(value) if isinstance(value, list) else value
        return out

    def content(self) -> dict[str, str]:
        return {}


@event_class(frozen=True)
class SessionStart(EventBody):
    NAME: ClassVar[str] = "agent.session.start"
    approval_policy: str | None = opt("agent.policy.approval", doc="approval policy in force")
    sandbox_profile: str | None = opt("agent.policy.sandbox", doc="permission profile in force")
    network_mode: str | None = opt("agent.policy.network", doc="network mode in force")
    policy_summary: str | None = opt(
        "agent.policy.summary", doc="canonical JSON of the effective policy summary")
    policy_hash: str | None = opt(
        "agent.policy.hash", doc="SHA-256 (hex) of agent.policy.summary")
    config_sources: tuple[str, ...] | None = opt(
        "agent.config.sources", doc="config and requirements files in effect, lowest first")
    provider: str | None = opt("gen_ai.provider.name", doc="model provider (openai, anthropic, …)")
    model: str | None = opt("gen_ai.request.model", doc="model requested by the agent")
    pid: int | None = opt("process.pid", doc="supervisor process id")
    cwd: str | None = opt("process.working_directory", doc="session working directory")

    @classmethod
    def from_summary(cls, summary: dict[str, Any], **kw: Any) -> SessionStart:
        """Fill the summary and its hash from a plain dict (canonical JSON, sorted keys)."""
        text = json.dumps(summary, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          default=str)
        digest = sha256_hex(text.encode())
        return cls(policy_summary=text, policy_hash=digest, **kw)


@event_class(frozen=True)
class UserPrompt(EventBody):
    NAME: ClassVar[str] = "agent.user_prompt"
    CONTENT: ClassVar[tuple[str, ...]] = ("prompt",)
    prompt: str | None = None

    def content(self) -> dict[str, str]:
        return {} if self.prompt is None else {"prompt": self.prompt}


@event_class(frozen=True)
class ToolDecision(EventBody):
    NAME: ClassVar[str] = "agent.tool.decision"
    tool_name: str = attr("gen_ai.tool.name", doc="tool the agent called (shell, apply_patch, …)")
    decision: str = attr("agent.decision", DECISIONS, doc="what was decided")
    source: str = attr("agent.decision.source", DECISION_SOURCES, doc="who decided")
    rule: str | None = opt("agent.decision.rule", doc="rule file:line when source is rule")
    rationale: str | None = opt(
        "agent.decision.rationale", doc="reviewer or rule justification (secrets redacted)",
        redact=True)
    command_line: str | None = opt(
        "process.command_line", doc="command line (secrets redacted)", redact=True)
    wait_ms: float | None = opt(
        "agent.approval.wait_ms", doc="a person's or hook's answer: ms from asking to the answer")

    @classmethod
    def from_provenance(cls, tool_name: str, decision: str, provenance: Any,
                        command_line: str | None = None) -> ToolDecision:
        """Build from a ``corral.types.Provenance`` (``"<file>:<line>"``, ``"heuristic:<name>"``,
        ``"requirements"``, ``"unparsed"``, ``"automated_reviewer"``, ``"user"``, ``"hook"``)."""
        src = str(provenance.source)
        rule: str | None = None
        if src in DECISION_SOURCES:
            source = src
        elif src.startswith("heuristic:") or src == "unparsed":
            source, rule = "heuristic", src
        elif _RULE_REF.match(src):
            source, rule = "rule", src
        else:
            source, rule = "heuristic", src
        return cls(tool_name=tool_name, decision=decision, source=source, rule=rule,
                   rationale=provenance.justification, command_line=command_line)


_RULE_REF = re.compile(r"^.+:\d+$")


@event_class(frozen=True)
class ToolResult(EventBody):
    NAME: ClassVar[str] = "agent.tool.result"
    CONTENT: ClassVar[tuple[str, ...]] = ("output",)
    tool_name: str = attr("gen_ai.tool.name", doc="tool that ran")
    tool_kind: str = attr("gen_ai.tool.type", TOOL_KINDS, doc="kind of tool")
    command_line: str | None = opt(
        "process.command_line", doc="command line (secrets redacted)", redact=True)
    exit_code: int | None = opt("process.exit.code", doc="exit status of the command")
    duration_ms: float | None = opt("agent.tool.duration_ms", doc="wall time in milliseconds")
    success: bool | None = opt("agent.tool.success", doc="whether the tool reported success")
    mcp_server: str | None = opt("mcp.server.name", doc="MCP server, for MCP tools")
    files: tuple[str, ...] | None = opt("agent.patch.files", doc="files a patch touched")
    output: str | None = None

    def content(self) -> dict[str, str]:
        return {} if self.output is None else {"output": self.output}


@event_class(frozen=True)
class SandboxOutcome(EventBody):
    NAME: ClassVar[str] = "agent.sandbox.outcome"
    tool_name: str = attr("gen_ai.tool.name", doc="tool whose command ran")
    outcome: str = attr("agent.sandbox.outcome", SANDBOX_OUTCOMES, doc="how the run ended")
    profile: str | None = opt("agent.sandbox.profile", doc="permission profile used")
    escalated: bool | None = opt("agent.sandbox.escalated", doc="ran outside the sandbox")
    initial_duration_ms: float | None = opt(
        "agent.sandbox.initial_duration_ms", doc="duration of the sandboxed attempt")
    escalated_duration_ms: float | None = opt(
        "agent.sandbox.escalated_duration_ms", doc="duration of the escalated re-run")
    denial: str | None = opt("agent.sandbox.denial", doc="what the sandbox denied", redact=True)


@event_class(frozen=True)
class NetworkDecision(EventBody):
    NAME: ClassVar[str] = "agent.network.decision"
    decision: str = attr("network.policy.decision", NETWORK_DECISIONS, doc="proxy verdict")
    host: str = attr("server.address", doc="destination host name or address")
    port: int | None = opt("server.port", doc="destination port")
    source: str | None = opt("network.policy.source", NETWORK_SOURCES, doc="who decided")
    reason: str | None = opt("network.policy.reason", doc="why (rule, private address, …)")
    protocol: str | None = opt(
        "network.transport.protocol", NETWORK_PROTOCOLS, doc="how the agent connected")
    method: str | None = opt("http.request.method", doc="HTTP method, for plain HTTP")
    pid: int | None = opt("process.pid", doc="requesting process, when known")


@event_class(frozen=True)
class McpCall(EventBody):
    NAME: ClassVar[str] = "agent.mcp.call"
    CONTENT: ClassVar[tuple[str, ...]] = ("arguments",)
    server: str = attr("mcp.server.name", doc="MCP server name from config")
    tool_name: str = attr("gen_ai.tool.name",
                          doc="MCP tool called (resources/read: the URI; prompts/get: the prompt)")
    method: str = attr("mcp.method.name", doc="MCP method: tools/call, resources/read, prompts/get")
    outcome: str | None = opt("agent.mcp.outcome", MCP_OUTCOMES,
                              doc="how the call ended (the MCP gateway)")
    duration_ms: float | None = opt("agent.mcp.duration_ms",
                                    doc="wall time from the agent's request to the answer")
    error: str | None = opt("agent.mcp.error", doc="why it was refused or failed", redact=True)
    arguments: str | None = None

    def content(self) -> dict[str, str]:
        return {} if self.arguments is None else {"arguments": self.arguments}


@event_class(frozen=True)
class McpTools(EventBody):
    """An MCP server's tool list compared with its pin (the tool definitions approved before):
    pinned the first time, recorded whenever it changes, re-pinned tool by tool on approval."""

    NAME: ClassVar[str] = "agent.mcp.tools"
    server: str = attr("mcp.server.name", doc="MCP server name from config")
    change: str = attr("agent.mcp.tools.change", MCP_TOOLS_CHANGES,
                       doc="first pin, a change against the pin, or a changed tool approved")
    tools_hash: str = attr("agent.mcp.tools.hash", doc="SHA-256 over the tool list as seen")
    count: int = attr("agent.mcp.tools.count", doc="tools in the list as seen")
    added: tuple[str, ...] | None = opt("agent.mcp.tools.added", doc="tools not pinned")
    changed: tuple[str, ...] | None = opt(
        "agent.mcp.tools.changed", doc="tools whose definition (description, schema) changed")
    removed: tuple[str, ...] | None = opt("agent.mcp.tools.removed", doc="pinned tools gone")


@event_class(frozen=True)
class ApprovalGrant(EventBody):
    NAME: ClassVar[str] = "agent.approval.grant"
    grant_id: str = attr("agent.approval.id", doc="grant identifier (for revoke)")
    scope: str = attr("agent.approval.scope", GRANT_SCOPES, doc="how long the grant lasts")
    pattern: str = attr("agent.approval.pattern", doc="what it covers (command prefix, host)",
                        redact=True)
    granted_by: str = attr("agent.approval.granted_by", GRANTERS, doc="who granted it")
    expires_unix: int | None = opt("agent.approval.expires_unix", doc="expiry, epoch seconds")


@event_class(frozen=True)
class ApprovalRevoke(EventBody):
    NAME: ClassVar[str] = "agent.approval.revoke"
    grant_id: str = attr("agent.approval.id", doc="grant revoked")
    scope: str | None = opt("agent.approval.scope", GRANT_SCOPES, doc="scope of the grant")
    pattern: str | None = opt("agent.approval.pattern", doc="what it covered", redact=True)
    reason: str | None = opt("agent.approval.reason", doc="why (user, expiry, policy change)")


@event_class(frozen=True)
class ConfigChange(EventBody):
    NAME: ClassVar[str] = "agent.config.change"
    key: str = attr("agent.config.key", doc="dotted config key")
    new_value: str = attr("agent.config.new", doc="new value (secrets redacted)", redact=True)
    old_value: str | None = opt("agent.config.old", doc="previous value (secrets redacted)",
                                redact=True)
    trigger: str | None = opt("agent.config.trigger", doc="user, admin, requirements, agent")
    origin: str | None = opt("agent.config.origin", doc="file or layer the value came from")


@event_class(frozen=True)
class TelemetryDrop(EventBody):
    NAME: ClassVar[str] = "agent.telemetry.drop"
    dropped: int = attr("agent.telemetry.dropped", doc="events not exported since the last drop")
    reason: str = attr("agent.telemetry.reason", DROP_REASONS, doc="why they were dropped")
    exporter: str | None = opt("agent.telemetry.exporter", doc="exporter endpoint")


@event_class(frozen=True)
class ImportQuotaExceeded(EventBody):
    """Recorded once per session and channel when the agent's reports go over their quota;
    later excess is only counted (the totals come again when the session ends)."""

    NAME: ClassVar[str] = "agent.import.quota_exceeded"
    channel: str = attr("agent.import.channel", ("session_api", "import"),
                        doc="where the reports came in")
    quota: str = attr("agent.import.quota", ("records", "bytes"), doc="which quota was exceeded")
    records: int = attr("agent.import.records", doc="records accepted so far")
    record_bytes: int = attr("agent.import.bytes", doc="bytes accepted so far")
    refused_records: int = attr("agent.import.refused_records", doc="records refused so far")
    refused_bytes: int = attr("agent.import.refused_bytes", doc="bytes refused so far")
    max_records: int = attr("agent.import.max_records", doc="the records quota")
    max_bytes: int = attr("agent.import.max_bytes", doc="the bytes quota")
    final: bool | None = opt("agent.import.final", doc="true: the totals at the session's end")


EVENT_TYPES: tuple[type[EventBody], ...] = (
    SessionStart, UserPrompt, ToolDecision, ToolResult, SandboxOutcome, NetworkDecision, McpCall,
    McpTools, ApprovalGrant, ApprovalRevoke, ConfigChange, TelemetryDrop, ImportQuotaExceeded,
)


class AttrSpec(Frozen):
    """What ``validate`` checks of one attribute: the accepted ``types``, whether it is
    ``required``, the ``allowed`` values; its ``doc`` and whether it is redacted."""

    _fields = ("name", "types", "required", "allowed", "doc", "redact")
    name: str
    types: tuple[type, ...]
    required: bool
    allowed: tuple[str, ...]
    doc: str
    redact: bool

    def __init__(self, name: str, types: tuple[type, ...], required: bool,
                 allowed: tuple[str, ...], doc: str, redact: bool) -> None:
        self._set(name=name, types=types, required=required, allowed=allowed, doc=doc,
                  redact=redact)


def _types_of(hint: Any) -> tuple[tuple[type, ...], bool]:
    """(accepted types, required) of an evaluated type hint: for annotations that are not
    ``_PLAIN`` (tests check that both ways agree)."""
    import types
    import typing

    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        optional = type(None) in args
        inner = [a for a in args if a is not type(None)]
        ts: tuple[type, ...] = ()
        for a in inner:
            ts += _types_of(a)[0]
        return ts, not optional
    if origin is tuple:
        return (tuple, list), True
    if hint is float:
        return (float, int), True
    return (hint,), True


# What a value of each plain annotation may be (``_types_of`` of the evaluated type).
_PLAIN: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (float, int),
                                       "bool": (bool,), "tuple[str, ...]": (tuple, list)}


def _plain_types(annotation: Any, cls: type, field_name: str) -> tuple[tuple[type, ...], bool]:
    """(accepted types, required) of a field from its annotation string (``str | None`` ...),
    without typing (its import and ``typing.get_type_hints``: ms on each ``corral exec``)."""
    if isinstance(annotation, str):
        parts = [p.strip() for p in annotation.split(" | ")]
        inner = [p for p in parts if p != "None"]
        if inner and all(p in _PLAIN for p in inner):
            return tuple(t for p in inner for t in _PLAIN[p]), len(inner) == len(parts)
        return _types_of(evaluated_hints(cls)[field_name])
    return _types_of(annotation)


def evaluated_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints`` of an event class (its ``Any`` and ``ClassVar`` are names for
    the type checker only in this module)."""
    import typing

    return typing.get_type_hints(cls, localns={"Any": typing.Any, "ClassVar": typing.ClassVar})


def _build_specs() -> dict[str, dict[str, AttrSpec]]:
    specs: dict[str, dict[str, AttrSpec]] = {}
    for cls in EVENT_TYPES:
        out: dict[str, AttrSpec] = {}
        for f in fields(cls):
            name = f.metadata.get("attr")
            if not name:
                continue
            ts, required = _plain_types(f.type, cls, f.name)
            out[name] = AttrSpec(name, ts, required, f.metadata["allowed"], f.metadata["doc"],
                                 f.metadata["redact"])
        specs[cls.NAME] = out
    return specs


SPECS = _build_specs()
CONTENT_KEYS = {cls.NAME: cls.CONTENT for cls in EVENT_TYPES}


_GOOD_KEYS: set[str] = set()
_GOOD_NAMES: set[str] = set()


def validate(name: str, attributes: dict[str, Any]) -> str | None:
    """Why ``attributes`` is not a valid ``name`` event, or None. Unknown event names are
    accepted (other packages add events) if well formed; their attributes are type-checked."""
    if name not in _GOOD_NAMES:
        if not _EVENT_NAME.match(name):
            return f"bad event name {name!r} (expected dotted lower-case, e.g. agent.tool.result)"
        _GOOD_NAMES.add(name)
    spec = SPECS.get(name, _NO_SPEC)
    for key, value in attributes.items():
        s = spec.get(key)
        if key.startswith(RESERVED_PREFIX):
            return f"{name}: attribute {key} is set by corral, not by the caller"
        if s is None and key not in _GOOD_KEYS:
            if key in ENVELOPE_KEYS or not _ATTR_KEY.match(key):
                return f"{name}: bad attribute name {key!r}"
            if len(_GOOD_KEYS) < 10_000:
                _GOOD_KEYS.add(key)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name}: attribute {key} must be a finite number, got {value!r}"
        if s is None:
            if not _scalar_ok(value):
                return f"{name}: attribute {key} has unsupported type {type(value).__name__}"
            continue
        if isinstance(value, bool) and bool not in s.types:
            return f"{name}: attribute {key} must be {s.types[0].__name__}, not bool"
        if not isinstance(value, s.types):
            return f"{name}: attribute {key} must be {s.types[0].__name__}, got {value!r}"
        if isinstance(value, tuple | list) and not all(isinstance(v, str) for v in value):
            return f"{name}: attribute {key} must be a list of strings"
        if s.allowed and value not in s.allowed:
            return f"{name}: {key}={value!r} is not one of {', '.join(s.allowed)}"
    for key in _REQUIRED.get(name, ()):
        if attributes.get(key) is None:
            return f"{name}: missing required attribute {key}"
    return None


_NO_SPEC: dict[str, AttrSpec] = {}
_REQUIRED = {n: tuple(k for k, s in spec.items() if s.required) for n, spec in SPECS.items()}


def _scalar_ok(value: Any) -> bool:
    if isinstance(value, str | int | float | bool):
        return True
    return isinstance(value, tuple | list) and all(isinstance(v, str) for v in value)


class Event(Frozen):
    """One emitted event: the envelope plus its (tiered, redacted) attributes.

    ``seq`` is assigned by the journal when the event is written; the record hashed into the
    chain is ``to_record()`` with ``seq`` set.
    """

    _fields = ("id", "name", "time_unix_nano", "session_id", "turn_id", "call_id", "user",
               "host", "agent_name", "agent_version", "corral_version", "tier", "attributes",
               "seq")
    id: str
    name: str
    time_unix_nano: int
    session_id: str
    turn_id: str | None
    call_id: str | None
    user: str
    host: str
    agent_name: str
    agent_version: str
    corral_version: str
    tier: int
    attributes: dict[str, AttrValue]
    seq: int | None

    def __init__(self, id: str, name: str, time_unix_nano: int, session_id: str,
                 turn_id: str | None, call_id: str | None, user: str, host: str,
                 agent_name: str, agent_version: str, corral_version: str, tier: int,
                 attributes: dict[str, AttrValue], seq: int | None = None) -> None:
        self._set(id=id, name=name, time_unix_nano=time_unix_nano, session_id=session_id,
                  turn_id=turn_id, call_id=call_id, user=user, host=host,
                  agent_name=agent_name, agent_version=agent_version,
                  corral_version=corral_version, tier=tier, attributes=attributes, seq=seq)

    def to_record(self, seq: int | None = None) -> dict[str, Any]:
        attrs = {k: list(v) if isinstance(v, tuple) else v for k, v in self.attributes.items()}
        return {
            "v": SCHEMA_VERSION, "seq": self.seq if seq is None else seq, "id": self.id,
            "name": self.name, "time_unix_nano": self.time_unix_nano,
            "session_id": self.session_id, "turn_id": self.turn_id, "call_id": self.call_id,
            "user": self.user, "host": self.host, "agent_name": self.agent_name,
            "agent_version": self.agent_version, "corral_version": self.corral_version,
            "tier": self.tier, "attributes": attrs,
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Event:
        attrs = {k: tuple(v) if isinstance(v, list) else v
                 for k, v in dict(rec.get("attributes") or {}).items()}
        return cls(
            id=str(rec["id"]), name=str(rec["name"]), time_unix_nano=int(rec["time_unix_nano"]),
            session_id=str(rec["session_id"]), turn_id=rec.get("turn_id"),
            call_id=rec.get("call_id"), user=str(rec.get("user", "")),
            host=str(rec.get("host", "")), agent_name=str(rec.get("agent_name", "")),
            agent_version=str(rec.get("agent_version", "")),
            corral_version=str(rec.get("corral_version", "")), tier=int(rec.get("tier", 0)),
            attributes=attrs, seq=rec.get("seq"),
        )
