"""A real HTTP server on 127.0.0.1 speaking the OpenAI Chat Completions API, with scripted
replies, recording every request it receives. Used to test the LLM reviewer end to end."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    content: str | None = None  # the assistant message text
    status: int = 200
    delay: float = 0.0  # seconds to wait before answering
    raw_body: bytes | None = None  # send these bytes instead of a completion object
    refusal: str | None = None
    finish_reason: str = "stop"


def verdict(outcome: str, risk: str = "low", auth: str = "unknown",
            rationale: str = "scripted") -> Reply:
    return Reply(json.dumps({"outcome": outcome, "risk_level": risk,
                             "user_authorization": auth, "rationale": rationale}))


class OpenAIServer:
    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with server._lock:
                    server.requests.append(json.loads(body))
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    reply = server.replies.pop(0) if server.replies else Reply(
                        status=500, raw_body=b'{"error": {"message": "no scripted reply"}}')
                if not self.path.endswith("/chat/completions"):
                    reply = Reply(status=404, raw_body=b'{"error": {"message": "not found"}}')
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.raw_body is not None:
                    data = reply.raw_body
                elif reply.status != 200:
                    data = json.dumps({"error": {"message": f"scripted {reply.status}",
                                                 "type": "server_error"}}).encode()
                else:
                    data = json.dumps({
                        "id": "chatcmpl-test", "object": "chat.completion",
                        "created": int(time.time()), "model": "test-model",
                        "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                                     "message": {"role": "assistant", "content": reply.content,
                                                 "refusal": reply.refusal}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                  "total_tokens": 2},
                    }).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (deadline): that is the point of the test

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> OpenAIServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
