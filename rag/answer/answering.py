"""Turn the model's raw reply into an `Answer`: checked citations, a short answer, and abstention
decided from evidence (retrieval strength and citation support), not only from the model's words.

>>> short_answer("The Denver Broncos represented the AFC [1].", "Which team represented the AFC?")
'Denver Broncos'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from . import answer_type
from .citations import check_answer, claim_text, is_refusal, strip_markers
from .judge import Thresholds, question_terms
from ..language.nlp import PACKAGED
from ..language.terms import STOPWORDS, content_words, stem
from ..language.numbers import number_values
from ..records import Answer, Hit, Passage, Timings

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


def short_answer(claim: str, question: str, nlp_model: str | None = None) -> str:
    """The shortest phrase of the claim that answers.

    With `nlp_model` (spaCy), an entity of the type the question asks for (who -> a person or
    organisation, when -> a date, ...) that the question did not give, preferring one inside the
    longest run below; else, and without it, the longest run of words not in the question: runs are
    split at content words the question already used, stopwords at the edges are trimmed, and for
    how-many/when questions a run with a number is preferred.
    """
    claim = strip_markers(claim).rstrip(".!?")
    run = _new_words_run(claim, question)
    if nlp_model is None or not claim:
        return run
    entities = answer_type.fitting_entities(question, claim, nlp_model)
    return next((e for e in entities if e in run), entities[0] if entities else run)


def _new_words_run(claim: str, question: str) -> str:
    """The longest run of the claim's words that the question did not use (see `short_answer`)."""
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


@dataclass(frozen=True)
class Policy:
    """When an answer stands: the judge's thresholds and the model check's (settings)."""

    thresholds: Thresholds = Thresholds()
    min_model_yes: float = 0.0  # abstain when the model's own P(Yes) is below this (0: never)
    nlp_model: str = PACKAGED
    check_type: bool = False  # abstain when the answer's type does not fit the question (rag/answer/answer_type.py)
    max_unmentioned: int = -1  # abstain when more question words than this occur in no passage given (-1: never)
    quote_first: bool = False  # the reply opens with a quoted sentence that must be a passage's, word for word

    @classmethod
    def from_settings(cls, s) -> "Policy":
        return cls(Thresholds(s.min_support, s.min_coverage, s.require_all_nouns, s.min_restated, s.asked_near,
                              s.when_event, s.max_restated_absent),
                   s.min_model_yes, s.nlp_model, s.check_answer_type, s.max_unmentioned_words, s.quote_first)


def finish(
    question: str, raw: str, passages: Sequence[Passage], timings: Timings, search_query: str, qid: str | None,
    idf: Callable[[str], float] | None = None, policy: Policy = Policy(), model_yes: float | None = None,
    attach: bool = False,
) -> Answer:
    """Check the reply against the passages and decide whether the answer stands or abstains.

    With `attach` the rules decide nothing they are not certain of: a reply abstains only when none of
    its claims can be attached to a passage (`citations.attachable`), or it is a refusal; every other
    rule reports its value in `Answer.signals`, for the calibrated decision (`rag.answer.calibration`).
    """
    quote, said = split_quote(raw) if policy.quote_first else (None, raw)
    checked = check_answer(said, passages, question, idf, policy.thresholds, policy.nlp_model, attach=attach)
    common = dict(
        question=question, passages=tuple(passages), timings=timings, search_query=search_query, id=qid,
        raw_answer=raw, unsupported=checked.unsupported, dropped_markers=checked.dropped_markers, model_check=model_yes,
        quoted=quote,
    )
    if attach:
        return _attached(question, said, quote, checked, passages, policy, common)
    first = first_supported_claim(checked.text)
    short = short_answer(first, question, policy.nlp_model)
    reason = _abstain_reason(question, said, checked, policy, model_yes, passages)
    if not reason and policy.quote_first:
        reason = quote_problem(quote, passages)
    if not reason and policy.check_type:
        reason = answer_type.problem(question, claim_text(first), policy.nlp_model)
    if reason:
        return Answer(answer=NOT_FOUND, abstained=True, citations=(), abstain_reason=reason, **common)
    return Answer(answer=checked.text, abstained=False, citations=checked.citations, short_answer=short, **common)


def _attached(question, said, quote, checked, passages, policy: Policy, common: dict) -> Answer:
    """`finish` with `attach`: the claims that can be attached to a passage, and the rules' values."""
    from .signals import rule_signals

    if checked.supported_sentences == 0:
        reason = _abstain_reason(question, said, checked, policy, None, passages)
        return Answer(answer=NOT_FOUND, abstained=True, citations=(), abstain_reason=reason, signals={}, **common)
    first = first_supported_claim(checked.text)
    count = bool(_COUNT_QUESTION.search(question))
    signals = rule_signals(
        checked, question_is_count=count, count_without_number=count and not number_values(strip_markers(checked.text)),
        unmentioned=len(unmentioned_words(question, passages)),
        type_problem=bool(answer_type.problem(question, claim_text(first), policy.nlp_model)),
    )
    if policy.quote_first:
        signals["quote_problem"] = float(bool(quote_problem(quote, passages)))
    return Answer(answer=checked.text, abstained=False, citations=checked.citations,
                  short_answer=short_answer(first, question, policy.nlp_model), signals=signals, **common)


_LEADING_QUOTE = re.compile(
    r'^\s*(?:quote\s*:\s*)?["“](?P<quote>[^"“”]+)["”]\s*[:.;,-]?\s*(?:answer\s*:\s*)?(?P<rest>.*)$', re.S | re.I)
_LABELLED = re.compile(r"^\s*quote\s*:\s*(?P<quote>.+?)\s*\n\s*answer\s*:\s*(?P<rest>.*)$", re.S | re.I)


def split_quote(raw: str) -> tuple[str | None, str]:
    """A reply's leading quotation (setting `quote_first`) and the answer after it.

    >>> split_quote('"The UK gave 1 million pounds." The UK gave 1 million pounds [1].')
    ('The UK gave 1 million pounds.', 'The UK gave 1 million pounds [1].')
    >>> split_quote('Quote: "Denver won." Answer: Denver won [1].')
    ('Denver won.', 'Denver won [1].')
    >>> split_quote("Quote: Denver won.\\nAnswer: Denver won [1].")
    ('Denver won.', 'Denver won [1].')
    >>> split_quote("Hanoi [1].")
    (None, 'Hanoi [1].')
    """
    m = _LEADING_QUOTE.match(raw) or _LABELLED.match(raw)
    if not m:
        return None, raw
    rest = m.group("rest").strip()
    return m.group("quote").strip(), rest or raw


def quote_problem(quote: str | None, passages: Sequence[Passage]) -> str:
    """Why the reply's quotation is not a passage's words, word for word ("" when it is)."""
    if not quote:
        return "the model quoted no sentence of the passages"
    words = _words(quote.rstrip(".!?;:, "))
    if len(words.split()) < 3:
        return "the model's quotation is too short to check"
    if not any(words in _words(p.text) for p in passages):
        return "the model's quotation is not in the passages word for word"
    return ""


def _words(text: str) -> str:
    return " " + " ".join(re.findall(r"[^\W_]+(?:[.,'’][^\W_]+)*", text.lower())) + " "


def unmentioned_words(question: str, passages: Sequence[Passage]) -> list[str]:
    """The question's content words (frame words such as "name" or "year" aside) that no passage has, by stem.

    "When did the Fund end?" over passages that never say "end" asks what they do not tell.

    >>> from ..records import Chunk, Hit, Passage
    >>> p = Passage(1, Hit(Chunk("d#0", "d", 0, 20, "The fund started in 2018."), 1.0, 1), 0, 20, "The fund started in 2018.")
    >>> unmentioned_words("When did the fund end?", [p]), unmentioned_words("In what year did the fund start?", [p])
    (['end'], [])
    """
    present = {stem(w) for p in passages for w in content_words(p.text)}
    return [w for w in question_terms(question) if stem(w) not in present]


def _abstain_reason(question: str, raw: str, checked, policy: Policy, model_yes: float | None,
                    checked_passages: Sequence[Passage] = ()) -> str:
    if checked.supported_sentences == 0:
        if is_refusal(raw) or not raw.strip():
            return "the model found no answer in the passages"
        why = checked.unsupported[0].reason if checked.unsupported else "no passage supports it"
        return f"the model's answer is not supported by the passages: {why}"
    if _COUNT_QUESTION.search(question) and not number_values(strip_markers(checked.text)):
        # "How much did Japan contribute?" answered without any amount does not answer it, however
        # well its other words match a passage.
        return "the question asks for a number and the answer gives none"
    if policy.max_unmentioned >= 0:
        missing = unmentioned_words(question, checked_passages)
        if len(missing) > policy.max_unmentioned:
            return f"no passage mentions {', '.join(repr(w) for w in missing)} of the question"
    return _model_reason(model_yes, policy)


def _model_reason(model_yes: float | None, policy: Policy) -> str:
    if model_yes is not None and model_yes < policy.min_model_yes:
        return f"the model does not find that the cited passage states this answer (P(yes) {model_yes:.2f})"
    return ""


def with_model_check(answer: Answer, model_yes: float | None, policy: Policy) -> Answer:
    """`answer` (from `finish` without the model's P(yes)) judged with it, without checking the reply
    again: `finish` with `model_yes` decides the same, since every other check has passed or abstained."""
    reason = "" if answer.abstained else _model_reason(model_yes, policy)
    if reason:
        return replace(answer, answer=NOT_FOUND, abstained=True, citations=(), short_answer="", abstain_reason=reason,
                       model_check=model_yes)
    return replace(answer, model_check=model_yes)


def abstain_early(question: str, passages: Sequence[Passage], timings: Timings, search_query: str, qid: str | None, reason: str) -> Answer:
    return Answer(
        question=question, answer=NOT_FOUND, abstained=True, citations=(), passages=tuple(passages),
        timings=timings, search_query=search_query, abstain_reason=reason, id=qid,
    )


def first_supported_claim(text: str) -> str:
    """The first sentence that carries a citation marker (checked text only has supported ones)."""
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if re.search(r"\[\d+\]", sentence):
            return sentence
    return text

