"""llama.cpp through llama-cpp-python: the default engine on CPU (GGUF, quantized, fast decoding).

llama-cpp-python keeps the previous prompt's KV cache and re-evaluates only the tokens after the
longest common prefix, so the fixed system prompt is computed once (at warm-up), not per question.
"""

from __future__ import annotations

import logging
import os
from typing import Iterator

from ..errors import GenerationError, ModelError
from ..models import ModelRef, verify
from .base import Generator, Grounding, Usage, yes_share

log = logging.getLogger(__name__)


class LlamaCppGenerator(Generator):
    name = "llama_cpp"

    def __init__(self, ref: ModelRef, n_ctx: int = 4096, n_threads: int = 0):
        self.ref = ref
        self.model_name = ref.spec
        self.context_window = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 2
        self._llm = None

    @property
    def llm(self):
        if self._llm is None:
            self._llm = self._load()
        return self._llm

    def _load(self):
        if self.ref.kind == "hub":
            path = _download_gguf(self.ref.location)
        elif self.ref.kind != "gguf":
            raise ModelError(f"llama.cpp needs a .gguf model, {self.ref.spec} is a {self.ref.kind}")
        else:
            verify(self.ref)
            path = self.ref.location
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ModelError("llama-cpp-python is not installed: pip install -r requirements.txt") from None
        try:
            llm = Llama(model_path=str(path), n_ctx=self.context_window, n_threads=self.n_threads, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"llama.cpp cannot load {path}: {e}") from None
        log.info("loaded generator=%s engine=llama_cpp n_ctx=%d threads=%d", self.ref.spec, self.context_window, self.n_threads)
        return llm

    def count_tokens(self, messages: list[dict]) -> int:
        # Content tokens plus the chat template's few tokens per message.
        return sum(len(self.llm.tokenize(m["content"].encode("utf-8"), add_bos=False, special=False)) + 5 for m in messages) + 3

    def stream(self, messages, max_tokens=160, temperature=0.0, usage: Usage | None = None, stop_event=None,
               grounding: Grounding | None = None) -> Iterator[str]:
        llm = self.llm
        try:
            chunks = llm.create_chat_completion(
                messages=messages, max_tokens=max_tokens, temperature=temperature, top_k=1 if temperature == 0 else 40,
                stream=True,
            )
            produced = 0
            for chunk in chunks:
                if stop_event is not None and stop_event.is_set():
                    break
                piece = chunk["choices"][0].get("delta", {}).get("content")
                if piece:
                    produced += 1
                    if usage is not None:
                        usage.completion_tokens = produced
                    yield piece
        except ValueError as e:  # llama-cpp-python raises ValueError when the prompt exceeds n_ctx
            raise GenerationError(f"generation failed: {e}") from None
        if usage is not None:
            usage.completion_tokens = produced
            usage.prompt_tokens = max(int(llm.n_tokens) - produced, 0)

    def yes_probability(self, messages: list[dict]) -> float | None:
        """Read the next-token logits of the reply (one token, no sampling) and compare Yes with No.

        Called right after `stream` with the same conversation plus one turn, llama.cpp re-uses the
        KV cache of everything before the new turn: only its few tokens are evaluated.
        """
        from llama_cpp import LogitsProcessorList

        llm = self.llm
        seen: list = []

        def grab(_input_ids, scores):
            seen.append(scores.copy())
            return scores

        try:
            llm.create_chat_completion(
                messages=messages, max_tokens=1, temperature=0.0, top_k=1, logits_processor=LogitsProcessorList([grab]),
            )
        except ValueError as e:
            raise GenerationError(f"generation failed: {e}") from None
        if not seen:
            return None
        return yes_share(seen[0], self._answer_token_ids())

    def _answer_token_ids(self) -> tuple[list[int], list[int]]:
        if not hasattr(self, "_yes_no"):
            first = lambda w: self.llm.tokenize(w.encode(), add_bos=False, special=False)[0]  # noqa: E731
            self._yes_no = ([first(w) for w in ("Yes", "yes", " Yes")], [first(w) for w in ("No", "no", " No")])
        return self._yes_no

    def warm_up(self, system_prompt: str = "") -> None:
        # The system prompt's KV state stays in llama.cpp's prefix cache, so the first question reuses it.
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": "Hello"}]
        for _ in self.stream(messages, max_tokens=1):
            pass


def _download_gguf(hub_path: str) -> str:
    """`owner/name/file.gguf` from the Hugging Face Hub (cache first; a clear error offline)."""
    parts = hub_path.split("/")
    if len(parts) < 3 or not parts[-1].endswith(".gguf"):
        raise ModelError(f"for llama.cpp give a .gguf path or a Hub path owner/name/file.gguf, not {hub_path}")
    from ..models import hub_download

    return hub_download("/".join(parts[:2]), "/".join(parts[2:]))
