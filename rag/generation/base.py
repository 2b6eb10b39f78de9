"""The generator interface and the one place that picks an engine.

>>> from .echo import EchoGenerator
>>> g = EchoGenerator(script="Hello [1].")
>>> g.generate([{"role": "user", "content": "hi"}])
'Hello [1].'
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import RagError


@dataclass
class Usage:
    """Filled in by `stream` as it runs (mutable on purpose: it is the stream's side channel)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


class Generator(ABC):
    """A chat model. Subclasses implement `stream`; `generate` joins it."""

    name: str = "generator"
    model_name: str = ""
    context_window: int = 4096

    @abstractmethod
    def stream(
        self, messages: list[dict], max_tokens: int = 160, temperature: float = 0.0,
        usage: Usage | None = None, stop_event=None,
    ) -> Iterator[str]:
        """Yield pieces of the reply as they are produced; stop early when `stop_event` is set."""

    def generate(self, messages: list[dict], max_tokens: int = 160, temperature: float = 0.0) -> str:
        return "".join(self.stream(messages, max_tokens, temperature))

    def count_tokens(self, messages: list[dict]) -> int:
        """Prompt length in tokens (a 4-characters-a-token estimate unless the engine knows better)."""
        return sum(len(m["content"]) for m in messages) // 4 + 8 * len(messages)

    def warm_up(self) -> None:
        """Load weights and run the system prompt once, so the first question is not slower."""

    def yes_probability(self, messages: list[dict]) -> float | None:
        """P("Yes") / (P("Yes") + P("No")) for the first token of the reply to `messages`.

        None when the engine cannot read its next-token distribution (then no model check is made).
        """
        return None


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

        return LlamaCppGenerator(ref, n_ctx=settings.context_window, n_threads=settings.n_threads)
    if engine == "transformers":
        from .transformers_engine import TransformersGenerator

        return TransformersGenerator(ref, cache_dir=Path(settings.cache_dir), context_window=settings.context_window)
    raise RagError(f"unknown engine {engine!r} (auto, llama_cpp, transformers, openai, echo)")
