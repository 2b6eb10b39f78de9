"""Greedy decoding with prompt-lookup drafts: answers copy phrases from the passages, so guess them.

After each new token, the last few tokens produced are looked up in the prompt; if they occur there,
the tokens that followed them are proposed as a draft and checked all at once: one forward pass over
the new token plus the draft gives the model's own next token at every position, and the draft is
kept up to its first disagreement. Where a pass over a handful of tokens costs about as much as one
(generation bound by reading the weights), every accepted draft token is nearly free; on this project's
2-core CPU it is not (a pass over k tokens costs about k single-token passes, `rag bench` prints them),
so the gain here is small and the setting is off by default. The output is the greedy output: only the
model's own choices are kept (up to floating-point ties).

Only logits of the positions checked are computed (not the whole vocabulary for every prompt token,
as llama-cpp-python's `logits_all` would), and `Llama.input_ids`/`n_tokens` stay in step with the cache.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

NGRAM_MAX = 3


def find_draft(history: Sequence[int], prompt_len: int, max_draft: int, min_ngram: int = 1) -> list[int]:
    """The tokens that followed the latest earlier occurrence, in the prompt, of the history's last n-gram.

    >>> find_draft([5, 6, 7, 8, 9, 6, 7], prompt_len=5, max_draft=3)  # what followed "6 7" in the prompt
    [8, 9]
    >>> find_draft([1, 2, 3, 4], prompt_len=4, max_draft=3)
    []
    """
    for n in range(NGRAM_MAX, min_ngram - 1, -1):
        if len(history) <= n:
            continue
        tail = list(history[-n:])
        for start in range(prompt_len - n, -1, -1):
            if list(history[start : start + n]) == tail:
                follow = list(history[start + n : min(start + n + max_draft, len(history) - n)])
                if follow:
                    return follow
    return []


class LookupDecoder:
    """Greedy generation for a `llama_cpp.Llama` whose prompt is already in the cache but for its last token."""

    def __init__(self, llm, max_draft: int = 1, min_ngram: int = 3):
        """Defaults from measurement on the 2-core CPU (12 Super Bowl answers, 1.5B model): one drafted
        token after a 3-token match gave 24.1 tokens/s against 21.6 plain; drafts after 2-token matches,
        or longer drafts, were slower (a pass over k tokens costs about k single-token passes here)."""
        import llama_cpp.llama_cpp as C

        self.llm, self.C, self.max_draft, self.min_ngram = llm, C, max_draft, min_ngram
        self.vocab = C.llama_model_get_vocab(llm._model.model)
        self.n_vocab = llm.n_vocab()
        self.drafted = self.accepted = 0

    def generate(self, prompt: list[int], max_tokens: int) -> Iterator[int]:
        """Yield the greedy continuation of `prompt` token by token (end-of-generation token not yielded)."""
        llm = self.llm
        cached = llm.longest_token_prefix(llm.input_ids[: llm.n_tokens], prompt)
        cached = min(cached, len(prompt) - 1)  # the last prompt token is always evaluated: its logits are needed
        self.C.llama_memory_seq_rm(llm._ctx.memory, 0, cached, -1)
        llm.n_tokens = cached
        history = list(prompt)
        logits = self.decode(prompt[cached:], n_check=1)
        token = int(np.argmax(logits[-1]))
        produced = 0
        while produced < max_tokens and not self.C.llama_vocab_is_eog(self.vocab, token):
            yield token
            produced += 1
            history.append(token)
            draft = find_draft(history, len(prompt), min(self.max_draft, max_tokens - produced), self.min_ngram)
            logits = self.decode([token] + draft, n_check=1 + len(draft))
            choices = [int(i) for i in np.argmax(logits, axis=1)]
            kept = 0
            while kept < len(draft) and draft[kept] == choices[kept] and produced < max_tokens:
                if self.C.llama_vocab_is_eog(self.vocab, draft[kept]):
                    break
                yield draft[kept]
                produced += 1
                history.append(draft[kept])
                kept += 1
            self.drafted += len(draft)
            self.accepted += kept
            self.drop_after(len(history))  # the cache keeps the new token and the accepted draft only
            token = choices[kept]

    def decode(self, tokens: list[int], n_check: int) -> np.ndarray:
        """Evaluate `tokens` after the cache; return the logits of the last `n_check` positions."""
        llm = self.llm
        for i in range(0, len(tokens), llm.n_batch):
            part = tokens[i : i + llm.n_batch]
            last = i + len(part) >= len(tokens)
            llm._batch.set_batch(batch=part, n_past=llm.n_tokens, logits_all=False)
            if last:
                for j in range(max(0, len(part) - n_check), len(part)):
                    llm._batch.batch.logits[j] = True
            llm._ctx.decode(llm._batch)
            llm.input_ids[llm.n_tokens : llm.n_tokens + len(part)] = part
            llm.n_tokens += len(part)
        rows = min(n_check, len(part))
        out = np.empty((rows, self.n_vocab), dtype=np.float32)
        for r in range(rows):  # llama_get_logits_ith counts within the last batch decoded
            ptr = self.C.llama_get_logits_ith(llm._ctx.ctx, len(part) - rows + r)
            out[r] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
        return out

    def drop_after(self, n: int) -> None:
        """Forget the cache from position `n` on (a rejected draft; `bench` timing one pass)."""
        self.C.llama_memory_seq_rm(self.llm._ctx.memory, 0, n, -1)
        self.llm.n_tokens = n


def stream_text(llm, tokens: Iterator[int], stops: Sequence[str] = ()) -> Iterator[str]:
    """Text pieces of a token stream, a piece per token; a piece waits while it ends inside a UTF-8
    character or with the start of a stop string, and the stream ends before the first stop string."""
    produced: list[int] = []
    text = shown = ""
    stops = [s for s in stops if s]
    for token in tokens:
        produced.append(token)
        try:
            text = llm.detokenize(produced).decode("utf-8")
        except UnicodeDecodeError:  # half a character: wait for the rest
            continue
        cut = min((text.find(s) for s in stops if s in text), default=-1)
        if cut >= 0:
            if cut > len(shown):
                yield text[len(shown):cut]
            return
        ready = len(text) - _partial_stop(text, stops)
        if ready > len(shown):
            yield text[len(shown):ready]
            shown = text[:ready]
    if len(text) > len(shown):  # a held-back start of a stop string that never completed
        yield text[len(shown):]


def _partial_stop(text: str, stops: Sequence[str]) -> int:
    """Length of the longest end of `text` that begins a stop string (held back until it is decided)."""
    return max((n for s in stops for n in range(min(len(s) - 1, len(text)), 0, -1) if text.endswith(s[:n])), default=0)
