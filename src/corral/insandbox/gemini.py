"""Gemini CLI's hooks in corral's terms (``corral.insandbox.hooks`` does the rest).

Gemini CLI (npm ``@google/gemini-cli``, 0.61) runs a command for each hook event in
``settings.json`` with one JSON object on stdin (``session_id``, ``cwd``, ``hook_event_name``,
``timestamp`` and the event's fields) and reads one JSON object from stdout:

* ``BeforeTool`` (``tool_name``, ``tool_input``, ``mcp_context`` for MCP tools) fires right before
  a tool runs, after Gemini's own approval. ``{"decision": "deny", "reason": R}`` stops it, and
  the model gets ``Tool execution blocked: R`` as the tool's error; the turn goes on.
* ``AfterTool`` adds ``tool_response`` (``llmContent``, ``returnDisplay``, ``error``).
* ``BeforeAgent`` carries the user's ``prompt``; ``SessionStart``, ``SessionEnd``,
  ``AfterAgent``... are lifecycle events (``systemMessage`` is shown to the user).
* Exit status 2 blocks the action with stderr as the reason; any other non-zero status, a hook
  that times out (default 60 s) or crashes is only a warning, and the tool RUNS. corral's hook
  therefore always answers with status 0 and a decision, or 2.

Its tools: ``run_shell_command`` (``command``, ``dir_path`` relative to the project),
``write_file`` and ``replace`` (``file_path``), ``read_file``, ``read_many_files``,
``list_directory``, ``glob``, ``grep_search``, ``web_fetch``, ``google_web_search``, and MCP
tools named ``mcp_<server>_<tool>`` (the server and tool are in ``mcp_context``).

``normalize`` turns a Gemini call into the Claude Code/Codex shape the adapter handles (event
names, ``mcp__server__tool``, ``workdir``, a tool response with ``output``/``success``);
``render`` writes the verdict in Gemini's format. Stdlib only (runs inside the sandbox).
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Gemini's events -> the names corral.insandbox.hooks dispatches on
EVENTS = {"BeforeTool": "PreToolUse", "AfterTool": "PostToolUse",
          "BeforeAgent": "UserPromptSubmit"}
MCP_PREFIX = "mcp_"


def _mcp_name(name: str, context: Any) -> str:
    """``mcp__SERVER__TOOL`` for a Gemini MCP tool: from ``mcp_context`` when Gemini sent it,
    else from the name (``mcp_SERVER_TOOL``: a server name with ``_`` splits at its first)."""
    ctx = context if isinstance(context, dict) else {}
    server, tool = ctx.get("server_name"), ctx.get("tool_name")
    if not (isinstance(server, str) and server and isinstance(tool, str) and tool):
        server, _, tool = name[len(MCP_PREFIX):].partition("_")
    return f"mcp__{server or 'unknown'}__{tool or name}"


def _exit_code(text: str) -> int | None:
    """``Exit Code: N`` from run_shell_command's output (Gemini puts it there when not 0)."""
    at = text.rfind("Exit Code: ")
    if at < 0:
        return None
    digits = ""
    for ch in text[at + 11:at + 15]:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else None


def _response(resp: Any, shell: bool) -> Any:
    if not isinstance(resp, dict):
        return resp
    content = resp.get("llmContent")
    output = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False,
                                                                  default=str)
    out: dict[str, Any] = {"output": output, "success": resp.get("error") in (None, "", {})}
    if resp.get("error") not in (None, "", {}):
        out["error"] = resp["error"]
    code = _exit_code(output) if shell else None
    if code is not None:
        out["exit_code"] = code
    elif shell and out["success"]:
        out["exit_code"] = 0
    return out


def normalize(payload: dict[str, Any]) -> dict[str, Any]:
    """Gemini's hook call in the shape ``corral.insandbox.hooks`` handles."""
    out = dict(payload)
    event = payload.get("hook_event_name")
    if isinstance(event, str):
        out["hook_event_name"] = EVENTS.get(event, event)
    name = payload.get("tool_name")
    inp = payload.get("tool_input")
    if isinstance(name, str) and name.startswith(MCP_PREFIX):
        out["tool_name"] = _mcp_name(name, payload.get("mcp_context"))
    elif name == "run_shell_command" and isinstance(inp, dict):
        where = inp.get("dir_path")
        if isinstance(where, str) and where:  # relative to the project (the call's cwd)
            out["tool_input"] = {**inp, "workdir": where}
    if "tool_response" in payload:
        out["tool_response"] = _response(payload["tool_response"],
                                         name == "run_shell_command")
    return out


def render(event: str, action: str, reason: str, warning: str) -> tuple[str, int]:
    """stdout and exit status for Gemini's ``event`` (its own name): a deny with the reason the
    model reads (``BeforeTool``: the tool does not run; ``AfterTool``: the reason replaces the
    result), otherwise nothing to change. ``warning`` is shown to the user."""
    out: dict[str, Any] = {}
    if action == "deny" and event in ("BeforeTool", "AfterTool"):
        out = {"decision": "deny", "reason": reason}
    if warning:
        out["systemMessage"] = warning
    return (json.dumps(out) if out else ""), 0
