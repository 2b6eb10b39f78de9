"""The answer decision's signals: every check reports a number, not only pass or fail.

Each function reads one kind of evidence about a reply and returns named floats; `rag.answer.calibration`
turns them into one probability that the answer is right. A signal that could not be read (no
logits from this engine, no retrieval for the oracle's passages) is left out, and the calibrator
uses its training mean for it.

- rules (`rule_signals`): the judge's figures for the first claim kept (support, coverage, restated,
  the question's nouns it asserts that no passage uses), how many claims were kept or removed, and
  the flags of today's abstention rules (a count question answered without a number, question words
  no passage mentions, an answer of the wrong type);
- vetoes (`veto_signals`): which rule would have refused the reply (one flag per kind of reason);
- the model: P(yes) that the cited passage states the claim (`p_yes`); the log-probabilities of the
  reply's own tokens (`reply_signals`);
- memory (`memory_signals`): the model's reply to the question without any passage, compared with the
  answer, and whether the answer is in the cited sentence word for word;
- the embedder (`embedding_signals`): cosines of claim, question and cited span;
- retrieval (`retrieval_signals`): the cited passage's rank, cosine and keyword score, and its margin.
"""

from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

from ..records import Passage
from ..language.text import normalize_answer

# Kinds of reasons the vetoes give (rag/answer/judge.py, rag/answer/answering.py), matched in this order.
VETO_KINDS: tuple[tuple[str, str], ...] = (
    ("veto_number", r"the number .* is not in the cited sentence|counts .*, the passage's counts"),
    ("veto_name", r"is not in the cited sentence"),
    ("veto_event", r"does not say when it happened"),
    ("veto_far", r"does not answer the question asked \("),
    ("veto_support", r"does not state the answer"),
    ("veto_coverage", r"does not answer the question asked"),
    ("veto_restated", r"repeats words of the question"),
    ("veto_absent", r"no passage speaks of"),
    ("veto_owner", r"speaks of a .* but not of"),
    ("veto_count", r"asks for a number and the answer gives none"),
    ("veto_unmentioned", r"no passage mentions"),
    ("veto_model", r"P\(yes\)"),
    ("veto_other", r"."),
)


def veto_signals(reason: str) -> dict[str, float]:
    """One flag per kind of veto: 1 for the kind of `reason` (the vetoes' own verdict), 0 for the others."""
    out = {name: 0.0 for name, _ in VETO_KINDS}
    out["vetoes_pass"] = 0.0 if reason else 1.0
    if reason:
        name = next(n for n, pattern in VETO_KINDS if re.search(pattern, reason))
        out[name] = 1.0
    return out


def rule_signals(checked, question_is_count: bool, count_without_number: bool, unmentioned: int,
                 type_problem: bool) -> dict[str, float]:
    """The judge's figures for the first claim kept, and the abstention rules' values, as numbers."""
    first = next((i for i, v in enumerate(checked.verdicts) if v.evidence is not None and
                  (v.supported or any(a.claim == v.claim for a in checked.attached))), None)
    out = {
        "claims_kept": float(checked.supported_sentences),
        "claims_removed": float(len(checked.unsupported)),
        "claims_attached": float(len(checked.attached)),
        "count_question": float(question_is_count),
        "count_without_number": float(count_without_number),
        "unmentioned_words": float(unmentioned),
        "type_mismatch": float(type_problem),
    }
    if first is not None:
        v = checked.verdicts[first]
        ev = v.evidence
        out.update(support=min(ev.support, 1.0), coverage=ev.coverage, restated=ev.restated,
                   absent_nouns=float(checked.absent[first]), first_supported=float(v.supported))
    return out


def reply_signals(token_logprobs: Sequence[tuple[str, float]], raw: str, short: str) -> dict[str, float]:
    """The model's confidence in its own reply: log-probabilities of its greedy tokens.

    `lp_mean` and `lp_min` over the reply's first sentence, `lp_answer` the lowest over the tokens that
    write the short answer (where it is found in the reply), `lp_first` the first token's.
    """
    if not token_logprobs:
        return {}
    first_end = _first_sentence_end(raw)
    spans, pos = [], 0
    for piece, lp in token_logprobs:
        spans.append((pos, pos + len(piece), lp))
        pos += len(piece)
    head = [lp for s, _, lp in spans if s < first_end] or [lp for _, _, lp in spans]
    out = {"lp_mean": sum(head) / len(head), "lp_min": min(head), "lp_first": spans[0][2]}
    at = raw.find(short) if short else -1
    if at >= 0:
        covering = [lp for s, e, lp in spans if s < at + len(short) and e > at]
        if covering:
            out["lp_answer"] = min(covering)
    out.setdefault("lp_answer", out["lp_min"])
    return out


def _first_sentence_end(text: str) -> int:
    m = re.search(r"[.!?](?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])?(?=\s|$)", text)
    return m.end() if m else len(text)


def memory_signals(memory_reply: str | None, short: str, cited: str) -> dict[str, float]:
    """Whether the answer is what the model says without the documents, and whether the cited span says it.

    An answer the model also gives from memory, that the cited sentence does not state word for word,
    is how a question the documents do not answer ("Who wrote Hamlet?") gets a cited answer anyway.
    """
    verbatim = float(bool(short) and f" {normalize_answer(short)} " in f" {normalize_answer(cited)} ")
    out = {"verbatim": verbatim}
    if memory_reply is not None:
        agree = _recall(short, memory_reply) if short else 0.0
        out.update(memory_agrees=agree, memory_unstated=agree * (1.0 - verbatim))
    return out


def _recall(short: str, reply: str) -> float:
    """The share of the short answer's words (normalised, as SQuAD scores) that the other reply has."""
    want = normalize_answer(short).split()
    have = set(normalize_answer(reply).split())
    return sum(w in have for w in want) / len(want) if want else 0.0


def embedding_signals(embedder, question: str, claim: str, span: str) -> dict[str, float]:
    """Cosines (unit vectors) of claim and cited span, question and span, question and claim."""
    q, c, s = (embedder.embed_query(t) for t in (question, claim, span))
    return {"cos_claim_span": float(c @ s), "cos_question_span": float(q @ s), "cos_question_claim": float(q @ c)}


def retrieval_signals(passages: Sequence[Passage], cited: int | None, best_dense: float | None,
                      keyword_overlap: float | None) -> dict[str, float]:
    """The cited passage's place among those given, and the retrieval floor's two figures.

    Fused scores mean something only within one answer, so the margin is to the best other passage.
    """
    out: dict[str, float] = {}
    if best_dense is not None:
        out["best_dense"] = best_dense
    if keyword_overlap is not None:
        out["keyword_overlap"] = keyword_overlap
    p = next((x for x in passages if x.number == cited), None)
    if p is None:
        return out
    out["cited_rank"] = float(p.number)
    if p.hit.dense_score is not None:
        out["cited_dense"] = p.hit.dense_score
    best_keyword = max((x.hit.keyword_score or 0.0) for x in passages)
    if p.hit.keyword_score is not None and best_keyword > 0:
        out["cited_keyword_share"] = p.hit.keyword_score / best_keyword
    others = [x.hit.score for x in passages if x.number != cited]
    out["cited_margin"] = p.hit.score - max(others) if others else 0.0
    return out


def question_term_signals(question: str, passage: Passage | None) -> dict[str, float]:
    """Does the cited passage speak of the question's own years, quarters and names?

    `asked_terms`: +1 when the cited chunk states one of the years or quarters the question names, -1
    when it states only other ones (the same event in another year), 0 when none (absent when the
    question names none). `asked_names`: the share of the question's capitalised words (names, titles)
    that the cited chunk or its document's name has, by stem.
    """
    from ..retrieval.exact_terms import asked_terms, term_score
    from .judge import document_name
    from ..language.terms import content_words, stem

    if passage is None:
        return {}
    text = passage.hit.chunk.text
    out: dict[str, float] = {}
    asked = asked_terms(question)
    if asked:
        out["asked_terms"] = term_score(asked, text)
    words = question.split()
    names = {w for i, tok in enumerate(words[1:], start=1) if tok[:1].isupper() for w in content_words(tok)}
    if names:
        have = {stem(w) for w in content_words(f"{text} {document_name(passage)}")}
        out["asked_names"] = sum(stem(w) in have for w in names) / len(names)
    return out


def choice_options(passages: Sequence[Passage], limit: int = 40) -> list[tuple[int, int, int, str]]:
    """The sentences a constrained choice may copy: (passage number, start, end, text), offsets into the
    passage's text, in prompt order (at most `limit`; inner whitespace made single, as a copy would be)."""
    from ..language.text import sentence_spans

    out = []
    for p in passages:
        for s, e in sentence_spans(p.text):
            text = " ".join(p.text[s:e].split())
            if len(text) > 1:
                out.append((p.number, s, e, text))
    return out[:limit]


def choice_signals(shares: Sequence[float] | None, options: Sequence[tuple[int, int, int, str]],
                   passages: Sequence[Passage], cited, short: str) -> dict[str, float]:
    """The model's own choice of the sentence that answers, constrained to the passages' sentences.

    `cited` is the first claim's citation (None: none). `choice_cited`: the share of the choice on the
    sentences the cited span overlaps; `choice_top_cited`: 1 when the most likely sentence is one of
    them; `choice_answer`: the share on sentences that hold the short answer word for word;
    `choice_max`: the most likely sentence's share (how sure the model is that one sentence answers).
    A claim cited to a sentence the model itself would not pick is suspect.
    """
    if not shares or len(shares) != len(options):
        return {}
    by_number = {p.number: p for p in passages}
    marked = []
    for number, s, e, _ in options:
        p = by_number.get(number)
        hit = (cited is not None and p is not None and cited.marker == number and cited.source == p.hit.chunk.source
               and p.start + s < cited.end and p.start + e > cited.start)
        marked.append(hit)
    answer = normalize_answer(short)
    holds = [bool(answer) and f" {answer} " in f" {normalize_answer(text)} " for *_, text in options]
    top = max(range(len(shares)), key=lambda i: shares[i])
    return {"choice_cited": sum(x for x, m in zip(shares, marked) if m), "choice_top_cited": float(marked[top]),
            "choice_answer": sum(x for x, h in zip(shares, holds) if h), "choice_max": max(shares)}


def merged(*parts: Mapping[str, float]) -> dict[str, float]:
    """The signals of several readers in one mapping (finite values only)."""
    out: dict[str, float] = {}
    for part in parts:
        out.update({k: float(v) for k, v in part.items() if v is not None and math.isfinite(float(v))})
    return out
