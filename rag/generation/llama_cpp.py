"""llama.cpp through llama-cpp-python: the default engine on CPU (GGUF, quantized, fast decoding).

llama-cpp-python keeps the previous prompt's KV cache and re-evaluates only the tokens after the
longest common prefix, so the fixed system prompt is computed once (at warm-up), not per question.
With passage states on (the default), each passage block's state is computed once and reused
(`block_prefill.py`), so a question costs only its own few tokens before the first word.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

from ..errors import GenerationError, ModelError
from ..models import ModelRef, verify
from .base import Generator, Grounding, Usage, greedy_logprob
from .llama_states import LlamaPassageStates
from .llama_logits import LlamaLogitReading

log = logging.getLogger(__name__)


class LlamaCppGenerator(LlamaPassageStates, LlamaLogitReading, Generator):
    name = "llama_cpp"

    def __init__(self, ref: ModelRef, n_ctx: int = 4096, n_threads: int = 0, state_dir: Path | None = None,
                 state_memory_mb: float = 256, state_disk_mb: float = 4096, lookup_decoding: bool = False,
                 kv_cache_type: str = "f16", hidden_states: bool = False):
        """`state_dir`: where passage states are kept (None: passage states off, every prompt prefilled whole).
        `hidden_states`: layer outputs can be read (`yes_probability(hidden=...)`) through a graph callback."""
        self.ref = ref
        self.model_name = ref.spec
        self.context_window = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 2
        self.state_dir = state_dir
        self.state_caps = (state_memory_mb, state_disk_mb)
        self.lookup_decoding = lookup_decoding  # greedy answers drafted from the prompt (lookup_decoding.py)
        if kv_cache_type not in _KV_TYPES:
            raise ModelError(f"kv_cache_type must be one of {', '.join(_KV_TYPES)}, not {kv_cache_type!r}")
        self.kv_cache_type = kv_cache_type
        self._llm = None
        self._prefill = None
        self._taps = None
        self.hidden_states = hidden_states

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
            llm = Llama(model_path=str(path), n_ctx=self.context_window, n_threads=self.n_threads, verbose=False,
                        **_KV_TYPES[self.kv_cache_type])
            self._taps = _LayerTaps(llm) if self.hidden_states else None
            if self.state_dir is not None or self._taps is not None:
                _remake_context(llm, scratch=self.state_dir is not None, callback=self._taps.callback if self._taps else None)
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"llama.cpp cannot load {path}: {e}") from None
        log.info("loaded generator=%s engine=llama_cpp n_ctx=%d threads=%d passage_states=%s", self.ref.spec,
                 self.context_window, self.n_threads, self.state_dir is not None)
        self._model_path = Path(path)
        return llm

    @property
    def reuses_passage_states(self) -> bool:
        return self.state_dir is not None

    def count_tokens(self, messages: list[dict]) -> int:
        # Content tokens plus the chat template's few tokens per message.
        return sum(len(self.llm.tokenize(m["content"].encode("utf-8"), add_bos=False, special=False)) + 5 for m in messages) + 3

    def count_text(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, messages, max_tokens=160, temperature=0.0, usage: Usage | None = None, stop_event=None,
               grounding: Grounding | None = None) -> Iterator[str]:
        llm = self.llm
        sampling = dict(max_tokens=max_tokens, temperature=temperature, top_k=1 if temperature == 0 else 40, stream=True)
        read: list[tuple[int, float]] = []
        if temperature == 0:  # greedy: the token chosen is the argmax, so its log-probability is read here
            from llama_cpp import LogitsProcessorList

            def confidence(_input_ids, scores):
                read.append(greedy_logprob(scores))
                return scores

            sampling["logits_processor"] = LogitsProcessorList([confidence])
        try:
            chunks = self._from_blocks(messages, grounding, sampling)
            if chunks is None:
                chunks = llm.create_chat_completion(messages=messages, **sampling)
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
            usage.token_logprobs = [(_piece(llm, t), lp) for t, lp in read]

    def warm_up(self, system_prompt: str = "") -> None:
        # The system prompt's KV state stays in llama.cpp's prefix cache, so the first question reuses it.
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": "Hello"}]
        for _ in self.stream(messages, max_tokens=1):
            pass


def _piece(llm, token: int) -> str:
    return llm.detokenize([token]).decode("utf-8", "replace")


# The KV cache's number format: q8_0 halves a saved passage state (llama.cpp needs flash attention to
# quantize the V cache). GGML_TYPE_Q8_0 = 8.
_KV_TYPES = {"f16": {}, "q8_0": {"type_k": 8, "type_v": 8, "flash_attn": True}}


def _remake_context(llm, scratch: bool, callback=None) -> None:
    """Make the context again with the same parameters plus what the constructor has no option for.

    `scratch`: a second sequence (one shared cache) to load saved passage states into (n_seq_max=2).
    `callback`: llama.cpp's graph callback (`cb_eval`), through which layer outputs are read. The new
    context holds no state yet, so nothing is lost.
    """
    from llama_cpp import _internals

    old = llm._ctx
    if scratch:
        llm.context_params.n_seq_max = 2
        llm.context_params.kv_unified = True
    if callback is not None:
        llm.context_params.cb_eval = callback
    llm._ctx = _internals.LlamaContext(model=llm._model, params=llm.context_params, verbose=False)
    old.close()


# The layers a probe reads (llama.cpp's tensor names): the residual stream at a quarter, half and three
# quarters of the depth, and the final norm's output (the state the next-token logits come from).
PROBE_FRACTIONS = (0.25, 0.5, 0.75)


class _LayerTaps:
    """llama.cpp's graph callback: asks for nothing unless `read` is a dict, then copies the last token's
    row of each tensor in `names` into it."""

    def __init__(self, llm):
        import ctypes

        import llama_cpp
        from llama_cpp import _ggml

        n_layer = llama_cpp.llama_model_n_layer(llm.model)
        self.names = tuple(f"l_out-{int(n_layer * f)}" for f in PROBE_FRACTIONS) + ("result_norm",)
        self.n_embd = llama_cpp.llama_model_n_embd(llm.model)
        self.read: dict | None = None
        ggml = _ggml.libggml
        ggml.ggml_get_name.restype, ggml.ggml_get_name.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
        ggml.ggml_nbytes.restype, ggml.ggml_nbytes.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
        ggml.ggml_backend_tensor_get.restype = None
        ggml.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
        self._ggml = ggml
        self._wanted = {n.encode() for n in self.names}
        self.callback = llama_cpp.ggml_backend_sched_eval_callback(self._on_tensor)  # kept: llama.cpp holds a pointer

    def _on_tensor(self, tensor, ask: bool, _user_data) -> bool:
        if self.read is None:
            return False
        name = self._ggml.ggml_get_name(tensor)
        if ask:
            return name in self._wanted
        import numpy as np

        size = self._ggml.ggml_nbytes(tensor)
        if name in self._wanted and size >= 4 * self.n_embd:  # f32, one row per token: the last row is kept
            row = np.empty(self.n_embd, dtype=np.float32)
            self._ggml.ggml_backend_tensor_get(tensor, row.ctypes.data, size - 4 * self.n_embd, 4 * self.n_embd)
            self.read[name.decode()] = row
        return True


def _download_gguf(hub_path: str) -> str:
    """`owner/name/file.gguf` from the Hugging Face Hub (cache first; a clear error offline)."""
    parts = hub_path.split("/")
    if len(parts) < 3 or not parts[-1].endswith(".gguf"):
        raise ModelError(f"for llama.cpp give a .gguf path or a Hub path owner/name/file.gguf, not {hub_path}")
    from ..models import hub_download

    return hub_download("/".join(parts[:2]), "/".join(parts[2:]))
