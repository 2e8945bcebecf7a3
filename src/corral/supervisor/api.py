"""The session's local API: a unix socket, authenticated with a per-session token.

Hooks and wrappers (inside or outside the sandbox) reach the supervisor only through this socket.
Every request goes through the same pipeline as ``corral exec``; nothing here writes the journal
or grants except through the pipeline, and requests cannot name arbitrary events.

Protocol: one JSON object per line, each answered by one JSON object per line::

    {"token": "...", "op": "ping" | "decide" | "exec" | "event", ...}
    {"ok": true, ...}  |  {"ok": false, "error": "corral: <control>: <reason>"}
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import socket
import socketserver
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corral.supervisor.pipeline import Pipeline

MAX_REQUEST_BYTES = 1024 * 1024
# Events a hook may report; decisions and results of actions come from the pipeline itself.
REPORTABLE_EVENTS = ("agent.user_prompt", "agent.tool.result", "agent.mcp.call")
# Concurrent connections served at once; more are answered with one refusal line and closed.
MAX_CONNECTIONS = 64
# Ids a caller chooses live in their own namespace: they never name one of corral's calls.
CALLER_ID_PREFIX = "api:"
MAX_CALLER_ID = 128


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class _Server(socketserver.ThreadingUnixStreamServer):
    # The default backlog of 5 refuses (EAGAIN) a burst of concurrent hook calls.
    request_queue_size = 256
    daemon_threads = True
    max_connections = MAX_CONNECTIONS

    def server_activate(self) -> None:
        super().server_activate()
        self._slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, up to ``max_connections`` at once: past that the caller
        gets one refusal line, so a flood of idle connections cannot exhaust the supervisor."""
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b'{"ok": false, "error": "corral: supervisor: too many '
                                b'concurrent connections to this session"}\n')
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class SessionAPI:
    """Serves one session's pipeline on ``socket_path`` until ``stop()``."""

    def __init__(self, pipeline: Pipeline, socket_path: Path, token: str | None = None, *,
                 max_connections: int = MAX_CONNECTIONS, quota: Any = None) -> None:
        from corral.telemetry.quota import Quota, limits_from_config

        self.pipeline = pipeline
        self.socket_path = socket_path
        self.token = token or secrets.token_urlsafe(32)
        self.max_connections = max_connections
        self.quota = quota or Quota(pipeline.telemetry, "session_api",
                                    *limits_from_config(pipeline.cfg))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.calls = 0  # authenticated requests: whether the agent's hooks ever called in
        # Told of every shell decision a hook asked for (the exec boundary remembers it for
        # the exec that follows: ``corral.supervisor.execboundary``).
        self.on_shell_decision: Callable[[list[str], Path, Any], None] | None = None
        self._ops: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "ping": self._ping, "decide": self._decide, "exec": self._exec, "event": self._event,
            "mcp_tools": self._mcp_tools, "mcp_server": self._mcp_server,
        }

    @property
    def env(self) -> dict[str, str]:
        """What a client needs to reach this session."""
        return {"CORRAL_SUPERVISOR_SOCKET": str(self.socket_path),
                "CORRAL_SUPERVISOR_TOKEN": self.token}

    def start(self) -> None:
        api = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                if _peer_uid(self.connection) != os.getuid():
                    self._send({"ok": False, "error": "corral: supervisor: peer is another user"})
                    return
                while True:
                    line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
                    if not line:
                        return
                    if line.startswith(b"HOOK1 "):  # a hook call as it came (insandbox.relay)
                        self.wfile.write(api.handle_hook(line, self.rfile))
                        self.wfile.flush()
                        return
                    if len(line) > MAX_REQUEST_BYTES:
                        self._send({"ok": False, "error": "corral: supervisor: request too large"})
                        return
                    self._send(api.handle_line(line))

            def _send(self, reply: dict[str, Any]) -> None:
                self.wfile.write(json.dumps(reply).encode() + b"\n")
                self.wfile.flush()

        self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        old = os.umask(0o177)
        try:
            server = _Server(str(self.socket_path), Handler, bind_and_activate=False)
            server.max_connections = self.max_connections
            try:
                server.server_bind()
                server.server_activate()
            except BaseException:
                server.server_close()
                raise
        finally:
            os.umask(old)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="corral-session-api",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        with contextlib.suppress(Exception):
            self.quota.close()

    # -- requests ---------------------------------------------------------------------------

    def handle_line(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return {"ok": False, "error": "corral: supervisor: request is not JSON"}
        if not isinstance(req, dict):
            return {"ok": False, "error": "corral: supervisor: request is not a JSON object"}
        return self.handle_request(req)

    def handle_hook(self, head: bytes, rfile: Any) -> bytes:
        """One agent hook call relayed as it came (``corral.insandbox.relay``): the hook
        adapter runs here against this API, request by request as if they had come over the
        socket (the caller's token, the same size limit), and the answer goes back ready to
        print. Keeps the hook process free of JSON and the socket module."""
        from corral.insandbox import hooks, relay

        try:
            agent, token, sandboxed, cwd_len, size = relay.parse_request_head(head)
        except (ValueError, UnicodeDecodeError) as exc:
            return relay.answer("", 2, f"corral: supervisor: {exc}; refusing")
        cwd = rfile.read(cwd_len).decode("utf-8", "surrogateescape")
        raw = rfile.read(size)
        if len(raw) != size:
            return relay.answer("", 2, "corral: supervisor: hook request cut short; refusing")
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return relay.answer("", 2, f"corral: integrations: hook input is not JSON ({exc}); "
                                       "refusing")

        def send(op: str, fields: dict[str, Any]) -> dict[str, Any]:
            req = {"token": token, "op": op, **fields}
            if len(json.dumps(req)) >= MAX_REQUEST_BYTES:
                return {"ok": False, "error": "corral: supervisor: request too large"}
            return self.handle_request(req)

        try:
            out, code, err = hooks.answer(agent, payload, transport=send,
                                          caller=hooks.Caller(cwd, sandboxed))
        except Exception as exc:  # fail closed: exit 2 blocks the action in both agents
            return relay.answer("", 2, f"corral: integrations: hook failed "
                                       f"({type(exc).__name__}: {exc}); refusing")
        return relay.answer(out, code, err)

    def handle_request(self, req: dict[str, Any]) -> dict[str, Any]:
        from corral.errors import CorralError

        token = req.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(token, self.token):
            return {"ok": False, "error": "corral: supervisor: bad or missing session token"}
        self.calls += 1
        op = self._ops.get(str(req.get("op")))
        if op is None:
            return {"ok": False, "error": f"corral: supervisor: unknown op {req.get('op')!r}"}
        try:
            return {"ok": True, **op(req)}
        except CorralError as exc:
            return {"ok": False, "error": exc.line()}
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "error": f"corral: supervisor: bad request: {exc}"}

    def _argv_cwd(self, req: dict[str, Any]) -> tuple[list[str], Path]:
        from corral.errors import CorralError

        argv = req["argv"]
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a non-empty list of strings")
        cwd = Path(req.get("cwd") or self.pipeline.plan.cwd).resolve()
        roots = [self.pipeline.plan.cwd, *self.pipeline.plan.writable_roots]
        if not any(cwd == r or cwd.is_relative_to(r) for r in roots):
            raise CorralError("supervisor", f"cwd {cwd} is outside this session's workspace")
        return argv, cwd

    def _ping(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"session_id": self.pipeline.telemetry.session_id}

    def _decide(self, req: dict[str, Any]) -> dict[str, Any]:
        """``kind``: shell (default; argv), patch (files) or mcp (server, tool, arguments;
        ``method``: tools/call, resources/read with the URI as tool, prompts/get)."""
        kind = req.get("kind", "shell")
        if kind == "patch":
            files = req["files"]
            if not isinstance(files, list) or not files or not all(
                    isinstance(f, str) for f in files):
                raise ValueError("files must be a non-empty list of strings")
            _, cwd = self._argv_cwd({"argv": ["patch"], "cwd": req.get("cwd")})
            gate = self.pipeline.decide_patch(files, cwd)
        elif kind == "mcp":
            server, tool, args = req["server"], req["tool"], req.get("arguments")
            if not isinstance(server, str) or not isinstance(tool, str):
                raise ValueError("server and tool must be strings")
            ann, method = req.get("annotations"), req.get("method", "tools/call")
            if method not in ("tools/call", "resources/read", "prompts/get"):
                raise ValueError(f"unknown MCP method {method!r}")
            gate = self.pipeline.mcp.decide(
                server, tool, args if isinstance(args, str) else None,
                record_call=req.get("record", True) is not False,
                annotations=ann if isinstance(ann, dict) else None, method=method)
        elif kind == "shell":
            argv, cwd = self._argv_cwd(req)
            gate = self.pipeline.decide(argv, cwd)
            if self.on_shell_decision is not None:
                self.on_shell_decision(argv, cwd, gate)
        else:
            raise ValueError(f"unknown kind {kind!r}")
        return {"allowed": gate.allowed, "decision": gate.decision, "verdict": gate.verdict,
                "message": gate.message, "call_id": gate.call_id,
                "exit_code": gate.exit_code}

    def _mcp_tools(self, req: dict[str, Any]) -> dict[str, Any]:
        """An MCP gateway saw ``tools`` (name -> definition hash) from ``server``: compared
        with the server's pin (``supervisor.mcp``); changed tools ask again before a call."""
        server, tools = req["server"], req["tools"]
        if not isinstance(server, str) or not isinstance(tools, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in tools.items()):
            raise ValueError("server must be a string and tools an object of strings")
        d = self.pipeline.mcp.tools_seen(server, tools, req.get("complete", True) is True)
        return {"first": d.first, "added": list(d.added), "changed": list(d.changed),
                "removed": list(d.removed)}

    def _mcp_server(self, req: dict[str, Any]) -> dict[str, Any]:
        """An MCP gateway inside the sandbox asks whether ``server`` may start
        (``mcp.allowed_servers`` of this session's requirements) and for its limits."""
        from corral.rules.mcp import server_refusal, server_table

        server = req["server"]
        if not isinstance(server, str):
            raise ValueError("server must be a string")
        table = server_table(self.pipeline.cfg, server)
        return {"refusal": server_refusal(self.pipeline.cfg, server),
                "timeout_seconds": table.get("timeout_seconds"),
                "max_message_bytes": table.get("max_message_bytes")}

    def _exec(self, req: dict[str, Any]) -> dict[str, Any]:
        argv, cwd = self._argv_cwd(req)
        gate = self.pipeline.decide(argv, cwd)
        if not gate.allowed:
            return {"ran": False, "exit_code": gate.exit_code, "message": gate.message,
                    "decision": gate.decision, "verdict": gate.verdict}
        out = self.pipeline.execute(gate, capture=True)
        return {"ran": True, "exit_code": out.exit_code, "decision": gate.decision,
                "verdict": gate.verdict, "stdout": (out.stdout or b"").decode("utf-8", "replace"),
                "stderr": out.stderr or "", "violations": out.violations}

    def _event(self, req: dict[str, Any]) -> dict[str, Any]:
        from corral.errors import CorralError

        name = req.get("name")
        if name not in REPORTABLE_EVENTS:
            raise CorralError("supervisor", f"event {name!r} cannot be reported through the API")
        attrs = req.get("attributes") or {}
        if not isinstance(attrs, dict):
            raise ValueError("attributes must be an object")
        content = req.get("content")
        call_id = _caller_id(req.get("call_id"))
        if not self.quota.admit(len(json.dumps(req, default=str))):
            raise CorralError("supervisor", "this session's quota for reported events is used "
                              "up; the report was counted, not recorded")
        if name == "agent.user_prompt":  # a claim: never the user's request, never a new turn
            prompt = content.get("prompt") if isinstance(content, dict) else None
            self.pipeline.agent_reported_prompt(prompt if isinstance(prompt, str) else None)
        ev = self.pipeline.telemetry.emit(str(name), attrs, call_id=call_id,
                                          content=content if isinstance(content, dict) else None,
                                          origin="session_api")
        return {"event_id": ev.id, "call_id": call_id}


def _caller_id(value: Any) -> str | None:
    """A caller's call id in the ``api:`` namespace (corral's own are ``call-N``)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_CALLER_ID:
        raise ValueError(f"call_id must be a string of at most {MAX_CALLER_ID} characters")
    return CALLER_ID_PREFIX + value


def call(op: str, *, socket_path: str | None = None, token: str | None = None,
         timeout: float = 600.0, **fields: Any) -> dict[str, Any]:
    """Client side: one request to the session named by the environment (or the arguments)."""
    from corral.errors import CorralError
    from corral.insandbox.client import ClientError, exchange

    path = socket_path or os.environ.get("CORRAL_SUPERVISOR_SOCKET")
    tok = token or os.environ.get("CORRAL_SUPERVISOR_TOKEN")
    if not path or not tok:
        raise CorralError("supervisor", "no supervisor session (CORRAL_SUPERVISOR_SOCKET unset)")
    try:
        return exchange(path, tok, op, fields, timeout)
    except ClientError as exc:
        raise CorralError("supervisor", str(exc)) from None
