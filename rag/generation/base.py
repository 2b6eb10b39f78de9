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
    # The prompt as head, passage blocks and tail (`rag.prompting.PromptBlocks`) when it was built
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
