"""The second, wider reading: a reply the decision refused is followed by one from more passages.

Setting `reread_tokens` (0 = off) and `reread_passages`. The first reading is what it is without the
setting (its first token comes as soon); only when its decision abstains on a reply the model wrote is
the question searched again with the wider budget and read once more, and that reply's decision stands.
Measured in docs/retrieval.md, "A second, wider reading".
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Iterator

from ..records import Answer
from .turn import Done, Reread, Token, _Turn


class WiderReading:
    """One part of `Pipeline` (rag/pipeline/core.py), which holds the settings and the reader it calls."""

    def _read_widening(self, turn: _Turn, passages, idf, k: int | None, evidence_tokens: int | None, scope,
                       max_new_tokens: int | None, stop_event) -> Iterator[Token | Reread | Done]:
        """`_read` the passages; if the decision refuses the reply, read again with the wider budget."""
        first = None
        for event in self._read(turn, passages, idf, max_new_tokens, stop_event):
            if isinstance(event, Done) and self._rereads(event.answer, stop_event):
                first = event.answer
                break
            yield event
        if first is None:
            return
        s = self.settings
        wider = self._retrieve(turn.question, turn.query, max(k or 0, s.reread_passages),
                               max(evidence_tokens or 0, s.reread_tokens), scope)[2]
        if len(wider) <= len(passages):  # nothing more to read: the first reading's abstention stands
            yield Done(first)
            return
        yield Reread(tuple(wider), first.abstain_reason)
        reread_s = time.perf_counter() - turn.t0
        for event in self._read(turn, wider, idf, max_new_tokens, stop_event):
            if isinstance(event, Done):
                event = Done(_second_reading(first, event.answer, reread_s))
            yield event

    def _rereads(self, answer: Answer, stop_event) -> bool:
        """Read the question again with wider evidence? When the setting is on and the decision refused a
        reply the model wrote (not a question stopped, nor one abstained on before the model)."""
        return (self.settings.reread_tokens > 0 and answer.abstained and answer.timings.ttft_s is not None
                and not (stop_event is not None and stop_event.is_set()))


def _second_reading(first: Answer, second: Answer, reread_s: float) -> Answer:
    """The second reading's answer, with when it began and why the first abstained; the first token the
    asker saw was the first reading's."""
    timings = replace(second.timings, ttft_s=first.timings.ttft_s, reread_s=reread_s)
    return replace(second, timings=timings, readings=2, first_reason=first.abstain_reason)
