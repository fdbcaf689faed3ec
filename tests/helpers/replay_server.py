"""A stand-in for an external LLM API (GPT-4 behind OpenAI's chat completions) in tests.

A real ``ThreadingHTTPServer`` on 127.0.0.1 that answers ``POST /v1/chat/completions`` with recorded
replies chosen by the prompt, reports its own model id, records every request (body and headers),
and can misbehave on demand: HTTP 500 (echoing the Authorization header, as a careless proxy might),
a dropped connection, or a reply slower than the client's timeout. It stands in for the external
service only; the judge, the adapter and the CLI under test are the real ones.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# "500" | "400" | "close" | "sleep", or a 200 reply that is no chat completion: "html", "null-message",
# "choices-string", "json-list", "no-choices"; "429" (with Retry-After: 1); "echo-key" (a reply whose text
# quotes the Authorization header).
Failure = str
_NOT_A_COMPLETION: dict[str, tuple[str, bytes]] = {
    "html": ("text/html", b"<html><body>502 Bad Gateway</body></html>"),
    "null-message": ("application/json", b'{"model": "m", "choices": [{"index": 0, "message": null}]}'),
    "choices-string": ("application/json", b'{"model": "m", "choices": "oops"}'),
    "json-list": ("application/json", b'[{"choices": []}]'),
    "no-choices": ("application/json", b'{"model": "m", "choices": []}'),
}


class ReplayServer:
    """``replies``: (substring of the last user message, reply) pairs, first match wins; else ``default``."""

    def __init__(
        self,
        replies: list[tuple[str, str]] | Callable[[str], str] | None = None,
        default: str = "",
        model_id: str = "gpt-4-0613-replay",
        delay_s: float = 0.0,
        sleep_s: float = 2.0,
    ) -> None:
        self.replies = replies or []
        self.default = default
        self.model_id = model_id
        self.delay_s = delay_s  # every answer takes this long (concurrency tests)
        self.sleep_s = sleep_s  # how long a "sleep" failure stalls
        self.failures: deque[Failure] = deque()  # consumed one per request
        self.always: Failure | None = None  # fail every request this way
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> ReplayServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def prompts(self) -> list[str]:
        return [last_user_text(r["body"]) for r in self.requests]

    def reply_for(self, prompt: str) -> str:
        if callable(self.replies):
            return self.replies(prompt)
        for needle, reply in self.replies:
            if needle in prompt:
                return reply
        return self.default

    def next_failure(self) -> Failure | None:
        with self._lock:
            if self.always:
                return self.always
            return self.failures.popleft() if self.failures else None


def last_user_text(body: dict[str, Any]) -> str:
    content = [m for m in body.get("messages", []) if m.get("role") == "user"][-1]["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


def _make_handler(replay: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(
            self,
            status: int,
            payload: Any,
            content_type: str = "application/json",
            headers: dict[str, str] | None = None,
        ) -> None:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with replay._lock:
                replay.requests.append({"body": body, "headers": {k.lower(): v for k, v in self.headers.items()}})
                replay.in_flight += 1
                replay.max_in_flight = max(replay.max_in_flight, replay.in_flight)
            try:
                self._answer(body)
            finally:
                with replay._lock:
                    replay.in_flight -= 1

        def _answer(self, body: dict[str, Any]) -> None:
            failure = replay.next_failure()
            if failure == "close":
                self.close_connection = True
                self.connection.shutdown(2)  # drop it without a status line
                return
            if failure == "sleep":
                time.sleep(replay.sleep_s)
            if failure in ("500", "400"):
                echo = f"upstream failed for {self.headers.get('Authorization')}"
                self._send(int(failure), {"error": {"message": echo, "type": "server_error"}})
                return
            if failure == "429":
                error = {"error": {"message": "rate limited", "type": "rate_limit"}}
                self._send(429, error, headers={"Retry-After": "1"})
                return
            if failure in _NOT_A_COMPLETION:
                content_type, raw = _NOT_A_COMPLETION[failure]
                self._send(200, raw, content_type)
                return
            time.sleep(replay.delay_s)
            text = replay.reply_for(last_user_text(body))
            if failure == "echo-key":
                text = f"0.5 (you sent {self.headers.get('Authorization')})"
            self._send(200, {
                "id": "chatcmpl-replay",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": replay.model_id,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            })  # fmt: skip

    return Handler


@contextmanager
def replay_server(**kwargs: Any) -> Iterator[ReplayServer]:
    server = ReplayServer(**kwargs).start()
    try:
        yield server
    finally:
        server.close()
