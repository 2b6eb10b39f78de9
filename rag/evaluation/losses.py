"""Where each wrong answer was lost, and the oracle's passages (`python -m rag eval --oracle`).

An answerable question answered wrongly is put in exactly one bucket, the first that applies:

- `not_retrieved`: no passage given to the model comes from a gold source;
- `not_in_prompt`: a gold source was given, but no gold answer string occurs in the passages
  (passage selection cut it out, or the answer is worded otherwise in the document);
- `model_wrong`: the answer was in the prompt and the model's reply (before the check) is not correct;
- `rejected_by_check`: the reply was correct, and the answer check abstained or removed it.

The oracle reads each question's gold source documents whole, so its losses are the reader's and
the check's alone.

>>> r = Reading(gold_in_prompt=True, answer_in_prompt=True, raw_correct=True, correct=False)
>>> loss_bucket(r), loss_bucket(replace(r, gold_in_prompt=False))
('rejected_by_check', 'not_retrieved')
"""

from __future__ import annotations

from dataclasses import dataclass, replace  # noqa: F401  (replace: used by the docstring example)
from typing import Any, Callable, Sequence

from ..answer.answering import split_quote
from ..answer.citations import strip_markers
from ..errors import RagError
from .metrics import alce_correct, holds_gold
from ..records import Answer, Chunk, Hit, Passage

BUCKETS = ("not_retrieved", "not_in_prompt", "model_wrong", "rejected_by_check")


@dataclass(frozen=True)
class Reading:
    """What one answerable question's loss is judged from: what the model was shown and what it said."""

    gold_in_prompt: bool  # a passage given to the model comes from a gold source
    answer_in_prompt: bool  # a gold answer string occurs in a passage given to the model
    raw_correct: bool  # the model's reply, before the answer check (markers stripped), is correct
    correct: bool  # the final, checked answer is correct


def loss_bucket(r: Reading) -> str | None:
    """The first bucket of BUCKETS that explains a wrong answer; None for a correct one.

    >>> loss_bucket(Reading(gold_in_prompt=True, answer_in_prompt=False, raw_correct=False, correct=False))
    'not_in_prompt'
    >>> loss_bucket(Reading(gold_in_prompt=True, answer_in_prompt=True, raw_correct=True, correct=True)) is None
    True
    """
    if r.correct:
        return None
    if not r.gold_in_prompt:
        return "not_retrieved"
    if not r.answer_in_prompt:
        return "not_in_prompt"
    if not r.raw_correct:
        return "model_wrong"
    return "rejected_by_check"


def prompt_passages(answer: Answer) -> tuple[Passage, ...]:
    """The passages the model was given: none when the pipeline abstained before asking it.

    The retrieval floor abstains with the retrieved passages attached but never shows them to the
    model; the model was asked when it produced a first token or was sent a prompt.
    """
    asked = answer.timings.ttft_s is not None or answer.timings.prompt_tokens > 0
    return answer.passages if asked or not answer.abstained else ()


def evidence_given(given: Sequence[Passage], golds: Sequence[str], gold_sources: Sequence[str]) -> tuple[bool, bool]:
    """(gold_in_prompt, answer_in_prompt): a passage comes from a gold source; a gold answer occurs in one."""
    return (any(p.hit.chunk.source in gold_sources for p in given), any(holds_gold(p.text, golds) for p in given))


def reading(answer: Answer, golds: Sequence[str], gold_sources: Sequence[str], correct: bool) -> Reading:
    """The `Reading` of one answer to an answerable question with these gold answers and sources."""
    gold_in_prompt, answer_in_prompt = evidence_given(prompt_passages(answer), golds, gold_sources)
    return Reading(
        gold_in_prompt=gold_in_prompt,
        answer_in_prompt=answer_in_prompt,
        raw_correct=alce_correct(strip_markers(said(answer)), golds),
        correct=correct,
    )


def said(answer: Answer) -> str:
    """The model's answer without the quotation it opened with (setting `quote_first`), which holds the gold
    whenever the right sentence was quoted, answer or not."""
    if answer.quoted is None:
        return answer.raw_answer
    return split_quote(answer.raw_answer)[1]


def loss_fields(r: Reading | None) -> dict[str, Any]:
    """The per-answer record's fields (all None for an unanswerable question, which has no gold)."""
    if r is None:
        return {"raw_correct": None, "gold_in_prompt": None, "answer_in_prompt": None, "loss": None}
    return {"raw_correct": r.raw_correct, "gold_in_prompt": r.gold_in_prompt,
            "answer_in_prompt": r.answer_in_prompt, "loss": loss_bucket(r)}


def loss_summary(records: Sequence[dict]) -> dict[str, int]:
    """Wrong answerable answers, and how many of them each bucket holds (they sum to `wrong`)."""
    wrong = [a for a in records if a["answerable"] and not a["correct"]]
    return {"wrong": len(wrong), **{b: sum(a.get("loss") == b for a in wrong) for b in BUCKETS}}


def whole_document_passage(number: int, source: str, text: str, title: str = "", url: str | None = None) -> Passage:
    """A document's whole text as one passage, from a chunk spanning it (offsets 0..len(text)).

    >>> p = whole_document_passage(1, "a.txt", "The fund started in 2018.")
    >>> (p.number, p.hit.chunk.source, p.start, p.end, p.text == p.hit.chunk.text)
    (1, 'a.txt', 0, 25, True)
    """
    chunk = Chunk(id=f"{source}#whole", source=source, start=0, end=len(text), text=text, title=title, url=url)
    return Passage(number, Hit(chunk, score=1.0, rank=number), 0, len(text), text)


def gold_passages(sources: Sequence[str], text_of: Callable[[str], str | None],
                  meta_of: Callable[[str], dict] = lambda _: {}) -> list[Passage]:
    """The gold sources whole, numbered [1], [2], ... in the order given.

    `text_of` is the indexed text of a source (`Pipeline.document_text`); a source it does not know
    is an error, since an oracle run without its gold would measure nothing.
    """
    out = []
    for number, source in enumerate(sources, start=1):
        text = text_of(source)
        if text is None:
            raise RagError(f"gold source {source!r} is not an indexed document of --docs")
        meta = meta_of(source) or {}
        out.append(whole_document_passage(number, source, text, meta.get("title") or "", meta.get("url")))
    return out
