"""``harness serve`` (OpenAI-compatible server over our adapters) and the ``openai`` model adapter.

A real server subprocess on 127.0.0.1 over a tiny fabricated checkpoint; the ``openai`` client and
plain HTTP talk to it; answers are compared with the tinyllava adapter's own.
"""

from __future__ import annotations

import base64
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from PIL import Image

from harness.errors import UsageError
from harness.results.schema import load_results
from harness.types import GenerationSettings, ImageRef, Request, Response
from model_adapters.openai_api import OpenAIAdapter, chat_messages, image_data_url, user_content
from model_adapters.tinyllava import TinyLlavaAdapter
from tests.helpers.paths import REPO as REPO_ROOT
from tests.helpers.tiny_checkpoints import make_tiny_llava

REPO = REPO_ROOT
SERVED = "tiny-served"
QUESTIONS = [
    "What colour is the circle?",
    "Is there a red square in the image? Please answer yes or no.",
    "How many stars are there? Answer the question using a single word or phrase.",
    "Where is the triangle?",
    "Describe the picture.",
    "What shape is yellow?",
    "Count.",
    "Is the blue diamond on the left?",
]
SIZES = [(32, 32), (48, 20), (20, 48), (64, 40)]


class Server:
    """A ``python -m harness serve`` subprocess; the URL is read from its first line."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
        try:
            first = lines.get(timeout=120)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError("the server printed no URL within 120 s") from None
        assert "http://127.0.0.1:" in first, first + self.proc.stderr.read()  # type: ignore[union-attr]
        self.banner = first
        self.url = first.split(" at ")[1].split()[0]

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=60)
        return self.proc.returncode, out


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llava(tmp_path_factory.mktemp("ckpt") / "tiny", tower="siglip", template="phi")


@pytest.fixture(scope="module")
def server(ckpt: Path) -> Iterator[Server]:
    running = Server("--model", f"tinyllava:{ckpt}", "--device", "cpu", "--served-model-name", SERVED,
                     "--batch-size", "8", "--batch-wait-ms", "20")  # fmt: skip
    yield running
    code, out = running.stop()
    assert code == 0 and "server stopped" in out


@pytest.fixture(scope="module")
def reference(ckpt: Path) -> TinyLlavaAdapter:
    return TinyLlavaAdapter.from_spec(str(ckpt), {}, "cpu", 0)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    paths = []
    for i, (w, h) in enumerate(SIZES):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def local_answers(adapter: TinyLlavaAdapter, requests: list[Request]) -> list[Response]:
    prepare = adapter.preparer()
    return [adapter.generate([r], [prepare(r)])[0] for r in requests]


def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def post(server: Server, body: Any, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.url}/chat/completions", data=data, method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(server: Server, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(server.url.removesuffix("/v1") + path, timeout=30) as reply:
        return json.loads(reply.read())


# ---------------------------------------------------------------------------------------------
# The server


def test_models_and_health(server: Server) -> None:
    models = client(server).models.list()
    assert [m.id for m in models.data] == [SERVED]
    health = get(server, "/health")
    assert health["status"] == "ok" and health["model"] == SERVED


def test_text_answers_equal_the_adapter_own(server: Server, reference: TinyLlavaAdapter) -> None:
    question = QUESTIONS[0]
    reply = client(server).chat.completions.create(
        model=SERVED, messages=[{"role": "user", "content": question}], max_tokens=12, temperature=0
    )
    expected = local_answers(reference, [Request("t", "0", question, generation=GenerationSettings(12))])[0]
    assert reply.object == "chat.completion" and reply.model == SERVED and reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].finish_reason in ("stop", "length")
    assert reply.choices[0].message.content == expected.text
    assert reply.usage is not None and reply.usage.prompt_tokens == expected.prompt_tokens
    assert reply.usage.completion_tokens == expected.output_tokens


def test_system_message_and_stop_reach_the_model(server: Server, reference: TinyLlavaAdapter) -> None:
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": QUESTIONS[4]}]
    reply = client(server).chat.completions.create(model=SERVED, messages=messages, max_tokens=16)  # type: ignore[arg-type]
    request = Request("t", "0", QUESTIONS[4], generation=GenerationSettings(16), system="You are terse.")
    expected = local_answers(reference, [request])[0]
    assert reply.choices[0].message.content == expected.text
    assert reply.usage is not None and reply.usage.prompt_tokens == expected.prompt_tokens
    default = local_answers(reference, [Request("t", "0", QUESTIONS[4], generation=GenerationSettings(16))])[0]
    assert default.prompt_tokens != expected.prompt_tokens  # the system message was not the default one


def test_image_data_urls_reach_the_model(server: Server, reference: TinyLlavaAdapter, images: list[Path]) -> None:
    api = client(server)
    for path, question in zip(images, QUESTIONS):
        content = [{"type": "image_url", "image_url": {"url": data_url(path)}}, {"type": "text", "text": question}]
        reply = api.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": content}],  # type: ignore[misc,list-item]
                                            max_tokens=10)  # fmt: skip
        request = Request("t", "0", f"<image>\n{question}", (ImageRef(path=str(path)),), GenerationSettings(10))
        expected = local_answers(reference, [request])[0]
        assert reply.choices[0].message.content == expected.text
        # the image's tokens were in the prompt the model saw
        assert reply.usage is not None and reply.usage.prompt_tokens == expected.prompt_tokens
        text_only = local_answers(reference, [Request("t", "0", question, generation=GenerationSettings(10))])[0]
        assert expected.prompt_tokens - text_only.prompt_tokens >= 16


def test_concurrent_requests_are_batched_with_the_same_answers(server: Server, images: list[Path]) -> None:
    api = client(server)

    def ask(i: int) -> str:
        content = [{"type": "image_url", "image_url": {"url": data_url(images[i % len(images)])}},
                   {"type": "text", "text": QUESTIONS[i]}]  # fmt: skip
        reply = api.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": content}],  # type: ignore[misc,list-item]
                                            max_tokens=12)  # fmt: skip
        return reply.choices[0].message.content or ""

    sequential = [ask(i) for i in range(8)]
    before = get(server, "/health")
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(ask, range(8)))
    after = get(server, "/health")
    assert concurrent == sequential
    assert after["requests"] - before["requests"] == 8
    assert after["batches"] - before["batches"] < 8 and after["largest_batch"] >= 2


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


GOOD_IMAGE = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()


def user(content: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}]}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ([1, 2], "body"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "system", "content": "only a system message"}]}, "messages"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        (user(7), "messages[0].content"),
        (user([{"type": "audio", "audio": "x"}]), "messages[0].content[0].type"),
        (user([{"type": "text", "text": 3}]), "messages[0].content[0].text"),
        (user([{"type": "image_url", "image_url": {"url": "http://example.com/cat.png"}}]),
         "messages[0].content[0].image_url.url"),
        (user([{"type": "text", "text": "look"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]),
         "messages[0].content[1].image_url.url"),
        (user([{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]),
         "messages[0].content[0].image_url.url"),
        (user([{"type": "image_url", "image_url": 5}]), "messages[0].content[0].image_url"),
        ({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": GOOD_IMAGE}}]},
                       {"role": "user", "content": "q"}]}, "messages[0].content[0]"),
        (user("two <image> placeholders"), "messages"),
        ({**user("q"), "max_tokens": 0}, "max_tokens"),
        ({**user("q"), "max_tokens": "ten"}, "max_tokens"),
        ({**user("q"), "max_completion_tokens": -3}, "max_completion_tokens"),
        ({**user("q"), "temperature": "hot"}, "temperature"),
        ({**user("q"), "temperature": 5}, "temperature"),
        ({**user("q"), "stop": 3}, "stop"),
        ({**user("q"), "stream": True}, "stream"),
        ({**user("q"), "n": 2}, "n"),
    ],
)  # fmt: skip
def test_bad_requests_get_400_naming_the_field(server: Server, body: Any, param: str) -> None:
    status, payload = post(server, body)
    assert status == 400, payload
    assert payload["error"]["param"] == param and payload["error"]["message"].startswith(param)
    assert payload["error"]["type"] == "invalid_request_error"


def test_malformed_json_and_unknown_routes(server: Server) -> None:
    status, payload = post(server, None, raw=b"{not json")
    assert status == 400 and payload["error"]["param"] == "body"
    status, payload = post(server, None, raw=b"[" * 100_000 + b"]" * 100_000)  # nested past Python's recursion
    assert status == 400 and payload["error"]["param"] == "body" and "nested too deeply" in payload["error"]["message"]
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client(server).chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "q"}], max_tokens=0)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.url + "/nothing-here", timeout=30)
    assert info.value.code == 404


# ---------------------------------------------------------------------------------------------
# The openai adapter


def test_user_content_places_images_where_the_placeholders_were() -> None:
    assert user_content("What?", []) == "What?"
    parts = user_content("<image>\nWhat is it?", ["data:A"])
    assert parts == [{"type": "image_url", "image_url": {"url": "data:A"}}, {"type": "text", "text": "What is it?"}]
    parts = user_content("Compare <image>\n\nand<image>\nplease", ["data:A", "data:B"])
    flat = [p.get("text") or p["image_url"]["url"] for p in parts]  # type: ignore[index,union-attr]
    assert flat == ["Compare ", "data:A", "\nand", "data:B", "please"]
    with pytest.raises(ValueError, match="1 <image> placeholder"):
        user_content("<image>\nq", [])


def test_chat_messages_system_and_image_encoding(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    Image.new("RGB", (5, 3), "blue").save(png)
    bmp = tmp_path / "a.bmp"
    Image.new("RGB", (5, 3), "green").save(bmp)
    messages = chat_messages(Request("t", "0", "<image>\nq", (ImageRef(path=str(png)),), system="Be brief."))
    assert messages[0] == {"role": "system", "content": "Be brief."}
    url = messages[1]["content"][0]["image_url"]["url"]
    assert url == "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()  # the original bytes
    converted = image_data_url(ImageRef(data=bmp.read_bytes()))
    assert converted.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(converted.split(",", 1)[1])))
    assert decoded.format == "PNG" and decoded.convert("RGB").getpixel((0, 0)) == (0, 128, 0)
    assert chat_messages(Request("t", "0", "q"))[0] == {"role": "user", "content": "q"}  # no system: the server's
    with pytest.raises(OSError):
        chat_messages(Request("t", "0", "<image>\nq", (ImageRef(data=b"not an image"),)))


def test_unknown_model_args_list_the_valid_keys() -> None:
    with pytest.raises(UsageError, match=r"unknown --model-args key.*colour.*valid keys: base_url, api_key_env"):
        OpenAIAdapter.from_spec("m", {"colour": "red"}, None, 0)
    with pytest.raises(UsageError, match="concurrency=0 must be at least 1"):
        OpenAIAdapter.from_spec("m", {"base_url": "http://127.0.0.1:9/v1", "concurrency": "0"}, None, 0)
    adapter = OpenAIAdapter.from_spec("m", {"base_url": "http://127.0.0.1:9/v1/"}, None, 0)
    other = OpenAIAdapter.from_spec("m", {"base_url": "http://127.0.0.1:10/v1"}, None, 0)
    assert adapter.info.name == "m" and adapter.base_url == "http://127.0.0.1:9/v1"
    assert adapter.fingerprint != other.fingerprint
    adapter.close()
    other.close()


def test_unreachable_endpoint_gives_error_responses_not_an_exception() -> None:
    adapter = OpenAIAdapter.from_spec("m", {"base_url": "http://127.0.0.1:9/v1", "retries": "1", "timeout": "2"},
                                      None, 0)  # fmt: skip
    requests = [Request("t", str(i), f"q{i}") for i in range(3)]
    responses = adapter.generate(requests, [chat_messages(r) for r in requests])
    assert len(responses) == 3 and all(r.error and "gave up after 2 tries" in r.error for r in responses)
    adapter.close()


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=600,
                          cwd=REPO, env={**os.environ})  # fmt: skip


def run_dirs(out: Path) -> set[Path]:
    return {p for p in out.iterdir() if (p / "results.json").is_file()} if out.is_dir() else set()


def answers(out: Path, before: set[Path]) -> tuple[dict[str, str], Any]:
    """The answers and results of the one run written to ``out`` since ``before``."""
    (run_dir,) = run_dirs(out) - before
    lines = (run_dir / "samples" / "gqa.jsonl").read_text().splitlines()
    return {rec["id"]: rec["response"]["text"] for rec in map(json.loads, lines)}, load_results(run_dir)


@pytest.mark.slow
def test_openai_adapter_on_the_served_model_matches_the_local_adapter(
    server: Server, ckpt: Path, tmp_path: Path
) -> None:
    local_out, api_out = tmp_path / "local", tmp_path / "api"
    common = ("run", "--tasks", "gqa", "--limit", "8", "--no-progress")
    local = harness(*common, "--model", f"tinyllava:{ckpt}", "--device", "cpu", "--output-dir", str(local_out))
    assert local.returncode == 0, local.stderr
    api_args = (*common, "--model", f"openai:{SERVED}", "--model-args", f"base_url={server.url},concurrency=4",
                "--output-dir", str(api_out))  # fmt: skip
    api = harness(*api_args)
    assert api.returncode == 0, api.stderr
    local_texts, _ = answers(local_out, set())
    api_texts, result = answers(api_out, set())
    assert api_texts == local_texts and len(api_texts) == 8
    assert result.model is not None and result.model.name == SERVED and result.model.spec == f"openai:{SERVED}"
    assert result.model.details["base_url"] == server.url and result.tasks["gqa"].n_errors == 0
    assert result.tasks["gqa"].timing.n_generated == 8
    before = run_dirs(api_out)
    again = harness(*api_args)
    assert again.returncode == 0, again.stderr
    cached_texts, second = answers(api_out, before)
    assert cached_texts == api_texts
    assert second.tasks["gqa"].timing.n_cached == 8 and second.tasks["gqa"].timing.n_generated == 0


def test_oversized_prompts_and_images_are_refused(server: Server) -> None:
    from harness.serve.chat_request import MAX_IMAGE_PIXELS, MAX_PROMPT_CHARS

    status, payload = post(server, {"messages": [{"role": "user", "content": "x" * (MAX_PROMPT_CHARS + 1)}]})
    assert status == 413 and payload["error"]["param"] == "messages" and "too long" in payload["error"]["message"]
    buffer = io.BytesIO()
    Image.new("RGB", (6000, MAX_IMAGE_PIXELS // 6000 + 1)).save(buffer, format="PNG")  # compresses to kilobytes
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}
    status, payload = post(server, body)
    assert status == 413 and "too large" in payload["error"]["message"]
    assert payload["error"]["param"] == "messages[0].content[0].image_url.url"


def test_sigterm_stops_the_server_with_a_long_generation_in_flight(ckpt: Path) -> None:
    """A stop waits a few seconds for the batch in flight, not for a 65k-token generation to end."""
    import time

    running = Server("--model", f"tinyllava:{ckpt}", "--device", "cpu")
    body = {"messages": [{"role": "user", "content": "Tell a long story."}], "max_tokens": 65536}
    worker = threading.Thread(target=lambda: post(running, body), daemon=True)
    worker.start()
    time.sleep(2.0)  # the generation is under way
    start = time.monotonic()
    code, out = running.stop()
    assert time.monotonic() - start < 30 and code == 0 and "server stopped" in out


def test_sigterm_stops_the_server(ckpt: Path) -> None:
    running = Server("--model", f"tinyllava:{ckpt}", "--device", "cpu")
    assert SERVED not in running.banner and ckpt.name in running.banner
    code, out = running.stop()
    assert code == 0 and "server stopped" in out
