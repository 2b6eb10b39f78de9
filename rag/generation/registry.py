"""The one place that picks a generation engine from settings."""

from __future__ import annotations

from pathlib import Path

from ..errors import RagError
from .base import Generator


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def make_generator(settings) -> Generator:
    """The engine named by `settings.engine` ("auto": transformers on CUDA, else llama.cpp)."""
    engine = settings.engine
    if engine == "auto":
        engine = "transformers" if cuda_available() else "llama_cpp"
    if engine == "echo":
        from .echo import EchoGenerator

        return EchoGenerator()
    if engine == "openai":
        from .openai_compat import OpenAICompatGenerator

        return OpenAICompatGenerator(
            settings.openai_base_url, settings.openai_model, settings.openai_api_key,
            context_window=settings.context_window,
        )
    from ..models import resolve

    ref = resolve(settings.generator, Path(settings.cache_dir))
    if engine == "llama_cpp":
        from .llama_cpp import LlamaCppGenerator

        state_dir = Path(settings.index_dir) / "states" if settings.passage_states else None
        return LlamaCppGenerator(ref, n_ctx=settings.context_window, n_threads=settings.n_threads, state_dir=state_dir,
                                 state_memory_mb=settings.passage_states_memory_mb, state_disk_mb=settings.passage_states_disk_mb,
                                 lookup_decoding=settings.lookup_decoding, kv_cache_type=settings.kv_cache_type,
                                 hidden_states=settings.record_states)
    if engine == "transformers":
        from .transformers_engine import TransformersGenerator

        return TransformersGenerator(ref, cache_dir=Path(settings.cache_dir), context_window=settings.context_window)
    raise RagError(f"unknown engine {engine!r} (auto, llama_cpp, transformers, openai, echo)")
