"""``harness serve``: an OpenAI-compatible chat-completions server over any model adapter.

Standard library only (``http.server.ThreadingHTTPServer``). Endpoints:

- ``POST /v1/chat/completions``: one answer in the OpenAI schema (``harness.serve.chat_request`` says how
  the messages become a request). Concurrent requests are batched into one ``generate`` call.
- ``GET /v1/models``: the served model; ``GET /health``: status and batching counters.

Bad requests get HTTP 400 with an OpenAI-style error naming the field (``param``); a model error
gets HTTP 500 with its message. ``--judge demo`` uses the same server in-process.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from harness.adapter import ModelAdapter
from harness.serve.batcher import Batcher
from harness.serve.chat_request import BadRequest, parse_chat_request
from harness.types import Request, Response

MAX_BODY_BYTES = 64 << 20
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
MODELS_PATHS = ("/v1/models", "/models")
HEALTH_PATHS = ("/health", "/v1/health")


def completion_body(request: Request, response: Response, served_name: str) -> dict[str, Any]:
    """The OpenAI ``chat.completion`` object for one answer."""
    hit_limit = response.output_tokens >= request.generation.max_new_tokens
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": served_name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": response.text},
                "finish_reason": "length" if hit_limit else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": response.prompt_tokens,
            "completion_tokens": response.output_tokens,
            "total_tokens": response.prompt_tokens + response.output_tokens,
        },
    }


def error_body(message: str, kind: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


class _Handler(BaseHTTPRequestHandler):
    server: ChatHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: every reply carries Content-Length

    def _send(self, status: int, payload: Mapping[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _path(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def do_GET(self) -> None:
        path = self._path()
        app = self.server.app
        if path in MODELS_PATHS:
            self._send(200, {"object": "list", "data": [app.model_card()]})
        elif path in HEALTH_PATHS:
            self._send(200, {"status": "ok", "model": app.served_name, **app.batcher.stats.as_dict()})
        else:
            self._send(404, error_body(f"no route GET {path}", "not_found_error"))

    def do_POST(self) -> None:
        path = self._path()
        try:
            body = self._read_json()
        except BadRequest as exc:
            self._send(exc.status, error_body(exc.message, "invalid_request_error", exc.param))
            return
        if path not in CHAT_PATHS:
            self._send(404, error_body(f"no route POST {path}", "not_found_error"))
            return
        status, payload = self.server.app.answer(body)
        self._send(status, payload)

    def _read_json(self) -> Any:
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self.close_connection = True
            raise BadRequest("Content-Length", "required (chunked bodies are not supported)", 411)
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise BadRequest("Content-Length", f"body too large ({length} bytes; at most {MAX_BODY_BYTES})", 413)
        raw = self.rfile.read(length)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest("body", f"not valid JSON: {exc}") from None
        except RecursionError:
            raise BadRequest("body", "JSON nested too deeply") from None

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.app.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class ChatApp:
    """What the HTTP layer calls: request parsing, the batcher, the response schema."""

    def __init__(self, adapter: ModelAdapter, batch_size: int, served_name: str, wait_s: float, verbose: bool) -> None:
        self.adapter = adapter
        self.served_name = served_name
        self.verbose = verbose
        self.created = int(time.time())
        self.batcher = Batcher(adapter, batch_size, wait_s)

    def model_card(self) -> dict[str, Any]:
        info = self.adapter.info
        return {"id": self.served_name, "object": "model", "created": self.created, "owned_by": "harness",
                "harness": {"spec": info.spec, "fingerprint": info.fingerprint, "is_demo": info.is_demo}}  # fmt: skip

    def answer(self, body: Any) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON payload) for one chat-completions body."""
        try:
            request = parse_chat_request(body)
        except BadRequest as exc:
            return exc.status, error_body(exc.message, "invalid_request_error", exc.param)
        job = self.batcher.submit(request)
        if job.bad_input is not None:
            return 400, error_body(f"messages: the model cannot take this input: {job.bad_input}",
                                   "invalid_request_error", "messages")  # fmt: skip
        response = job.response or Response(error="no response")
        if response.error is not None:
            return 500, error_body(f"model error: {response.error}", "server_error")
        return 200, completion_body(request, response, self.served_name)


class ChatHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: ChatApp) -> None:
        self.app = app
        super().__init__(address, _Handler)


class ChatServer:
    """The server and its batcher; ``start()`` serves in a background thread, ``serve_forever()`` here."""

    def __init__(
        self,
        adapter: ModelAdapter,
        host: str = "127.0.0.1",
        port: int = 8000,
        batch_size: int = 8,
        served_name: str | None = None,
        wait_s: float = 0.005,
        verbose: bool = False,
        owns_adapter: bool = True,
    ) -> None:
        self.app = ChatApp(adapter, batch_size, served_name or adapter.info.name, wait_s, verbose)
        try:
            self.httpd = ChatHTTPServer((host, port), self.app)
        except OSError:
            self.app.batcher.close()
            raise
        self._owns_adapter = owns_adapter
        self._serving = False
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/v1"

    def serve_forever(self) -> None:
        self._serving = True
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self._serving = False

    def start(self) -> ChatServer:
        self._serving = True
        self._thread = threading.Thread(target=self.serve_forever, name="harness-serve", daemon=True)
        self._thread.start()
        return self

    def close(self) -> bool:
        """Stop accepting, give the batch in flight a few seconds to finish, release the model. False when the
        batch is still running (the model is then left to the exiting process)."""
        if self._closed:
            return True
        self._closed = True
        if self._serving:
            self.httpd.shutdown()
        self.httpd.server_close()
        finished = self.app.batcher.close()
        if self._owns_adapter and finished:
            self.app.adapter.close()
        return finished


def start_server(
    adapter: ModelAdapter, host: str, port: int, batch_size: int = 8, served_name: str | None = None
) -> ChatServer:
    """A server running in a background thread (``close()`` stops it and releases the adapter)."""
    return ChatServer(adapter, host, port, batch_size, served_name).start()


@dataclass
class ServeOptions:
    model: str
    model_args: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    batch_size: int = 8
    served_model_name: str | None = None
    device: str | None = None
    seed: int = 0
    batch_wait_ms: float = 5.0
    verbose: bool = False


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(options: ServeOptions) -> int:
    """Load the model, print the URL, serve until Ctrl-C or SIGTERM."""
    from harness.errors import UsageError
    from harness.registry import get_adapter_class, parse_model_args, parse_model_spec

    adapter_name, target = parse_model_spec(options.model)
    adapter_cls = get_adapter_class(adapter_name)
    adapter = adapter_cls.from_spec(target, parse_model_args(options.model_args), options.device, options.seed)
    try:
        server = ChatServer(adapter, options.host, options.port, options.batch_size, options.served_model_name,
                            options.batch_wait_ms / 1000, options.verbose)  # fmt: skip
    except OSError as exc:
        adapter.close()
        where = f"{options.host}:{options.port}"
        raise UsageError(f"--host/--port: cannot listen on {where}: {exc.strerror or exc}") from exc
    info = adapter.info
    demo = " [DEMO MODEL]" if info.is_demo else ""
    old = signal.signal(signal.SIGTERM, _raise_interrupt)  # before the URL is out: clients may stop us at once
    try:
        print(f"serving {info.spec}{demo} as '{server.app.served_name}' at {server.url} "
              "(POST /chat/completions, GET /models, GET /health); Ctrl-C to stop", flush=True)  # fmt: skip
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        finished = server.close()
    if not finished:
        # A generation is still running in the worker thread: end now rather than wait for it (an ordinary
        # interpreter exit under a running torch kernel can abort).
        print("server stopped (the batch in flight was abandoned)", flush=True)
        sys.stderr.flush()
        os._exit(0)
    print("server stopped", flush=True)
    return 0
