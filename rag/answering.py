"""Turn the model's raw reply into an `Answer`: checked citations, a short answer, and abstention
decided from evidence (retrieval strength and citation support), not only from the model's words.

>>> short_answer("The Denver Broncos represented the AFC [1].", "Which team represented the AFC?")
'Denver Broncos'
"""

from __future__ import annotations

import re
from typing import Sequence

from .citations import check_answer, is_refusal, strip_markers
from .keyword import STOPWORDS, content_words, stem
from .numbers import number_values
from .records import Answer, Hit, Passage, Timings

NOT_FOUND = "The documents do not say."
_WORD = re.compile(r"[^\s]+")
_COUNT_QUESTION = re.compile(r"^\s*how (many|much)\b", re.I)
_QUANTITY_QUESTION = re.compile(r"^\s*(how (many|much|long|old|far)|when|what (year|date|time|day|month)|in what year)\b", re.I)


def retrieval_evidence(question: str, hits: Sequence[Hit], idf) -> tuple[float, float]:
    """(best cosine, idf-weighted share of the question's content words found in the top chunks)."""
    if not hits:
        return 0.0, 0.0
    best_dense = max((h.dense_score or 0.0) for h in hits)
    wanted = set(content_words(question))
    if not wanted:
        return best_dense, 0.0
    present: set[str] = set()
    for h in hits[:3]:
        present |= {stem(w) for w in content_words(h.chunk.text)}
    total = sum(idf(w) for w in wanted)
    found = sum(idf(w) for w in wanted if stem(w) in present)
    return best_dense, found / total if total else 0.0


def short_answer(claim: str, question: str) -> str:
    """The shortest phrase of the claim that answers: its longest run of words not in the question.

    Runs are split at content words the question already used; stopwords at the edges are trimmed.
    For how-many/when questions a run with a number is preferred.
    """
    claim = strip_markers(claim).rstrip(".!?")
    asked = {stem(w) for w in content_words(question)}
    words = _WORD.findall(claim)
    runs: list[list[str]] = [[]]
    for w in words:
        norm = [t for t in content_words(w)]
        if norm and all(stem(t) in asked for t in norm):
            runs.append([])
        else:
            runs[-1].append(w)
    runs = [_trim(r) for r in runs]
    runs = [r for r in runs if any(content_words(" ".join(r)))]
    if not runs:
        return claim
    if _QUANTITY_QUESTION.search(question):
        numeric = [r for r in runs if any(ch.isdigit() for ch in " ".join(r))]
        runs = numeric or runs
    best = max(runs, key=lambda r: len(content_words(" ".join(r))))
    return " ".join(best).strip(" ,;:")


def _trim(run: list[str]) -> list[str]:
    def is_stop(w: str) -> bool:
        toks = content_words(w) or []
        return not toks or w.lower().strip(",.;:") in STOPWORDS
    while run and is_stop(run[0]):
        run = run[1:]
    while run and is_stop(run[-1]):
        run = run[:-1]
    return run


def finish(
    question: str, raw: str, passages: Sequence[Passage], timings: Timings, search_query: str, qid: str | None,
) -> Answer:
    """Check the reply against the passages and decide whether the answer stands or abstains."""
    checked = check_answer(raw, passages, question)
    refused = is_refusal(raw)
    reason = ""
    if checked.supported_sentences == 0:
        reason = "the model found no answer in the passages" if refused or not raw.strip() else (
            "the model's answer is not supported by the passages")
    elif _COUNT_QUESTION.search(question) and not number_values(strip_markers(checked.text)):
        # "How much did Japan contribute?" answered without any amount does not answer it, however
        # well its other words match a passage.
        reason = "the question asks for a number and the answer gives none"
    if reason:
        return Answer(
            question=question, answer=NOT_FOUND, abstained=True, citations=(), passages=tuple(passages),
            timings=timings, search_query=search_query, abstain_reason=reason, id=qid, raw_answer=raw,
            extra={"unsupported": list(checked.unsupported), "dropped_markers": list(checked.dropped_markers)},
        )
    first = _first_supported_claim(checked.text)
    return Answer(
        question=question, answer=checked.text, abstained=False, citations=checked.citations,
        passages=tuple(passages), timings=timings, short_answer=short_answer(first, question),
        search_query=search_query, id=qid, raw_answer=raw,
        extra={"unsupported": list(checked.unsupported), "dropped_markers": list(checked.dropped_markers)},
    )


def abstain_early(question: str, passages: Sequence[Passage], timings: Timings, search_query: str, qid: str | None, reason: str) -> Answer:
    return Answer(
        question=question, answer=NOT_FOUND, abstained=True, citations=(), passages=tuple(passages),
        timings=timings, search_query=search_query, abstain_reason=reason, id=qid,
    )


def _first_supported_claim(text: str) -> str:
    """The first sentence that carries a citation marker (checked text only has supported ones)."""
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if re.search(r"\[\d+\]", sentence):
            return sentence
    return text

