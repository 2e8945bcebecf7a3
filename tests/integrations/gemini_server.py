"""A scripted model server speaking the Gemini API (``generativelanguage.googleapis.com``
``v1beta``: ``models/M:streamGenerateContent?alt=sse``, ``:generateContent``, ``:countTokens``),
for driving the real Gemini CLI in tests through ``GOOGLE_GEMINI_BASE_URL``.

Requests that offer function declarations (the agent loop) get the next scripted turn; side
requests without tools (summaries, next-speaker checks, routing) get a short text. Every request
body is kept, so a test can read what the CLI sent back (the function responses the model saw).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.integrations.model_server import ModelServer, QuietHandler

GTurn = Callable[[dict[str, Any]], list[dict[str, Any]]]  # request body -> content parts


def call(name: str, args: dict[str, Any]) -> GTurn:
    """A turn that calls one of the CLI's tools (``run_shell_command``, ``write_file``...)."""
    def turn(req: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"functionCall": {"name": name, "args": args}}]
    return turn


def shell(command: str) -> GTurn:
    return call("run_shell_command", {"command": command, "description": "run it"})


def say(reply: str) -> GTurn:
    def turn(req: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"text": reply}]
    return turn


def _tools(req: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for tool in req.get("tools") or []:
        for decl in (tool.get("functionDeclarations") or []) if isinstance(tool, dict) else []:
            if isinstance(decl, dict) and isinstance(decl.get("name"), str):
                names.append(decl["name"])
    return names


def _response(parts: list[dict[str, Any]], model: str) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": parts},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5,
                              "totalTokenCount": 15},
            "modelVersion": model}


class GeminiServer(ModelServer):
    """Scripted Gemini API. ``requests`` holds the agent-loop requests (with tools), in order."""

    @property
    def root_url(self) -> str:
        assert self._server is not None
        return f"{self.scheme}://{self.host}:{self._server.server_address[1]}"

    def start(self) -> GeminiServer:
        srv = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                srv.paths.append(f"GET {self.path}")
                self._send("application/json", b'{"models": []}')

            def do_POST(self) -> None:
                srv.auth.append(self.headers.get("x-goog-api-key") or "")
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                srv.paths.append(f"POST {self.path}")
                srv.raw.append(raw)
                try:
                    req = json.loads(raw)
                except ValueError:
                    req = {}
                path = self.path.split("?", 1)[0]
                model = path.rsplit("/", 1)[-1].split(":", 1)[0]
                if path.endswith(":countTokens"):
                    self._send("application/json", b'{"totalTokens": 10}')
                    return
                if not (path.endswith(":streamGenerateContent")
                        or path.endswith(":generateContent")):
                    self._send("application/json", json.dumps(
                        {"error": {"code": 404, "message": f"no {path}",
                                   "status": "NOT_FOUND"}}).encode(), 404)
                    return
                with srv._lock:
                    if _tools(req):
                        srv.requests.append(req)
                        turn = srv.turns.pop(0) if srv.turns else say("done")
                    else:
                        turn = say('{"reasoning": "scripted", "next_speaker": "user"}')
                doc = _response(turn(req), model)
                if path.endswith(":streamGenerateContent"):
                    self._send("text/event-stream", f"data: {json.dumps(doc)}\r\n\r\n".encode())
                else:
                    self._send("application/json", json.dumps(doc).encode())

        self._listen(Handler)
        return self

    def tool_outputs(self) -> list[str]:
        """Every functionResponse the CLI sent back, in order (as JSON text)."""
        outs: list[str] = []
        seen = 0
        for req in self.requests:  # each request repeats the history: count only new ones
            found = [json.dumps(p["functionResponse"]) for c in req.get("contents", [])
                     if isinstance(c, dict) for p in c.get("parts", [])
                     if isinstance(p, dict) and isinstance(p.get("functionResponse"), dict)]
            outs.extend(found[seen:])
            seen = len(found)
        return outs
