"""Hook adapters: an agent's hook call in, the session supervisor's decision out, in the agent's
own format.

Codex and Claude Code run a command for each hook event with one JSON object on stdin. We map the
tool to one of our action kinds, ask the supervisor over its unix socket (shell commands ->
``decide``; prompts, MCP calls and results -> ``event``) and answer the way that agent
understands: a deny with a reason the model reads, an allow, or nothing at all (the agent's own
approval flow goes on) when our rules say ``prompt`` and corral has nobody to ask.

Fail closed: with no reachable supervisor a tool call is denied with one line saying why. Only
stdlib is imported here, so a hook call costs one Python start plus one socket round trip.
"""

from __future__ import annotations

import json
import os

from corral.insandbox.relay import timeout_from_env

TYPE_CHECKING = False  # not imported from typing: typing, dataclasses and re cost ~40 ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Transport = Callable[[str, dict[str, Any]], dict[str, Any]]

AGENTS = ("codex", "claude-code", "gemini")
TOOL_EVENTS = ("PreToolUse", "PermissionRequest")
NO_SUPERVISOR_HINT = ("start the agent under `corral run`, or take the hooks out with "
                      "`corral install-hooks AGENT --remove`")

_SHELL_TOOLS = {"bash", "shell", "exec_command", "local_shell", "container.exec", "unified_exec",
                "shell_command", "run_shell_command"}
_PATCH_TOOLS = {"apply_patch", "edit", "write", "multiedit", "notebookedit", "write_file",
                "replace"}
_WEB_TOOLS = {"webfetch", "websearch", "web_search", "web_fetch", "google_web_search"}
_READ_TOOLS = {"read", "glob", "grep", "ls", "notebookread", "view_image", "read_file",
               "read_many_files", "list_directory", "grep_search", "search_file_content"}
_PATCH_HEADERS = ("*** Add File: ", "*** Update File: ", "*** Delete File: ", "*** Move to: ")


class HookInputError(ValueError):
    """The agent sent something that is not a hook call we understand."""


class ToolCall:
    """One tool call in our terms, whichever agent made it (a plain class: see imports)."""

    __slots__ = (
        "arguments",
        "argv",
        "command_line",
        "files",
        "kind",
        "mcp_server",
        "mcp_tool",
        "tool_name",
    )

    def __init__(self, tool_name: str, kind: str, *, argv: tuple[str, ...] = (),
                 command_line: str | None = None, files: tuple[str, ...] = (),
                 mcp_server: str | None = None, mcp_tool: str | None = None,
                 arguments: str | None = None) -> None:
        self.tool_name = tool_name
        self.kind = kind  # shell | patch | mcp | web | read | other
        self.argv = argv
        self.command_line = command_line
        self.files = files
        self.mcp_server = mcp_server
        self.mcp_tool = mcp_tool
        self.arguments = arguments  # canonical JSON of the tool input

    def __repr__(self) -> str:
        return f"ToolCall({self.tool_name!r}, {self.kind!r}, argv={self.argv!r})"


def _patch_files(patch: str) -> list[str]:
    out = []
    for line in patch.splitlines():
        for head in _PATCH_HEADERS:
            if line.startswith(head) and line[len(head):].strip():
                out.append(line[len(head):].strip())
    return out


def _join(argv: tuple[str, ...]) -> str:
    import shlex  # only for argv lists (it imports re)

    return shlex.join(argv)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def kind_of(tool_name: str) -> str:
    """Our action kind for an agent tool name: shell | patch | mcp | web | read | other."""
    low = tool_name.lower()
    if low.startswith("mcp__"):
        return "mcp"
    for kind, names in (("shell", _SHELL_TOOLS), ("patch", _PATCH_TOOLS), ("web", _WEB_TOOLS),
                        ("read", _READ_TOOLS)):
        if low in names:
            return kind
    return "other"


def classify(tool_name: str, tool_input: Any) -> ToolCall:
    """Map an agent tool (Bash, shell, exec_command, apply_patch, Edit, Write, mcp__s__t, …) to
    our action kind and the fields the supervisor needs."""
    if not isinstance(tool_name, str) or not tool_name:
        raise HookInputError("tool_name must be a non-empty string")
    args = _canonical(tool_input)
    low = tool_name.lower()
    inp = tool_input if isinstance(tool_input, dict) else {}
    if low.startswith("mcp__"):
        parts = tool_name.split("__", 2)
        server = parts[1] if len(parts) > 1 and parts[1] else "unknown"
        tool = parts[2] if len(parts) > 2 and parts[2] else tool_name
        return ToolCall(tool_name, "mcp", mcp_server=server, mcp_tool=tool, arguments=args)
    if low in _SHELL_TOOLS:
        cmd = inp.get("command", inp.get("cmd"))
        if isinstance(tool_input, str):
            cmd = tool_input
        if isinstance(cmd, list) and cmd and all(isinstance(a, str) for a in cmd):
            argv = tuple(cmd)
        elif isinstance(cmd, str) and cmd.strip():
            argv = ("bash", "-lc", cmd)
        else:
            raise HookInputError(f"{tool_name}: tool_input has no command")
        line = argv[2] if argv[:2] == ("bash", "-lc") else _join(argv)
        return ToolCall(tool_name, "shell", argv=argv, command_line=line, arguments=args)
    if low in _PATCH_TOOLS:
        files: list[str] = []
        for key in ("file_path", "notebook_path", "path"):
            if isinstance(inp.get(key), str):
                files.append(inp[key])
        patch = inp.get("command", inp.get("input")) if low == "apply_patch" else None
        if isinstance(tool_input, str) and low == "apply_patch":
            patch = tool_input
        if isinstance(patch, str):
            files.extend(_patch_files(patch))
        return ToolCall(tool_name, "patch", files=tuple(files), arguments=args)
    if low in _WEB_TOOLS:
        return ToolCall(tool_name, "web", arguments=args)
    if low in _READ_TOOLS:
        return ToolCall(tool_name, "read", arguments=args)
    return ToolCall(tool_name, "other", arguments=args)


# -- the supervisor connection ------------------------------------------------------------------


class NoSupervisor(Exception):
    """No session supervisor could be reached (the reason is the message)."""


def socket_transport(timeout: float | None = None) -> Transport:
    """Talk to the session named by CORRAL_SUPERVISOR_SOCKET / CORRAL_SUPERVISOR_TOKEN."""
    path = os.environ.get("CORRAL_SUPERVISOR_SOCKET")
    token = os.environ.get("CORRAL_SUPERVISOR_TOKEN")
    limit = timeout if timeout is not None else timeout_from_env()

    def send(op: str, fields: dict[str, Any]) -> dict[str, Any]:
        from corral.insandbox.client import ClientError, exchange

        if not path or not token:
            raise NoSupervisor("no corral supervisor for this session "
                               "(CORRAL_SUPERVISOR_SOCKET is not set)")
        try:
            return exchange(path, token, op, fields, limit)
        except ClientError as exc:
            raise NoSupervisor(str(exc)) from exc

    return send


# -- answers in each agent's format -----------------------------------------------------------


class Verdict:
    """What we tell the agent: allow, deny (with the reason the model sees) or defer."""

    __slots__ = ("action", "reason", "warning")

    def __init__(self, action: str, reason: str = "", warning: str = "") -> None:
        self.action = action  # allow | deny | defer | none
        self.reason = reason
        self.warning = warning  # shown to the user (systemMessage), never blocks


def render(agent: str, event: str, verdict: Verdict) -> tuple[str, int]:
    """The hook's stdout and exit status for ``verdict`` in ``agent``'s native format."""
    out: dict[str, Any] = {}
    if event == "PreToolUse" and verdict.action == "deny":
        out["hookSpecificOutput"] = {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                     "permissionDecisionReason": verdict.reason}
    elif event == "PreToolUse" and agent == "claude-code" and verdict.action in ("allow",
                                                                                  "defer"):
        # Claude Code: "allow" skips its own prompt, "ask" forces it. Codex accepts neither
        # (a plain allow or ask fails the hook), so there silence means "go on as you would".
        decision = "allow" if verdict.action == "allow" else "ask"
        out["hookSpecificOutput"] = {"hookEventName": "PreToolUse",
                                     "permissionDecision": decision,
                                     "permissionDecisionReason": verdict.reason}
    elif event == "PermissionRequest" and verdict.action in ("allow", "deny"):
        answer: dict[str, Any] = {"behavior": verdict.action}
        if verdict.action == "deny":
            answer["message"] = verdict.reason
        out["hookSpecificOutput"] = {"hookEventName": "PermissionRequest", "decision": answer}
    elif event == "PostToolUse" and verdict.action == "deny":
        out["decision"] = "block"
        out["reason"] = verdict.reason
    if verdict.warning:
        out["systemMessage"] = verdict.warning
    return (json.dumps(out) if out else ""), 0


# -- handling one hook call -------------------------------------------------------------------


def _str(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value else None


class Caller:
    """Where the hook runs: its working directory, and whether inside corral's sandbox
    (CORRAL_SANDBOX=1). The hook process's own, unless the supervisor answers for it
    (``corral.insandbox.relay``)."""

    __slots__ = ("cwd", "sandboxed")

    def __init__(self, cwd: str | None = None, sandboxed: bool | None = None) -> None:
        self.cwd = os.getcwd() if cwd is None else cwd
        self.sandboxed = os.environ.get("CORRAL_SANDBOX") == "1" if sandboxed is None \
            else sandboxed

    def agent_may_decide(self) -> bool:
        """Whether a prompt corral could not put to anyone may go to the agent's own approval.

        The supervisor decides (it records ``deferred_to_agent`` only in a hook session outside
        `corral run`); this is a second check: never under `corral run` (the agent runs in
        corral's sandbox, CORRAL_SANDBOX=1), where the agent's own approval may be off (`codex
        exec` runs with approval `never`)."""
        return not self.sandboxed


def _decide(fields: dict[str, Any], send: Transport, caller: Caller,
            shown_as: str | None = None) -> Verdict:
    """Ask the session's pipeline (shell, patch or MCP action) and answer as it decided. An
    allowed edit or MCP call is not an "allow" to the agent: its own prompts for those still
    apply (corral only adds refusals there)."""
    reply = send("decide", fields)
    if not reply.get("ok"):
        return Verdict("deny", str(reply.get("error") or "corral: supervisor: request refused"))
    if reply.get("allowed"):
        if fields.get("kind", "shell") != "shell":
            return Verdict("none")
        return Verdict("allow", f"corral: allowed ({reply.get('verdict', 'approved')})")
    message = str(reply.get("message") or "corral: denied by policy")
    if reply.get("verdict") == "deferred_to_agent" and caller.agent_may_decide():
        what = shown_as or "this action"
        return Verdict("defer", f"corral: rules: `{what}` needs approval and this session has "
                                "no corral approval channel; the agent's own approval decides")
    return Verdict("deny", message)


def _tool_verdict(call: ToolCall, payload: dict[str, Any], send: Transport,
                  caller: Caller) -> Verdict:
    cwd = _str(payload, "cwd")
    fields: dict[str, Any] = {"cwd": cwd} if cwd else {}
    if call.kind == "shell":
        inp = payload.get("tool_input")
        workdir = inp.get("workdir") if isinstance(inp, dict) else None
        if isinstance(workdir, str) and workdir:  # Codex's exec_command may run elsewhere
            fields["cwd"] = os.path.normpath(os.path.join(cwd or caller.cwd, workdir))
        return _decide({**fields, "argv": list(call.argv)}, send, caller, call.command_line)
    if call.kind == "patch" and call.files:  # protected paths, the workspace: the pipeline's
        return _decide({**fields, "kind": "patch", "files": list(call.files)}, send, caller)
    if call.kind == "mcp":
        return _decide({"kind": "mcp", "server": call.mcp_server, "tool": call.mcp_tool,
                        "arguments": call.arguments or ""}, send, caller)
    # no decision needed, but a session must exist: fail closed if not
    reply = send("ping", {})
    if not reply.get("ok"):
        return Verdict("deny", str(reply.get("error")))
    return Verdict("none")


_RESULT_KIND = {"shell": "shell", "patch": "patch", "mcp": "mcp", "web": "web"}


def _result_event(call: ToolCall, payload: dict[str, Any]) -> dict[str, Any]:
    resp = payload.get("tool_response")
    attrs: dict[str, Any] = {"gen_ai.tool.name": call.tool_name,
                             "gen_ai.tool.type": _RESULT_KIND[call.kind]}
    if call.command_line:
        attrs["process.command_line"] = call.command_line
    if call.mcp_server:
        attrs["mcp.server.name"] = call.mcp_server
    if call.files:
        attrs["agent.patch.files"] = list(call.files)
    if isinstance(resp, dict):
        code = resp.get("exit_code", resp.get("exitCode"))
        if isinstance(code, int) and not isinstance(code, bool):
            attrs["process.exit.code"] = code
            attrs["agent.tool.success"] = code == 0
        for key in ("success", "interrupted"):
            if isinstance(resp.get(key), bool):
                attrs[f"agent.tool.{key}"] = resp[key]
    output = resp if isinstance(resp, str) else _canonical(resp)
    return {"name": "agent.tool.result", "call_id": _str(payload, "tool_use_id"),
            "attributes": attrs, "content": {"output": output, "arguments": call.arguments or ""}}


def handle(agent: str, payload: Any, *,
           transport: Transport | None = None) -> tuple[str, int]:
    """One hook call: ``payload`` is the JSON the agent wrote on stdin. Returns the text for
    stdout and the exit status (a reason for refusing unusable input goes to stderr). Never
    raises for bad input or a missing supervisor: a tool call is then denied, other events go
    on with a warning."""
    out, code, err = answer(agent, payload, transport=transport)
    if err:
        import sys

        print(err, file=sys.stderr)
    return out, code


def answer(agent: str, payload: Any, *, transport: Transport | None = None,
           caller: Caller | None = None) -> tuple[str, int, str]:
    """``handle`` for a hook that may run elsewhere (``caller``): (stdout, exit status,
    stderr). Unusable input is exit status 2 with the reason for stderr, which blocks the
    action in both agents."""
    if agent not in AGENTS:
        return "", 2, _fail(f"unknown agent {agent!r} (expected {' or '.join(AGENTS)})")
    if not isinstance(payload, dict):
        return "", 2, _fail("hook input is not a JSON object")
    native = payload.get("hook_event_name")
    if not isinstance(native, str):
        return "", 2, _fail("hook input has no hook_event_name")
    if agent == "gemini":  # its events and tools in the shape handled here
        from corral.insandbox import gemini

        payload = gemini.normalize(payload)
    event = str(payload["hook_event_name"])
    send = transport or socket_transport()
    try:
        verdict = _dispatch(event, payload, send, caller or Caller())
    except NoSupervisor as exc:
        line = f"corral: integrations: {exc}; tool calls are refused until one is reachable " \
               f"({NO_SUPERVISOR_HINT})"
        verdict = Verdict("deny", line) if event in TOOL_EVENTS else Verdict("none", warning=line)
    except HookInputError as exc:
        line = f"corral: integrations: bad {event} hook input: {exc}"
        verdict = Verdict("deny", line) if event in TOOL_EVENTS else Verdict("none", warning=line)
    if agent == "gemini":
        from corral.insandbox import gemini as native_format

        return (*native_format.render(native, verdict.action, verdict.reason, verdict.warning), "")
    return (*render(agent, event, verdict), "")


def unreachable(reason: str) -> Transport:
    """A transport for a supervisor that could not be reached (or answered badly): nothing is
    sent; each request fails with ``reason``."""

    def send(op: str, fields: dict[str, Any]) -> dict[str, Any]:
        raise NoSupervisor(reason)

    return send


def _dispatch(event: str, payload: dict[str, Any], send: Transport,
              caller: Caller) -> Verdict:
    if event in TOOL_EVENTS:
        call = classify(payload.get("tool_name"), payload.get("tool_input"))  # type: ignore[arg-type]
        verdict = _tool_verdict(call, payload, send, caller)
        if event == "PermissionRequest" and verdict.action == "none":
            return Verdict("none")  # not ours to answer: the agent asks its user
        return verdict
    if event == "PostToolUse":
        call = classify(payload.get("tool_name"), payload.get("tool_input"))  # type: ignore[arg-type]
        if call.kind not in _RESULT_KIND:  # reads and bookkeeping tools: no result event kind
            return _warn_unless_ok(send("ping", {}))
        return _warn_unless_ok(send("event", _result_event(call, payload)))
    if event == "UserPromptSubmit":
        prompt = payload.get("prompt")
        reply = send("event", {"name": "agent.user_prompt", "attributes": {},
                               "content": {"prompt": prompt} if isinstance(prompt, str) else None})
        return _warn_unless_ok(reply)
    # SessionStart, Stop, SessionEnd, compaction, subagents: check the session is governed.
    return _warn_unless_ok(send("ping", {}))


def _warn_unless_ok(reply: dict[str, Any]) -> Verdict:
    if reply.get("ok"):
        return Verdict("none")
    return Verdict("none", warning=str(reply.get("error") or "corral: supervisor refused"))


def _fail(message: str) -> str:
    """Unusable input: the line for stderr (with exit status 2)."""
    return f"corral: integrations: {message}"
