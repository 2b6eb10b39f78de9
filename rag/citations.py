"""The citation format `[n]`, its parser, and the checks that make citations trustworthy.

A model's markers are never trusted: a marker must name a passage that was given, and the sentence
that carries it must be supported by that passage (its content words, numbers above all, must occur
there). Unsupported markers are re-pointed to a passage that does support the sentence, or dropped.

>>> strip_markers("Paris [1] is big [2, 9].")
'Paris is big.'
>>> [m.numbers for m in find_markers("A [1]. B [2, 3].")]
[(1,), (2, 3)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .keyword import content_words, stem
from .numbers import is_number, number_values
from .records import Citation, Passage
from .text import sentence_spans

MARKER = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_NUMBER = re.compile(r"\d")
REFUSAL = re.compile(
    r"documents? do(?:es)? not (?:say|contain|mention|provide|specify|state)|"
    r"passages? do(?:es)? not (?:say|contain|mention|provide|specify|state)|"
    r"(?:is|are) not (?:mentioned|provided|stated|specified|given) in|"
    r"no information (?:about|on|in)|cannot (?:answer|find|determine)|can't (?:answer|find)|"
    r"not enough information|unable to (?:answer|find|determine)",
    re.IGNORECASE,
)
SUPPORT_THRESHOLD = 0.5  # share of the claim's new content words that must occur in the passage


@dataclass(frozen=True)
class Marker:
    start: int
    end: int
    numbers: tuple[int, ...]


@dataclass(frozen=True)
class CheckedAnswer:
    text: str  # the answer with checked markers only
    citations: tuple[Citation, ...]
    supported_sentences: int
    unsupported: tuple[str, ...]  # sentences no passage supports
    dropped_markers: tuple[int, ...]  # markers that named no given passage


def find_markers(text: str) -> list[Marker]:
    return [
        Marker(m.start(), m.end(), tuple(int(n) for n in re.split(r"\s*[,;]\s*", m.group(1))))
        for m in MARKER.finditer(text)
    ]


def strip_markers(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", text)).strip()


def is_refusal(text: str) -> bool:
    """Whether the model said the passages do not hold the answer."""
    return bool(REFUSAL.search(text))


def support(claim: str, evidence: str, question: str = "") -> float:
    """Share of the claim's content words (not already in the question) found in the evidence.

    A number missing from the evidence makes the support 0: an invented amount or date is the
    worst kind of unsupported claim.
    """
    asked = {stem(w) for w in content_words(question)}  # "registered" restates "register"
    words = [w for w in dict.fromkeys(content_words(claim)) if stem(w) not in asked]
    if not words:
        return 1.0 if claim.strip() else 0.0
    have = set(content_words(evidence))
    stems = {stem(w) for w in have}
    values = number_values(evidence)  # "3" in a claim is found in "three plays", "$5,000,000" in "$5 million"
    if any(_NUMBER.search(w) and w not in have and not number_values(w) <= values for w in words):
        return 0.0  # an amount, date or count the evidence does not contain: never supported
    found = sum(1 for w in words if w in have or stem(w) in stems or (is_number(w) and number_values(w) <= values))
    return found / len(words)


def check_answer(answer: str, passages: Sequence[Passage], question: str) -> CheckedAnswer:
    """Verify every sentence's markers against the passages; return clean text and citations."""
    by_number = {p.number: p for p in passages}
    out_parts: list[str] = []
    citations: dict[int, Citation] = {}
    unsupported: list[str] = []
    dropped: list[int] = []
    supported = 0
    for s, e in sentence_spans(answer):
        sentence = answer[s:e]
        claim = strip_markers(sentence)
        cited = [n for m in find_markers(sentence) for n in m.numbers]
        dropped += [n for n in cited if n not in by_number]
        chosen = _supporting_passages([by_number[n] for n in dict.fromkeys(cited) if n in by_number], claim, question)
        if not chosen and claim and not is_refusal(claim):
            chosen = _supporting_passages(list(passages), claim, question)[:1]
        if chosen:
            supported += 1
            for p in chosen:
                citations.setdefault(p.number, _cite(p, claim, question))
        elif claim and not is_refusal(claim):
            unsupported.append(claim)
        out_parts.append(_with_markers(claim, [p.number for p in chosen]))
    ordered = tuple(citations[n] for n in sorted(citations))
    return CheckedAnswer(" ".join(p for p in out_parts if p), ordered, supported, tuple(unsupported), tuple(dropped))


def _supporting_passages(candidates: list[Passage], claim: str, question: str) -> list[Passage]:
    scored = [(support(claim, p.text, question), p) for p in candidates]
    good = [(sc, p) for sc, p in scored if sc >= SUPPORT_THRESHOLD]
    good.sort(key=lambda sp: -sp[0])
    return [p for _, p in good]


def _with_markers(claim: str, numbers: list[int]) -> str:
    if not claim:
        return ""
    if not numbers:
        return claim
    marks = "".join(f"[{n}]" for n in sorted(numbers))
    if claim[-1] in ".!?":
        return f"{claim[:-1]} {marks}{claim[-1]}"
    return f"{claim} {marks}"


def _cite(p: Passage, claim: str, question: str) -> Citation:
    """Cite the sentence of the passage that best supports the claim (the whole passage if none)."""
    doc_text = p.text
    best, best_score = (0, len(doc_text)), -1.0
    for s, e in sentence_spans(doc_text):
        score = support(claim, doc_text[s:e], question) + 0.01 * support(question, doc_text[s:e])
        if score > best_score:
            best, best_score = (s, e), score
    s, e = best
    chunk = p.hit.chunk
    return Citation(
        marker=p.number, source=chunk.source, start=p.start + s, end=p.start + e,
        text=doc_text[s:e], title=chunk.title, url=chunk.url, supported=True,
    )
