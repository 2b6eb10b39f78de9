"""The answer decision's signals for a reply: the rules' values and the model's own checks."""

from __future__ import annotations

from ..answer.answering import first_supported_claim
from ..generation import Grounding, Usage
from ..answer.citations import claim_text, find_markers
from ..answer.prompting import build_answerable_blocks, build_blocks, build_choice_blocks, load_prompt, render
from ..records import Answer
from .turn import _Turn, MEMORY_SYSTEM, MEMORY_TOKENS, _Costs


class SignalReading:
    """The answer decision's signals for a reply: the rules' values and the model's own checks.

    One part of `Pipeline` (rag/pipeline/core.py), which holds the settings, models, index and locks it uses.
    """

    def _signals(self, turn: "_Turn", vetoed: Answer, loose: Answer, raw: str, passages, usage: Usage,
                 stop_event, costs: "_Costs", ruled: Answer, state: list | None = None):
        """Every signal of `rag.answer.signals` for the attached answer `loose` (`ruled`: the rules' answer before
        the model check's verdict, whose P(yes) and hidden `state` are reused when it is the same claim),
        and the model check's hidden state for that claim (None when it was not read)."""
        from ..answer.signals import (embedding_signals, memory_signals, merged, question_term_signals, reply_signals,
                                      retrieval_signals, veto_signals)

        first = first_supported_claim(loose.answer)
        if not ruled.abstained and first_supported_claim(ruled.answer) == first:
            p_yes = vetoed.model_check  # the rules' own claim and passage: asked once
        else:
            state = [] if state is not None else None
            p_yes = costs.timed("p_yes_attached", self._model_check, turn.question, loose, passages, stop_event, state)
        markers = [n for m in find_markers(first) for n in m.numbers]
        number = markers[0] if markers else None  # the passage the first claim cites
        cited = next((c for c in loose.citations if c.marker == number), None)
        span = cited.text if cited else ""
        memory = costs.timed("memory", self._memory_reply, turn.question, stop_event) if self.settings.memory_check else None
        answerable = costs.timed("p_answerable", self._answerability, turn.question, number, passages, stop_event) \
            if self._asks_answerability else None
        choice = costs.timed("sentence_choice", self._sentence_choice, turn, passages, cited, loose.short_answer,
                             stop_event) if self._asks("sentence_choice", "choice_") else {}
        cosines = costs.timed("embeddings", embedding_signals, self.embedder, turn.question, claim_text(first), span) \
            if span else {}
        return merged(
            loose.signals or {}, veto_signals(vetoed.abstain_reason), {"p_yes": p_yes},
            {"p_answerable": answerable} if answerable is not None else {}, choice,
            reply_signals(usage.token_logprobs, raw, loose.short_answer),
            memory_signals(memory, loose.short_answer, span), cosines,
            retrieval_signals(passages, number, turn.best_dense, turn.keyword_overlap),
            question_term_signals(turn.question, next((p for p in passages if p.number == number), None)),
        ), (state[0] if state else None)

    @property
    def _asks_answerability(self) -> bool:
        """The answerability check runs when asked for (eval records it) or when the calibrator weighs it."""
        return self._asks("answerability_check", "p_answerable")

    def _asks(self, setting: str, signal: str) -> bool:
        """Whether an optional check runs: its setting is on, or the calibrator weighs a signal it gives."""
        calibrator = self.calibrator
        return getattr(self.settings, setting) or (
            calibrator is not None and any(n.startswith(signal) for n in calibrator.names))

    def _sentence_choice(self, turn: "_Turn", passages, cited, short: str, stop_event) -> dict[str, float]:
        """The model's constrained choice of the passages' sentence that answers (`signals.choice_signals`)."""
        from ..answer.signals import choice_options, choice_signals

        options = choice_options(passages)
        if not options or (stop_event is not None and stop_event.is_set()):
            return {}
        answer_blocks = turn.blocks if turn.blocks is not None else build_blocks(turn.question, passages)
        blocks = build_choice_blocks(turn.question, answer_blocks)
        grounding = Grounding(turn.question, tuple(p.text for p in passages),
                              blocks if self.generator.reuses_passage_states else None)
        shares = self.generator.choice_shares(blocks.messages(), [o[3] for o in options], grounding)
        return choice_signals(shares, options, passages, cited, short)

    def _answerability(self, question: str, number: int | None, passages, stop_event) -> float | None:
        """The model's P(yes) that passage `number` answers the question (no claim in the prompt)."""
        passage = next((p for p in passages if p.number == number), None)
        if passage is None or (stop_event is not None and stop_event.is_set()):
            return None
        blocks = build_answerable_blocks(question, passage.text)
        grounding = Grounding(question, (passage.text,), blocks if self.generator.reuses_passage_states else None)
        return self.generator.yes_probability(blocks.messages(), grounding)

    def _memory_reply(self, question: str, stop_event) -> str | None:
        """The model's answer to the question with no passages at all (a short prompt of its own)."""
        if stop_event is not None and stop_event.is_set():
            return None
        messages = [{"role": "system", "content": MEMORY_SYSTEM},
                    {"role": "user", "content": render(load_prompt("memory.txt"), question=question)}]
        return "".join(self.generator.stream(messages, MEMORY_TOKENS, 0.0, Usage(), stop_event, Grounding(question)))
