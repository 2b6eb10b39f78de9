"""The OpenAI-compatible engine: against a real server (llama-cpp-python's own, with the tiny model; marked
`models`), and against a small scripted SSE server in this file for streaming, stop and server errors."""

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from rag.errors import GenerationError
from rag.generation import Usage
from rag.generation.openai_compat import OpenAICompatGenerator
from rag.models import resolve
from uiapp import free_port


@pytest.fixture(scope="module")
def server(model_cache, tmp_path_factory):
    pytest.importorskip("sse_starlette", reason="llama-cpp-python[server] extra not installed")
    gguf = resolve("packaged:smollm2-135m-instruct", model_cache).weights
    port = free_port()
    log = (tmp_path_factory.mktemp("server") / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "tiny",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("llama_cpp.server did not start")
    yield base
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.mark.models
def test_streams_from_a_real_server(server):
    gen = OpenAICompatGenerator(server, "tiny")
    usage = Usage()
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    pieces = list(gen.stream(messages, max_tokens=12, usage=usage))
    assert len(pieces) >= 2
    assert "paris" in "".join(pieces).lower()
    assert usage.completion_tokens == len(pieces)


@pytest.mark.models
def test_pipeline_answers_through_the_server(server, tmp_path, docs):
    from rag.pipeline import Pipeline
    from rag.settings import Settings

    s = Settings(docs_dir=docs, index_dir=tmp_path / "ix", embedder="hashing", engine="openai",
                 openai_base_url=server, openai_model="tiny")
    answer = Pipeline.from_settings(s).ask("What did the UK fund?")
    assert answer.passages and answer.timings.ttft_s is not None  # streamed through the real server
    assert answer.raw_answer.strip()


def test_unreachable_server_is_a_clear_error():
    gen = OpenAICompatGenerator(f"http://127.0.0.1:{free_port()}/v1", "x", timeout=3)
    with pytest.raises(GenerationError, match="cannot reach the model server"):
        list(gen.stream([{"role": "user", "content": "hi"}]))


# ---- a scripted server: what the engine does with each kind of reply, in milliseconds, without a model

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


class Scripted(BaseHTTPRequestHandler):
    """POST /v1/chat/completions answered by `self.server.script(handler)`; records what it sent."""

    def do_POST(self):
        self.server.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        try:
            self.server.script(self)
        except (BrokenPipeError, ConnectionResetError):
            self.server.disconnected.set()

    def start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()

    def event(self, data) -> None:
        self.wfile.write(f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode())
        self.wfile.flush()
        self.server.sent += 1

    def log_message(self, *args):  # keep the test output clean
        pass


def piece(text: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}}]}


@pytest.fixture
def scripted():
    """Start a server on a free port of 127.0.0.1 for a script; yields a function script -> server (`.base` = URL)."""
    servers = []

    def start(script) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
        server.script, server.requests, server.sent, server.disconnected = script, [], 0, threading.Event()
        server.base = f"http://127.0.0.1:{server.server_address[1]}/v1"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_pieces_arrive_one_by_one_as_the_server_sends_them(scripted):
    words = ["Paris", " is", " the", " capital", "."]

    def script(h):
        h.start_sse()
        for w in words:
            h.event(piece(w))
            time.sleep(0.1)
        h.event({"choices": [], "usage": {"prompt_tokens": 17, "completion_tokens": 5}})
        h.event("[DONE]")

    base = scripted(script).base
    usage, arrivals = Usage(), []
    for p in OpenAICompatGenerator(base, "m").stream(MESSAGES, max_tokens=9, usage=usage):
        arrivals.append((p, time.perf_counter()))
    assert [p for p, _ in arrivals] == words
    assert arrivals[-1][1] - arrivals[0][1] > 0.3  # streamed as sent, not buffered to the end
    assert usage.prompt_tokens == 17 and usage.completion_tokens == 5


def test_request_is_a_streamed_chat_completion(scripted):
    def script(h):
        h.start_sse()
        h.event("[DONE]")

    server = scripted(script)
    assert list(OpenAICompatGenerator(server.base, "tiny").stream(MESSAGES, max_tokens=7, temperature=0.0)) == []
    body = server.requests[0]
    assert body["model"] == "tiny" and body["stream"] is True and body["max_tokens"] == 7 and body["messages"] == MESSAGES


def test_stop_event_ends_the_stream_and_closes_the_connection(scripted):
    def script(h):
        h.start_sse()
        for i in range(200):  # 4 s of answer if nobody stops it
            h.event(piece(f" w{i}"))
            time.sleep(0.02)

    server = scripted(script)
    stop, pieces = threading.Event(), []
    t0 = time.perf_counter()
    for p in OpenAICompatGenerator(server.base, "m").stream(MESSAGES, stop_event=stop):
        pieces.append(p)
        if len(pieces) == 3:
            stop.set()
    assert len(pieces) == 3 and time.perf_counter() - t0 < 2
    assert server.disconnected.wait(5) and server.sent < 200  # the server stops generating too


def error_body(status: int, body: str, content_type: str = "application/json"):
    def script(h):
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.end_headers()
        h.wfile.write(body.encode())

    return script


def one_line_error(base: str) -> str:
    with pytest.raises(GenerationError) as e:
        list(OpenAICompatGenerator(base, "m").stream(MESSAGES))
    message = str(e.value)
    assert "\n" not in message and base in message
    return message


def test_server_error_status_is_a_one_line_error(scripted):
    server = scripted(error_body(500, json.dumps({"error": {"message": "model is loading", "type": "server_error"}})))
    message = one_line_error(server.base)
    assert "500" in message and "model is loading" in message
    assert "404" in one_line_error(scripted(error_body(404, '{"detail": "Not Found"}')).base)


def test_html_error_page_is_a_one_line_error(scripted):
    """A proxy in front of the model server (nginx) answers 502 with a multi-line HTML page."""
    page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
    message = one_line_error(scripted(error_body(502, page, "text/html")).base)
    assert "502 Bad Gateway" in message


def test_error_event_mid_stream_is_a_one_line_error(scripted):
    """OpenAI-style servers report a failure after the 200 header as an SSE event with an "error" object."""
    def script(h):
        h.start_sse()
        h.event(piece("Paris"))
        h.event({"error": {"message": "CUDA out of memory", "type": "server_error", "code": 500}})

    message = one_line_error(scripted(script).base)
    assert "CUDA out of memory" in message
