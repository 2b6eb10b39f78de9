"""Real packaged models: hashes, both engines with the tiny model, the real embedder."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.errors import ModelError
from rag.generation import Usage
from rag.generation.llama_cpp import LlamaCppGenerator
from rag.models import ModelRef, resolve, verify

pytestmark = pytest.mark.models

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France? Answer in one word."},
]


def tiny_ref(cache: Path) -> ModelRef:
    return resolve("packaged:smollm2-135m-instruct", cache)


def test_packaged_models_resolve_and_verify(model_cache):
    ref = resolve("packaged:all-MiniLM-L6-v2", model_cache)
    verify(ref)  # the real file hashes to the pinned value
    assert ref.weights.name == "model.safetensors"
    verify(tiny_ref(model_cache))


def test_modified_model_file_is_refused(tmp_path, model_cache):
    original = tiny_ref(model_cache)
    copy = tmp_path / "tiny.gguf"
    shutil.copyfile(original.weights, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte in the middle of the weights
    copy.write_bytes(bytes(data))
    tampered = ModelRef(original.spec, "gguf", str(copy), copy, original.sha256)
    with pytest.raises(ModelError, match="fails its sha256 check") as e:
        verify(tampered)
    assert "tiny.gguf" in str(e.value)
    with pytest.raises(ModelError):
        LlamaCppGenerator(tampered).generate(MESSAGES)  # the engine refuses to load it too


def test_split_gguf_is_assembled_once_and_checked(tmp_path):
    from rag.models import assemble_parts
    import hashlib

    parts = []
    for i, payload in enumerate([b"abc", b"def", b"gh"]):
        p = tmp_path / f"part{i}.bin"
        p.write_bytes(payload)
        parts.append(p)
    target = tmp_path / "cache" / "m.gguf"
    assemble_parts(parts, target, hashlib.sha256(b"abcdefgh").hexdigest())
    assert target.read_bytes() == b"abcdefgh"
    with pytest.raises(ModelError):
        assemble_parts(parts, tmp_path / "cache" / "bad.gguf", "0" * 64)
    assert not (tmp_path / "cache" / "bad.gguf").exists()
    assert [p.name for p in target.parent.iterdir()] == ["m.gguf"]  # no temp file left


def test_unknown_model_and_missing_path_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown packaged model"):
        resolve("packaged:nope", tmp_path)
    with pytest.raises(ModelError, match="not found"):
        resolve("./no/such/model.gguf", tmp_path)


def test_hub_id_without_network_fails_fast_with_a_message(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from rag.store.embedding import make_embedder

    t0 = time.time()
    with pytest.raises(ModelError, match="cannot load embedder|Hugging Face"):
        make_embedder("sentence-transformers/all-MiniLM-L6-v2", tmp_path).embed(["x"])
    assert time.time() - t0 < 60


def test_llama_cpp_engine_streams_with_the_tiny_model(model_cache):
    gen = LlamaCppGenerator(tiny_ref(model_cache), n_ctx=1024)
    usage = Usage()
    pieces = list(gen.stream(MESSAGES, max_tokens=12, usage=usage))
    text = "".join(pieces)
    assert len(pieces) >= 2 and text.strip()
    assert "paris" in text.lower()
    assert usage.completion_tokens == len(pieces) and usage.prompt_tokens > 10
    # greedy decoding is deterministic
    assert gen.generate(MESSAGES, max_tokens=12) == text


def test_transformers_engine_streams_with_the_tiny_model(model_cache):
    from rag.generation.transformers_engine import TransformersGenerator

    gen = TransformersGenerator(tiny_ref(model_cache), cache_dir=model_cache, context_window=1024)
    usage = Usage()
    pieces = list(gen.stream(MESSAGES, max_tokens=12, usage=usage))
    text = "".join(pieces)
    assert text.strip() and "paris" in text.lower()
    assert usage.prompt_tokens > 10 and usage.completion_tokens > 0
    # the dequantized copy was cached; a second generator loads it instead of the GGUF
    cached = list((model_cache / "transformers").iterdir())
    assert len(cached) == 1 and (cached[0] / "config.json").is_file()


def test_real_embedder_ranks_the_grant_passage_first(model_cache):
    from rag.store.embedding import make_embedder

    e = make_embedder("packaged:all-MiniLM-L6-v2", model_cache)
    v = e.embed(["The UK gave a grant of 1 million pounds.", "Hanoi hosted the conference.", "The cat sat."])
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    q = e.embed_query("What did the UK fund?")
    assert int(np.argmax(v @ q)) == 0
