"""The generator interface: what every engine (llama.cpp, transformers, an OpenAI-compatible server,
the echo fake) offers. `registry.make_generator` picks one.

>>> from .echo import EchoGenerator
>>> g = EchoGenerator(script="Hello [1].")
>>> g.generate([{"role": "user", "content": "hi"}])
'Hello [1].'
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence


@dataclass(frozen=True)
class Grounding:
    """What the prompt was built from: the question and the passages' texts, [1] first.

    Real engines read only the rendered messages; the echo fake answers from these, so a change
    to the prompt templates cannot silently break it.
    """

    question: str
    passages: tuple[str, ...] = ()
    # The prompt as head, passage blocks and tail (`rag.answer.prompting.PromptBlocks`) when it was built
    # that way: an engine that keeps passage states (llama.cpp) reuses them, the others ignore it.
    blocks: Any = None


@dataclass
class Usage:
    """Filled in by `stream` as it runs (mutable on purpose: it is the stream's side channel)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    # (token text, log-probability) of each generated token, when the engine reads its logits (llama.cpp);
    # empty otherwise. The answer decision reads the model's confidence in its own reply from these.
    token_logprobs: list = field(default_factory=list)


class Generator(ABC):
    """A chat model. Subclasses implement `stream`; `generate` joins it."""

    name: str = "generator"
    model_name: str = ""
    context_window: int = 4096

    @abstractmethod
    def stream(
        self, messages: list[dict], max_tokens: int = 160, temperature: float = 0.0,
        usage: Usage | None = None, stop_event=None, grounding: Grounding | None = None,
    ) -> Iterator[str]:
        """Yield pieces of the reply as they are produced; stop early when `stop_event` is set."""

    def generate(self, messages: list[dict], max_tokens: int = 160, temperature: float = 0.0) -> str:
        return "".join(self.stream(messages, max_tokens, temperature))

    def count_tokens(self, messages: list[dict]) -> int:
        """Prompt length in tokens (a 4-characters-a-token estimate unless the engine knows better)."""
        return sum(len(m["content"]) for m in messages) // 4 + 8 * len(messages)

    def count_text(self, text: str) -> int:
        """Tokens of a piece of text (a passage), by the same estimate or tokenizer as `count_tokens`."""
        return len(text) // 4

    @property
    def reuses_passage_states(self) -> bool:
        """Whether this engine computes each passage once and reuses it (then prompts carry whole chunks)."""
        return False

    def without_passage_states(self) -> "Generator":
        """This engine with prompts prefilled whole (itself, for engines that keep no passage states)."""
        return self

    def warm_up(self, system_prompt: str = "") -> None:
        """Load weights (and run `system_prompt` once where that is kept), so the first question is not slower."""

    def precompute_states(self, system: str, head: str, blocks: Sequence[str]) -> int:
        """Compute and save the states of `blocks` behind `head` now; return how many were new (0: keeps none)."""
        return 0

    def yes_probability(self, messages: list[dict], grounding: Grounding | None = None,
                        hidden: list | None = None) -> float | None:
        """P("Yes") / (P("Yes") + P("No")) for the first token of the reply to `messages`.

        `grounding.blocks`, when given, is the same prompt cut at its passage (engines that reuse saved
        passage states compute only the rest). `hidden`, when given, gets the model's hidden
        states at the prompt's last token (one float32 array) from engines that can read them: what a
        probe is trained on (`eval/probe_study.py`).

        None when the engine cannot read its next-token distribution (then no model check is made).
        """
        return None

    def choice_shares(self, messages: list[dict], options: Sequence[str],
                      grounding: Grounding | None = None) -> list[float] | None:
        """How likely the model's reply to `messages` is each of `options`, word for word (a share each).

        The reply is constrained to the options' literal text, as a grammar of alternatives would: at each
        token only those continuing some option are allowed, and their probabilities are renormalised
        (`constrained_shares`). None when the engine cannot read its next-token distribution.
        """
        return None


def constrained_shares(options: Sequence[Sequence[int]], next_logits, end: int | None = None,
                       max_reads: int = 8) -> list[float]:
    """P(reply = option) for each token sequence, when decoding may only continue one of `options`.

    `next_logits(prefix)` gives the next-token logits after the reply's first tokens `prefix` (a tuple;
    `()` is the prompt itself). At each prefix the allowed tokens are those that continue some option
    (and `end`, the end of the reply, for an option that stops there); their softmax, renormalised over
    them, splits the prefix's mass. Prefixes are expanded most probable first; once one option is left
    it takes the whole mass, and after `max_reads` logit reads a prefix's mass is split evenly among the
    options under it (an estimate where the model was not asked). Identical options share their mass.

    >>> table = {(): {1: 0.0, 2: 0.0}, (1,): {3: 2.0, 4: 0.0}}
    >>> def logits(prefix):
    ...     row = [-50.0] * 6
    ...     for t, v in table[prefix].items():
    ...         row[t] = v
    ...     return row
    >>> [round(p, 3) for p in constrained_shares([(1, 3), (1, 4), (2, 5)], logits)]
    [0.44, 0.06, 0.5]
    """
    import heapq

    import numpy as np

    shares = [0.0] * len(options)
    frontier = [(-1.0, (), tuple(range(len(options))))]
    reads = 0
    while frontier:
        negative, prefix, members = heapq.heappop(frontier)
        mass, depth = -negative, len(prefix)
        distinct = {tuple(options[i]) for i in members}
        if len(distinct) == 1 or reads >= max_reads:
            for i in members:
                shares[i] += mass / len(members)
            continue
        logits = np.asarray(next_logits(prefix), dtype=np.float64)
        reads += 1
        groups: dict[int, list[int]] = {}
        for i in members:  # -1: the options that end at this prefix
            groups.setdefault(options[i][depth] if len(options[i]) > depth else -1, []).append(i)
        keys = list(groups)
        stop = logits[end] if end is not None else logits.max() - 20.0
        values = np.array([logits[t] if t >= 0 else stop for t in keys])
        weights = np.exp(values - values.max())
        weights /= weights.sum()
        for token, w in zip(keys, weights):
            if token < 0:
                for i in groups[token]:
                    shares[i] += mass * float(w) / len(groups[token])
            else:
                heapq.heappush(frontier, (-mass * float(w), prefix + (token,), tuple(groups[token])))
    return shares


def greedy_logprob(logits) -> tuple[int, float]:
    """The greedy token of a next-token distribution and its log-probability (log-softmax at the argmax)."""
    import numpy as np

    x = np.asarray(logits, dtype=np.float64)
    top = int(x.argmax())
    m = x[top]
    return top, float(-np.log(np.exp(x - m).sum()))


def yes_share(logits, ids: tuple[list[int], list[int]]) -> float:
    """Softmax mass of the Yes tokens over that of the Yes and No tokens together."""
    import numpy as np

    yes, no = ids
    pick = np.asarray(logits, dtype=np.float64)[list(dict.fromkeys(yes + no))]
    weights = np.exp(pick - pick.max())
    n_yes = len(dict.fromkeys(yes))
    return float(weights[:n_yes].sum() / weights.sum())
