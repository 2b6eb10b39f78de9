"""One question on its way through the pipeline: the stream's events, the turn, what its check cost."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Iterator

from ..errors import QuestionError
from ..records import Answer, Passage

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ANAPHORA = re.compile(r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|him|there|the same|then)\b", re.I)


@dataclass(frozen=True)
class Retrieved:
    """Stream event: passages are ready (shown before the first token)."""

    passages: tuple[Passage, ...]
    search_query: str


@dataclass(frozen=True)
class Token:
    """Stream event: a piece of the model's reply."""

    text: str


@dataclass(frozen=True)
class Reread:
    """Stream event: the first reply was refused; the question is read again with these (wider) passages.

    The tokens that follow are the second reply's: whatever was streamed before is discarded.
    """

    passages: tuple[Passage, ...]
    reason: str  # why the first reading abstained


@dataclass(frozen=True)
class Done:
    """Stream event: the final, checked answer."""

    answer: Answer


@dataclass(frozen=True)
class _Turn:
    """One question as it reaches the reader: what was asked, after what, searched as what, since when."""

    question: str
    history: list
    query: str  # the standalone query retrieval used
    qid: str | None
    t0: float  # perf_counter() when the question arrived
    retrieve_ms: float
    best_dense: float | None = None  # the retrieval floor's figures (None: passages given, not retrieved)
    keyword_overlap: float | None = None
    blocks: object = None  # the answer prompt as head, passage blocks and tail (with passage states)


# The instruction's extra line with the setting `quote_first` (checked by answering.quote_problem).
QUOTE_FIRST = ('Write two lines: first "Quote:" and the one sentence of the passages that states the answer, '
               'copied word for word in double quotation marks; then "Answer:" and the answer.')
# The memory test: the question alone, answered in a few words (rag/answer/signals.py, memory_signals).
MEMORY_SYSTEM = "You answer questions from general knowledge, in a few words."
MEMORY_TOKENS = 16


class _Held:
    """Releases a lock acquired beforehand when the block ends (the question counted itself first)."""

    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        return self.lock

    def __exit__(self, *exc):
        self.lock.release()


class _Costs:
    """Milliseconds spent in each part of the answer check (`Timings.check_ms`; `bench` prints them)."""

    def __init__(self):
        self.ms: dict[str, float] = {}

    def timed(self, name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - t0) * 1000


def _final(events: Iterator[Retrieved | Token | Done]) -> Answer:
    """The answer of the Done event that ends a stream."""
    answer = None
    for event in events:
        if isinstance(event, Done):
            answer = event.answer
    assert answer is not None
    return answer


def clean_question(question: str, max_chars: int) -> str:
    """Control characters removed and whitespace trimmed; empty or too long is a QuestionError."""
    if not isinstance(question, str):
        raise QuestionError("the question must be text")
    question = _CONTROL.sub(" ", question).strip()
    if not question:
        raise QuestionError("the question is empty")
    if len(question) > max_chars:
        raise QuestionError(f"the question is {len(question)} characters long; the limit is {max_chars}")
    return question


def _strip_refs(text: str) -> str:
    return re.sub(r"\[\d+\]", "", text)
