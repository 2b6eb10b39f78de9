"""What llama.cpp's next-token logits tell: P(yes), a constrained choice among options, the layers' outputs."""

from __future__ import annotations

from typing import Sequence

from ..errors import GenerationError
from .base import Grounding, constrained_shares, yes_share


class LlamaLogitReading:
    """What llama.cpp's next-token logits tell: P(yes), a constrained choice among options, the layers' outputs.

    One part of `LlamaCppGenerator` (rag/generation/llama_cpp.py), whose loaded model (`self.llm`) it reads.
    """

    def yes_probability(self, messages: list[dict], grounding: Grounding | None = None,
                        hidden: list | None = None) -> float | None:
        """Read the next-token logits of the reply (one token, no sampling) and compare Yes with No.

        llama.cpp re-uses the KV cache of the longest prefix it holds already, and with passage states
        (`grounding.blocks`) the passage's saved state: only the tokens after the passage
        are evaluated. `hidden`, when given, gets the layer outputs at the prompt's last token (`_LayerTaps`).
        """
        read = self._next_logits(messages, grounding)
        if read is None:
            return None
        if hidden is not None:
            state = self._last_hidden_state()
            if state is not None:
                hidden.append(state)
        return yes_share(read[1], self._answer_token_ids())

    def choice_shares(self, messages: list[dict], options: Sequence[str],
                      grounding: Grounding | None = None) -> list[float] | None:
        """Each option's share of the reply constrained to the options' literal text (`constrained_shares`).

        The prompt is read once (from passage states when `grounding.blocks` allows), then each further
        prefix costs one token: llama.cpp keeps the prompt's cache and evaluates only what follows it.
        """
        llm = self.llm
        prompt: list[int] = []

        def next_logits(prefix: tuple[int, ...]):
            read = self._next_logits(messages, grounding, prompt + list(prefix) if prefix else None)
            if read is None:
                raise GenerationError("generation failed: no logits were read")
            if not prefix:
                prompt[:] = [int(t) for t in read[0]]  # the prompt as llama.cpp tokenized it
            return read[1]

        encoded = [tuple(llm.tokenize(o.encode("utf-8"), add_bos=False, special=False)) for o in options]
        if not any(encoded):
            return None
        return constrained_shares(encoded, next_logits, end=llm.token_eos())

    def _next_logits(self, messages: list[dict], grounding: Grounding | None, tokens: list[int] | None = None):
        """The next-token logits after the prompt of `messages` (from passage states where `grounding.blocks`
        allows), or after `tokens` when given, with the tokens they follow; None when none were read.

        One token is sampled and not evaluated, so the cache then holds exactly those tokens: a longer
        prompt that starts with them costs only its new tokens (llama.cpp's prefix match).
        """
        from llama_cpp import LogitsProcessorList

        llm = self.llm
        seen: list = []

        def grab(input_ids, scores):
            seen.append((input_ids.copy(), scores.copy()))
            return scores

        one = dict(max_tokens=1, temperature=0.0, top_k=1, logits_processor=LogitsProcessorList([grab]))
        try:
            if tokens is None:
                tokens = self._prefilled_tokens(messages, grounding)
            if tokens is not None:
                llm.create_completion(prompt=tokens, **one)
            else:
                llm.create_chat_completion(messages=messages, **one)
        except ValueError as e:
            raise GenerationError(f"generation failed: {e}") from None
        return seen[0] if seen else None

    def _last_hidden_state(self):
        """Hidden states at the last token in the cache: the outputs of a few layers (`PROBE_FRACTIONS`), each
        the size of the model's embedding, joined into one float32 array.

        llama.cpp hands out a layer's output through its graph callback (`cb_eval`, set when the context
        is made): the last token is decoded again with the callback copying those tensors (one token's
        work; the rest of the cache is kept).
        """
        import numpy as np

        llm = self.llm
        if llm.n_tokens < 1 or self._taps is None:
            return None
        last = int(llm.input_ids[llm.n_tokens - 1])
        llm.n_tokens -= 1
        self._taps.read = {}
        try:
            llm.eval([last])
            read = self._taps.read
        finally:
            self._taps.read = None
        if any(name not in read for name in self._taps.names):
            return None
        return np.concatenate([read[name] for name in self._taps.names])

    def _answer_token_ids(self) -> tuple[list[int], list[int]]:
        if not hasattr(self, "_yes_no"):
            first = lambda w: self.llm.tokenize(w.encode(), add_bos=False, special=False)[0]  # noqa: E731
            self._yes_no = ([first(w) for w in ("Yes", "yes", " Yes")], [first(w) for w in ("No", "no", " No")])
        return self._yes_no
