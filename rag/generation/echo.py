"""A deterministic fake generator for tests: no model, instant, selectable like a real engine.

Without a script it answers with the sentence of passage [1] that shares most words with the
question, cited as [1] - an extractive answer whose citation checking has something real to check.
A script is one reply for every question, or a {question: reply} mapping (other questions are
echoed): tests use it to hand the answer checks wrong replies like a real model's. The question and
passages come through the interface (`Grounding`), never parsed back out of the rendered prompt.

>>> g = EchoGenerator()
>>> "".join(g.stream([], grounding=Grounding("Who won?", ("Rain fell. The Broncos won the game.",))))
'The Broncos won the game [1].'
>>> "".join(EchoGenerator(script={"Who won?": "Nobody [1]."}).stream([], grounding=Grounding("Who won?")))
'Nobody [1].'

"""

from __future__ import annotations

import re
from typing import Iterator

from ..language.terms import content_words
from ..language.text import sentence_spans
from .base import Generator, Grounding, Usage


class EchoGenerator(Generator):
    name = "echo"
    model_name = "echo (test fake)"

    def __init__(self, script: str | dict[str, str] | None = None, yes: float | None = None):
        self.script = script
        self.yes = yes  # what yes_probability reports (None: no model check, like an engine without logits)

    def stream(self, messages, max_tokens=160, temperature=0.0, usage: Usage | None = None, stop_event=None,
               grounding: Grounding | None = None) -> Iterator[str]:
        reply = self._reply(grounding)
        words = re.findall(r"\S+\s*", reply)[:max_tokens]
        if usage is not None:
            usage.prompt_tokens = self.count_tokens(messages)
        for i, word in enumerate(words):
            if stop_event is not None and stop_event.is_set():
                return
            if usage is not None:
                usage.completion_tokens = i + 1
            yield word

    def yes_probability(self, messages: list[dict], grounding: Grounding | None = None,
                        hidden: list | None = None) -> float | None:
        return self.yes

    def _reply(self, grounding: Grounding | None) -> str:
        if isinstance(self.script, str):
            return self.script
        question = grounding.question.strip() if grounding else ""
        if isinstance(self.script, dict) and question in self.script:
            return self.script[question]
        return self._extract(grounding)

    @staticmethod
    def _extract(grounding: Grounding | None) -> str:
        if grounding is None or not grounding.passages:
            return "The documents do not say."
        wanted = set(content_words(grounding.question))
        text = grounding.passages[0]
        spans = sentence_spans(text)
        s, e = max(spans, key=lambda se: len(wanted & set(content_words(text[se[0]:se[1]]))))
        return text[s:e].rstrip(".") + " [1]."
