"""A scripted model server speaking the OpenAI Responses API (streaming SSE), for driving the
real Codex CLI in tests: each request gets the next scripted turn, and every request body is kept
so a test can read what the agent sent back (e.g. the tool output the model saw)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Turn = Callable[[dict[str, Any]], list[dict[str, Any]]]  # request body -> output items


def shell_call(command: str, call_id: str = "call_1") -> Turn:
    """A turn that calls the agent's shell tool (whichever name it advertised)."""
    def turn(req: dict[str, Any]) -> list[dict[str, Any]]:
        names = {t.get("name") for t in req.get("tools", []) if isinstance(t, dict)}
        if "exec_command" in names:
            name, args = "exec_command", {"cmd": command}
        elif "shell_command" in names:
            name, args = "shell_command", {"command": command}
        else:
            name, args = "shell", {"command": ["bash", "-lc", command]}
        return [{"type": "function_call", "name": name, "arguments": json.dumps(args),
                 "call_id": call_id, "id": f"fc_{call_id}"}]
    return turn


def message(text: str) -> Turn:
    def turn(req: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"type": "message", "role": "assistant", "id": "msg_1",
                 "content": [{"type": "output_text", "text": text, "annotations": []}]}]
    return turn


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1, no request log, and ``_send`` for a whole answer (the scripted servers')."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, ctype: str, data: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ModelServer:
    def __init__(self, turns: list[Turn], host: str = "127.0.0.1") -> None:
        self.turns = list(turns)
        self.host = host  # e.g. 127.0.0.2: loopback, but not in the sandbox's NO_PROXY
        self.raw: list[bytes] = []  # every request body, model turn or not
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.auth: list[str] = []  # every request's Authorization / x-api-key header
        # HTTPS with this context when set (tests/integrations/test_run_broker.py)
        self.tls: ssl.SSLContext | None = None
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"{self.scheme}://{self.host}:{self._server.server_address[1]}/v1"

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def _listen(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer((self.host, 0), handler)
        self._server.daemon_threads = True
        if self.tls is not None:  # HTTPS: handshakes in the handler threads, not in accept
            self._server.socket = self.tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def start(self) -> ModelServer:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                srv.paths.append(f"GET {self.path}")
                srv.auth.append(self.headers.get("Authorization") or "")
                self._json({"object": "list", "data": [], "models": []})

            def _json(self, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                srv.auth.append(self.headers.get("Authorization") or "")
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                srv.paths.append(f"POST {self.path}")
                srv.raw.append(raw)
                try:
                    req = json.loads(raw)
                except ValueError:
                    req = {}
                if not self.path.rstrip("/").endswith("/responses"):
                    self._json({})  # analytics and other side calls: not a model turn
                    return
                with srv._lock:
                    srv.requests.append(req)
                    turn = srv.turns.pop(0) if srv.turns else message("done")
                items = turn(req)
                n = len(srv.requests)
                events = [{"type": "response.created", "response": {"id": f"resp_{n}"}}]
                events += [{"type": "response.output_item.done", "output_index": i, "item": it}
                           for i, it in enumerate(items)]
                events.append({"type": "response.completed", "response": {
                    "id": f"resp_{n}", "usage": {
                        "input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
                        "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                        "total_tokens": 15}}})
                body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._listen(Handler)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def tool_outputs(self) -> list[str]:
        """Every function_call_output the agent sent back, in order."""
        outs: list[str] = []
        for req in self.requests:
            for item in req.get("input", []):
                if isinstance(item, dict) and item.get("type") == "function_call_output":
                    out = item.get("output")
                    outs.append(out if isinstance(out, str) else json.dumps(out))
        return outs


# -- Anthropic Messages API (for Claude Code) ---------------------------------------------------

ATurn = Callable[[dict[str, Any]], list[dict[str, Any]]]  # request -> content blocks


def bash_use(command: str, tool_id: str = "toolu_1") -> ATurn:
    def turn(req: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"type": "tool_use", "id": tool_id, "name": "Bash",
                 "input": {"command": command, "description": "run it"}}]
    return turn


def tool_use(name: str, tool_input: dict[str, Any], tool_id: str = "toolu_1") -> ATurn:
    def turn(req: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}]
    return turn


def text(reply: str) -> ATurn:
    def turn(req: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"type": "text", "text": reply}]
    return turn


def _sse(blocks: list[dict[str, Any]], model: str) -> bytes:
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    events: list[dict[str, Any]] = [{"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1}}}]
    for i, b in enumerate(blocks):
        if b["type"] == "text":
            events.append({"type": "content_block_start", "index": i,
                           "content_block": {"type": "text", "text": ""}})
            events.append({"type": "content_block_delta", "index": i,
                           "delta": {"type": "text_delta", "text": b["text"]}})
        else:
            events.append({"type": "content_block_start", "index": i, "content_block": {
                "type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}})
            events.append({"type": "content_block_delta", "index": i, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(b["input"])}})
        events.append({"type": "content_block_stop", "index": i})
    events.append({"type": "message_delta", "delta": {"stop_reason": stop,
                                                      "stop_sequence": None},
                   "usage": {"output_tokens": 5}})
    events.append({"type": "message_stop"})
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


class AnthropicServer(ModelServer):
    """Scripted Messages API: requests that offer tools (the agent loop) get the next turn;
    side requests (titles, summaries) get a short text."""

    def start(self) -> AnthropicServer:
        srv = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                srv.paths.append(f"GET {self.path}")
                self._send("application/json", b'{"data": []}')

            def do_POST(self) -> None:
                srv.auth.append(self.headers.get("x-api-key") or
                                self.headers.get("Authorization") or "")
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                srv.paths.append(f"POST {self.path}")
                srv.raw.append(raw)
                try:
                    req = json.loads(raw)
                except ValueError:
                    req = {}
                if "count_tokens" in self.path:
                    self._send("application/json", b'{"input_tokens": 10}')
                    return
                model = str(req.get("model", "claude"))
                with srv._lock:
                    if req.get("tools"):
                        srv.requests.append(req)
                        turn = srv.turns.pop(0) if srv.turns else text("done")
                    else:
                        turn = text("ok")
                blocks = turn(req)
                if req.get("stream"):
                    self._send("text/event-stream", _sse(blocks, model))
                    return
                self._send("application/json", json.dumps({
                    "id": "msg_1", "type": "message", "role": "assistant", "model": model,
                    "content": blocks, "stop_reason": "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": 10, "output_tokens": 5}}).encode())

        self._listen(Handler)
        return self

    @property
    def root_url(self) -> str:
        assert self._server is not None
        return f"{self.scheme}://{self.host}:{self._server.server_address[1]}"

    def tool_outputs(self) -> list[str]:
        outs: list[str] = []
        for req in self.requests:
            for msg in req.get("messages", []):
                content = msg.get("content") if isinstance(msg, dict) else None
                if not isinstance(content, list):
                    continue
                for block in content:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        c = block.get("content")
                        outs.append(c if isinstance(c, str) else json.dumps(c))
        return outs
