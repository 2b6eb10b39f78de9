"""The OpenAI-compatible engine against a real server: llama-cpp-python's own, with the tiny model."""

import subprocess
import sys
import time

import httpx
import pytest

from rag.errors import GenerationError
from rag.generation import Usage
from rag.generation.openai_compat import OpenAICompatGenerator
from rag.models import resolve
from uiapp import free_port

pytestmark = pytest.mark.models


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


def test_streams_from_a_real_server(server):
    gen = OpenAICompatGenerator(server, "tiny")
    usage = Usage()
    messages = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    pieces = list(gen.stream(messages, max_tokens=12, usage=usage))
    assert len(pieces) >= 2
    assert "paris" in "".join(pieces).lower()
    assert usage.completion_tokens == len(pieces)


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
