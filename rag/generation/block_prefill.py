"""Prefill from precomputed passage states in llama.cpp: only the per-question tokens are computed.

The prompt is a fixed head (system prompt, "Passages:"), then per passage a small marker ("[2]") and
the passage block, then the question and instruction. Each block's KV state is computed once, behind
the fixed head and the marker "[1]", and saved (`StateStore`). At question time the head stays in the
cache, each marker is evaluated, each block's saved state is loaded into a scratch sequence, shifted
to its place (`llama_memory_seq_add`; llama.cpp re-rotates the keys) and copied into the answer's
sequence, and only the tail is evaluated. The blocks do not attend to one another (the approximation
of TurboRAG / Block-Attention); with one block the state is the one a full prefill computes.

Uses llama-cpp-python's low-level bindings (`llama_state_seq_get_data`/`set_data`,
`llama_memory_seq_add/cp/rm`) and keeps `Llama.input_ids`/`n_tokens` in step with the cache, so
`create_completion` on the whole token list finds it all cached and evaluates just the tail.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from typing import Sequence

from ..errors import GenerationError
from .state_store import BlockState, StateStore

log = logging.getLogger(__name__)

SCRATCH = 1  # the sequence a saved state is loaded into before it is moved into sequence 0
_CUT = "\x00user\x00"


class _Refused(GenerationError):
    """A saved state llama.cpp would not take (`state`): the store forgets it."""

    def __init__(self, message: str, state: "BlockState"):
        super().__init__(message)
        self.state = state


@dataclass(frozen=True)
class ChatFrame:
    """The chat template's text around the user message (after a given system prompt), and its stops."""

    system: str
    before_user: str
    after_user: str
    stop: tuple[str, ...]


def chat_frame(llm, system: str) -> ChatFrame | None:
    """Render the model's own chat template around a placeholder; None if the GGUF carries none."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    piece = lambda t: llm.detokenize([t], special=True).decode("utf-8", "ignore") if t >= 0 else ""  # noqa: E731
    formatter = Jinja2ChatFormatter(template=template, eos_token=piece(llm.token_eos()), bos_token=piece(llm.token_bos()))
    rendered = formatter(messages=[{"role": "system", "content": system}, {"role": "user", "content": _CUT}])
    if rendered.prompt.count(_CUT) != 1:
        return None
    before, after = rendered.prompt.split(_CUT)
    stop = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop] if rendered.stop else []
    return ChatFrame(system, before, after, tuple(stop))


class BlockPrefill:
    """Puts a `PromptBlocks` prompt into sequence 0 of `llm`'s cache from saved block states."""

    def __init__(self, llm, store: StateStore, frame: ChatFrame):
        import llama_cpp.llama_cpp as C

        self.llm, self.store, self.frame, self.C = llm, store, frame, C
        self.ctx = llm._ctx.ctx
        self.mem = C.llama_get_memory(self.ctx)
        self.marker_one = self.tokens("[1]\n")  # every state is computed behind passage number [1]

    def tokens(self, text: str, first: bool = False) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=first, special=first)

    def prompt_tokens(self, parts) -> tuple[list[int], list[tuple[str, list[int]]]]:
        """The head's tokens, and the segments after it: ("fresh" | "block", tokens), tail last."""
        head = self.tokens(self.frame.before_user + parts.head, first=True)
        segments: list[tuple[str, list[int]]] = []
        for marker, block in zip(parts.markers, parts.blocks):
            segments += [("fresh", self.tokens(marker)), ("block", self.tokens(block))]
        # The question is user text: its "<|im_start|>" stays text (special=False); the template's is a token.
        tail = self.tokens(parts.tail) + self.llm.tokenize(self.frame.after_user.encode("utf-8"), add_bos=False, special=True)
        segments.append(("fresh", tail))
        return head, segments

    def prefill(self, parts) -> list[int]:
        """Fill the cache with everything but the tail; return the whole prompt's tokens."""
        head, segments = self.prompt_tokens(parts)
        block_tokens = [toks for kind, toks in segments if kind == "block"]
        self._keep_head(head)
        computed = self.store.stats.computed
        states = [self._state(head, toks, text) for toks, text in zip(block_tokens, parts.blocks)]
        if self.store.stats.computed != computed:
            # Computing a state leaves its own evaluation behind the head (marker "[1]" and block, in one
            # batch), and a prompt assembled on top of it differed from the same prompt assembled from
            # saved states (logits up to 0.45 apart with the 1.5B model: another greedy answer on first
            # use than on every later one). Dropping it makes a first answer the same as a later one.
            self._keep_prefix(head)
        try:
            self._assemble(head, segments, states)
        except _Refused as e:  # forget the state llama.cpp would not take: the next use computes it anew
            self.store.forget(self.store.key(head + self.marker_one, list(e.state.tokens)))
            raise GenerationError(str(e)) from None
        return head + [t for _, toks in segments for t in toks]

    def precompute(self, head_text: str, blocks: Sequence[str]) -> int:
        """Compute and save the states of `blocks` that are not saved yet; return how many were computed."""
        head = self.tokens(self.frame.before_user + head_text, first=True)
        self._keep_head(head)
        before = self.store.stats.computed
        for block in blocks:
            self._state(head, self.tokens(block), block)
        return self.store.stats.computed - before

    # ---- building a state
    def _state(self, head: list[int], block: list[int], text: str) -> BlockState:
        key = self.store.key(head + self.marker_one, block)
        state = self.store.get(key)
        if state is None:
            state = self._compute(head, self.marker_one, block)
            self.store.stats.computed += 1
            self.store.put(key, state, text)
        return state

    def _compute(self, head: list[int], marker: list[int], block: list[int]) -> BlockState:
        """Evaluate head + marker + block in sequence 0 and save the block's cells alone."""
        C, llm = self.C, self.llm
        self._keep_prefix(head)
        llm.eval(marker + block)
        start = len(head) + len(marker)
        C.llama_memory_seq_rm(self.mem, SCRATCH, -1, -1)
        C.llama_memory_seq_cp(self.mem, 0, SCRATCH, start, start + len(block))
        size = C.llama_state_seq_get_size(self.ctx, SCRATCH)
        buf = (ctypes.c_uint8 * size)()
        written = C.llama_state_seq_get_data(self.ctx, buf, size, SCRATCH)
        C.llama_memory_seq_rm(self.mem, SCRATCH, -1, -1)
        if written != size:
            raise GenerationError(f"llama.cpp saved {written} of {size} bytes of a passage state")
        return BlockState(tuple(block), start, bytes(buf))

    # ---- assembling the prompt
    def _assemble(self, head: list[int], segments, states: list[BlockState]) -> None:
        """Keep what the cache holds of this prompt already (a follow-up's shared passages), fill in the rest."""
        body = segments[:-1]  # the tail is left to create_completion
        flat = head + [t for _, toks in body for t in toks]
        starts = [len(head)]
        for _, toks in body:
            starts.append(starts[-1] + len(toks))
        cached = self._common_prefix(flat)
        # Restart at the first segment not wholly cached: a block is placed whole, never in part.
        first = next((i for i in range(len(body)) if starts[i + 1] > cached), len(body))
        self._keep_prefix(flat[: starts[first]])
        block_no = sum(1 for kind, _ in body[:first] if kind == "block")
        for kind, toks in body[first:]:
            if kind == "fresh":
                self.llm.eval(toks)
            else:
                self._splice(states[block_no])
                block_no += 1

    def _common_prefix(self, target: list[int]) -> int:
        """How many of `target`'s first tokens the cache holds already."""
        return self.llm.longest_token_prefix(self.llm.input_ids[: self.llm.n_tokens], target)

    def _keep_head(self, head: list[int]) -> None:
        """Make sequence 0 start with the head evaluated whole, in one call, never in parts.

        A head whose first part stayed cached from another prompt (the warm-up's chat, a follow-up's
        query rewrite) and whose rest was evaluated after it holds other numbers than a head evaluated
        at once, and the greedy answer could differ: the same question answered one way by `ask` and
        another by the page. So a head not wholly cached is evaluated anew from its first token; a head
        wholly cached is left with what follows it (a follow-up reuses its first passages, `_assemble`).
        """
        if self._common_prefix(head) < len(head):
            self.C.llama_memory_seq_rm(self.mem, 0, -1, -1)
            self.llm.n_tokens = 0
            self.llm.eval(head)

    def _keep_prefix(self, tokens: list[int]) -> None:
        """Make sequence 0 hold exactly `tokens`, evaluating only what is not cached already."""
        keep = self._common_prefix(tokens)
        self.C.llama_memory_seq_rm(self.mem, 0, keep, -1)
        self.llm.n_tokens = keep
        if keep < len(tokens):
            self.llm.eval(tokens[keep:])

    def discard_scratch(self) -> None:
        self.C.llama_memory_seq_rm(self.mem, SCRATCH, -1, -1)

    def _splice(self, state: BlockState) -> None:
        """Load a saved block state into the scratch sequence, shift it to the end of sequence 0, copy it in."""
        C, llm = self.C, self.llm
        pos = llm.n_tokens
        buf = (ctypes.c_uint8 * len(state.data)).from_buffer_copy(state.data)
        C.llama_memory_seq_rm(self.mem, SCRATCH, -1, -1)
        if C.llama_state_seq_set_data(self.ctx, buf, len(state.data), SCRATCH) == 0:
            raise _Refused("llama.cpp could not load a saved passage state", state)
        C.llama_memory_seq_add(self.mem, SCRATCH, -1, -1, pos - state.start)
        C.llama_memory_seq_cp(self.mem, SCRATCH, 0, -1, -1)
        C.llama_memory_seq_rm(self.mem, SCRATCH, -1, -1)
        end = pos + len(state.tokens)
        if C.llama_memory_seq_pos_max(self.mem, 0) != end - 1:
            raise _Refused("a spliced passage state did not land where expected", state)
        llm.input_ids[pos:end] = state.tokens
        llm.n_tokens = end
