"""llama.cpp with saved passage states: the prefill from blocks, the state store, precomputing."""

from __future__ import annotations

import copy
import logging
from typing import Sequence

from ..errors import GenerationError
from .base import Generator, Grounding

log = logging.getLogger(__name__)


class LlamaPassageStates:
    """llama.cpp with saved passage states: the prefill from blocks, the state store, precomputing.

    One part of `LlamaCppGenerator` (rag/generation/llama_cpp.py), whose loaded model (`self.llm`) it reads.
    """

    def block_prefill(self, system: str):
        """The `BlockPrefill` for prompts with this system prompt (None if the model has no chat template)."""
        if self.state_dir is None:
            return None
        llm = self.llm
        if self._prefill is None or self._prefill.frame.system != system:
            from .block_prefill import BlockPrefill, chat_frame
            from .state_store import StateStore

            frame = chat_frame(llm, system)
            if frame is None:
                log.warning("model has no chat template: passage states off")
                self.state_dir = None
                return None
            store = StateStore(self.state_dir, self._state_identity(), *self.state_caps)
            self._prefill = BlockPrefill(llm, store, frame)
        return self._prefill

    @property
    def state_store(self):
        """The `StateStore` in use (None before the first prompt from blocks, or with passage states off)."""
        return self._prefill.store if self._prefill is not None else None

    def without_passage_states(self) -> Generator:
        """The same loaded model with every prompt prefilled whole (for comparisons in `bench`)."""
        plain = copy.copy(self)
        plain.state_dir, plain._prefill = None, None
        return plain

    def _state_identity(self) -> str:
        """What a saved state depends on: the model's bytes, the engine's version and build, its cache layout.

        The build's CPU features are part of it: kernels for other instruction sets round differently,
        so a state written by one build is not reused by another (`llama_build.py`).
        """
        import llama_cpp

        from ..fileio import sha256_file

        sha = self.ref.sha256 or sha256_file(self._model_path)
        build = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
        return f"{sha}|llama_cpp-{llama_cpp.__version__}|{build}|kv-{self.kv_cache_type}"

    def precompute_states(self, system: str, head: str, blocks: Sequence[str]) -> int:
        """Compute and save the states of `blocks` now (indexing time) instead of on first use."""
        prefill = self.block_prefill(system)
        return prefill.precompute(head, blocks) if prefill is not None else 0

    def _from_blocks(self, messages, grounding: Grounding | None, sampling: dict):
        """A completion stream over a prompt prefilled from passage states; None when that does not apply."""
        tokens = self._prefilled_tokens(messages, grounding)
        if tokens is None:
            return None
        stop = self._prefill.frame.stop
        if self.lookup_decoding and sampling["temperature"] == 0:
            from .lookup_decoding import LookupDecoder, stream_text

            pieces = stream_text(self.llm, LookupDecoder(self.llm).generate(tokens, sampling["max_tokens"]), stop)
            return ({"choices": [{"delta": {"content": p}}]} for p in pieces)
        completion = self.llm.create_completion(prompt=tokens, stop=list(stop) or None, **sampling)
        return ({"choices": [{"delta": {"content": c["choices"][0]["text"]}}]} for c in completion)

    def _prefilled_tokens(self, messages, grounding: Grounding | None) -> list[int] | None:
        """Put the prompt but its tail in the cache from passage states; its tokens, or None when that does not apply."""
        blocks = grounding.blocks if grounding is not None else None
        if blocks is None or blocks.messages() != messages:
            return None
        prefill = self.block_prefill(blocks.system)
        if prefill is None:
            return None
        try:
            return prefill.prefill(blocks)
        except GenerationError as e:  # a state llama.cpp will not take: answer anyway, from a whole prefill
            log.warning("passage states not used (%s): the prompt is prefilled whole", e)
            prefill.discard_scratch()
            return None
