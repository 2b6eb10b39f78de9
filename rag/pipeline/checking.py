"""The decision on a reply: the model check, the calibrator, and the vetoes, the calibrated threshold or either."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Sequence

from ..answer.answering import NOT_FOUND, Policy, finish, first_supported_claim
from ..generation import Grounding, Usage
from ..answer.citations import claim_text, find_markers
from ..answer.prompting import build_verify_blocks
from ..records import Answer, Passage, Timings
from .turn import _Turn, _Costs

log = logging.getLogger(__name__)


class AnswerChecking:
    """The decision on a reply: the model check, the calibrator, and the vetoes or the calibrated threshold.

    One part of `Pipeline` (rag/pipeline/core.py), which holds the settings, models, index and locks it uses.
    """

    def _decide(self, turn: "_Turn", vetoed: Answer, raw: str, passages, idf, policy: Policy, usage: Usage,
                stop_event, costs: "_Costs", ruled: Answer | None = None, state: list | None = None) -> Answer:
        """The calibrated decision on a reply: its attachable claims, their signals, P(right), the threshold.

        `vetoed` is the rules' own verdict (every rule a veto); it is what is shown when the setting
        `decision` is "vetoes" or no calibrator is loaded, and its reason is one of the signals.
        """
        kept = dict(veto_reason=vetoed.abstain_reason, veto_answer=vetoed.answer)
        if not self.settings.signals and self.calibrator is None:  # nobody reads the signals: none are computed
            return replace(vetoed, **kept)
        loose = costs.timed("attach", finish, turn.question, raw, passages, Timings(), turn.query, turn.qid, idf, policy,
                            attach=True)
        if loose.abstained:  # nothing can be attached: a veto by construction
            return replace(vetoed, signals={}, **kept)
        signals, vector = self._signals(turn, vetoed, loose, raw, passages, usage, stop_event, costs, ruled or vetoed,
                                        state)
        kept["attached_answer"] = loose.answer
        if vector is not None:  # recorded for a probe (eval --hidden-states; eval/probe_study.py)
            from ..generation.replay import pack_vector

            kept["check_state"] = pack_vector(vector)
        calibrator = self.calibrator
        if calibrator is None:
            return replace(vetoed, signals=signals, **kept)
        confidence = costs.timed("calibrator", calibrator.probability, signals)
        # "vetoes": the rules decide, the answer still carries its confidence; "either" shows what they show
        if self.settings.decision == "vetoes" or (self.settings.decision == "either" and not vetoed.abstained):
            return replace(vetoed, signals=signals, confidence=confidence, **kept)
        threshold = calibrator.threshold(self.settings.max_risk)
        decided = replace(loose, signals=signals, confidence=confidence, model_check=vetoed.model_check, **kept)
        if confidence >= threshold:
            return decided
        against = calibrator.weighed_against(signals)
        reason = (f"confidence {confidence:.2f} is below {threshold:.2f}, the threshold for at most "
                  f"{self.settings.max_risk:.0%} wrong answers; weighed most against it: {against}")
        if self.settings.decision == "either":  # both refuse it: the rules' reason first
            reason = f"{vetoed.abstain_reason}; {reason}"
        return replace(decided, answer=NOT_FOUND, abstained=True, citations=(), short_answer="", abstain_reason=reason)

    def _model_check(self, question: str, ruled: Answer, passages: Sequence[Passage], stop_event,
                     state: list | None = None) -> float | None:
        """The model's P(Yes) that the passage cited for the answer states it (the rules judged the rest).

        Asked of the answer the rules keep (its first sentence) and the one passage it cites, in a prompt
        of its own (`prompts/verify_blocks.txt`); with passage states that passage's saved state is
        reused, so only the claim and the instruction are computed.
        """
        if not self.settings.model_check or ruled.abstained:
            return None
        if stop_event is not None and stop_event.is_set():
            return None
        first = first_supported_claim(ruled.answer)
        markers = [n for m in find_markers(first) for n in m.numbers]  # the passage this sentence cites
        passage = next((p for p in passages if markers and p.number == markers[0]), None)
        if passage is None:
            return None
        blocks = build_verify_blocks(claim_text(first), passage.text)
        grounding = Grounding(question, (passage.text,), blocks if self.generator.reuses_passage_states else None)
        # `hidden` only when wanted: engines written before it (a subclass of ours) still work
        extra = {"hidden": state} if state is not None else {}
        return self.generator.yes_probability(blocks.messages(), grounding, **extra)

    @property
    def model_identity(self) -> dict:
        """The models whose signals a calibrator reads: the engine, the generator and the embedder."""
        return {"engine": self.generator.name, "generator": self.settings.generator, "embedder": self.settings.embedder}

    @property
    def calibrator(self):
        """The answer decision's calibrator (setting `calibrator`), loaded once; None when there is none.

        A calibrator fitted on other models' signals means nothing for these: then the vetoes decide,
        with a warning (`python -m rag calibrate` fits one for these models).
        """
        if not hasattr(self, "_calibrator"):
            from ..answer.calibration import load_calibrator

            calibrator = load_calibrator(self.settings.calibrator)
            fitted = (calibrator.fitted_on.get("models") or {}) if calibrator is not None else {}
            if fitted and fitted != self.model_identity:
                log.warning("calibrator %s was fitted for %s, not %s: the answer rules decide as vetoes "
                            "(python -m rag calibrate fits one for these models)", self.settings.calibrator, fitted,
                            self.model_identity)
                calibrator = None
            self._calibrator = calibrator
        return self._calibrator
