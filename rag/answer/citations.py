"""The citation format `[n]`, its parser, and the checks that make citations trustworthy.

A model's markers are never trusted: a marker must name a passage that was given, and the sentence
that carries it must be supported by a sentence of that passage (`rag.answer.judge`). A marker is
re-pointed to a passage that does support the sentence; a sentence that none supports is removed.

>>> strip_markers("Paris [1] is big [2, 9].")
'Paris is big.'
>>> [m.numbers for m in find_markers("A [1]. B [2, 3].")]
[(1,), (2, 3)]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from .judge import Evidence, Thresholds, Verdict, judge, rank, restated_absent
from ..language.nlp import PACKAGED
from ..language.numbers import number_values
from ..records import Citation, Passage, Unsupported
from ..language.text import sentence_spans

MARKER = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
REFUSAL = re.compile(
    r"documents? do(?:es)? not (?:say|contain|mention|provide|specify|state)|"
    r"passages? do(?:es)? not (?:say|contain|mention|provide|specify|state)|"
    r"(?:is|are) not (?:mentioned|provided|stated|specified|given) in|"
    r"no information (?:about|on|in)|cannot (?:answer|find|determine)|can't (?:answer|find)|"
    r"not enough information|unable to (?:answer|find|determine)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Marker:
    start: int
    end: int
    numbers: tuple[int, ...]


@dataclass(frozen=True)
class CheckedAnswer:
    text: str  # the supported sentences (and refusals), with checked markers only
    citations: tuple[Citation, ...]
    supported_sentences: int
    unsupported: tuple[Unsupported, ...]  # sentences no passage supports, with why
    dropped_markers: tuple[int, ...]  # markers that named no given passage
    # With `attach`: sentences the rules do not support but that are kept, cited to their closest span
    # (the rules' reason is then a signal of the answer decision, not a veto).
    attached: tuple[Unsupported, ...] = ()
    verdicts: tuple[Verdict, ...] = ()  # the verdict of every claim judged, in order (refusals aside)
    absent: tuple[int, ...] = ()  # for each verdict, the question's nouns it asserts that no passage uses


def find_markers(text: str) -> list[Marker]:
    return [
        Marker(m.start(), m.end(), tuple(int(n) for n in re.split(r"\s*[,;]\s*", m.group(1))))
        for m in MARKER.finditer(text)
    ]


# "…, as stated in passage [2]." / "According to [1], …": words that point at a marker, not claims.
_POINTER = re.compile(
    r"(?:,?\s*\b(?:as\s+(?:stated|mentioned|shown|described|noted|given|seen|indicated|said)\s+)?"
    r"(?:in|from|by|see|per|according\s+to)\s+(?:the\s+)?(?:passages?|sources?|documents?)?\s*"
    r"(?=\[\d+(?:\s*[,;]\s*\d+)*\]))|(?:\b(?:passages?|sources?)\s*(?=\[\d))",
    re.IGNORECASE,
)


def claim_text(sentence: str) -> str:
    """A sentence of the answer as a claim: markers and the words that point at them removed.

    >>> claim_text("The UK gave 1 million pounds, as stated in passage [2].")
    'The UK gave 1 million pounds.'
    >>> claim_text("According to [1], 1,936 people were trained.")
    '1,936 people were trained.'
    >>> claim_text("It passed on November 28, 2024, [1].")
    'It passed on November 28, 2024.'
    """
    text = strip_markers(_POINTER.sub(" ", sentence))
    text = re.sub(r"^\s*,\s*", "", text)
    text = re.sub(r"\s*[,;:]+\s*([.!?])$", r"\1", text)  # "…, 2024, [1]." leaves "2024,." behind
    return text[:1].upper() + text[1:] if text else text


def strip_markers(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", text)).strip()


def is_refusal(text: str) -> bool:
    """Whether the model said the passages do not hold the answer."""
    return bool(REFUSAL.search(text))


def check_answer(
    answer: str, passages: Sequence[Passage], question: str, idf: Callable[[str], float] | None = None,
    thresholds: Thresholds = Thresholds(), nlp_model: str = PACKAGED, attach: bool = False,
) -> CheckedAnswer:
    """Judge every sentence of the answer against the passages; keep only supported ones, cited.

    A sentence is judged first against the passages it cites; if none supports it, against the
    others (its citation is re-pointed). A sentence no passage supports is removed from the text and
    listed in `unsupported` with the reason. Refusal sentences stay, without a marker.

    With `attach`, the first claim kept may be one the rules do not support, when it can be attached to a passage
    (`attachable`: its closest span shares some of its new words, and every new number of it occurs
    in that passage); it is listed in `attached` with the rules' reason, and the calibrated answer
    decision weighs that reason with the other signals.
    """
    by_number = {p.number: p for p in passages}
    out_parts: list[str] = []
    citations: dict[int, Citation] = {}
    unsupported: list[Unsupported] = []
    attached: list[Unsupported] = []
    verdicts: list[Verdict] = []
    absent_counts: list[int] = []
    dropped: list[int] = []
    supported = 0
    for s, e in sentence_spans(answer):
        sentence = answer[s:e]
        claim = claim_text(sentence)
        cited = [n for m in find_markers(sentence) for n in m.numbers]
        dropped += [n for n in cited if n not in by_number]
        if not claim or is_refusal(claim):
            out_parts.append(claim)
            continue
        verdict, absent = _verdict(claim, question, cited, passages, idf, thresholds, nlp_model, attach)
        verdicts.append(verdict)
        absent_counts.append(len(absent))
        if not verdict.supported:
            # Only the answer's first claim is attached: the decision's signals speak of that one.
            if not (attach and not supported and not attached and attachable(verdict, question)):
                unsupported.append(Unsupported(claim, verdict.reason))
                continue
            attached.append(Unsupported(claim, verdict.reason))
        else:
            supported += 1
        ev = verdict.evidence
        citations.setdefault(ev.passage.number, _cite(ev, verdict.supported))
        out_parts.append(_with_markers(claim, [ev.passage.number]))
    ordered = tuple(citations[n] for n in sorted(citations))
    return CheckedAnswer(" ".join(p for p in out_parts if p), ordered, supported + len(attached), tuple(unsupported),
                         tuple(dropped), tuple(attached), tuple(verdicts), tuple(absent_counts))


def attachable(verdict: Verdict, question: str) -> bool:
    """Whether a claim the rules do not support can still be shown, cited to its closest span.

    What is certain by construction stays a veto: no span shares any of the claim's own words (or the
    claim is garbled or only restates the question: then there is no span at all), or a number the
    claim adds, that the question did not give, occurs nowhere in the cited passage.
    """
    ev = verdict.evidence
    if ev is None or ev.support <= 0:
        return False
    asked = set(number_values(question))
    return all(v in number_values(ev.passage.text) for v in number_values(verdict.claim) if v not in asked)


def _verdict(claim, question, cited, passages, idf, thresholds, nlp_model, attach=False) -> tuple[Verdict, list[str]]:
    """The cited passages first; the others only if none of those supports the claim.

    When none does, the verdict names the closest span, wherever it is (its reason is the telling one).
    Also returns the question's nouns the claim asserts that no passage uses (`restated_absent`); past
    `max_restated_absent` of them the claim is not supported (with `attach`, its closest span is still found).
    """
    limit = thresholds.max_restated_absent
    absent = restated_absent(claim, question, passages, nlp_model) if limit >= 0 or attach else []
    if limit >= 0 and len(absent) > limit:
        reason = f"no passage speaks of {', '.join(absent[:3])}, which the answer asserts"
        if not attach:
            return Verdict(claim, None, reason), absent
        found = _verdict(claim, question, cited, passages, idf, replace(thresholds, max_restated_absent=-1), nlp_model)[0]
        return Verdict(claim, found.evidence, reason), absent
    first = [p for p in passages if p.number in cited]
    rest = [p for p in passages if p.number not in cited]
    verdicts = []
    for group in (first, rest):
        if group:
            verdict = judge(claim, question, group, idf, thresholds, nlp_model)
            if verdict.supported:
                return verdict, absent
            verdicts.append(verdict)
    if not verdicts:
        return Verdict(claim, None, "no passage to check the answer against"), absent
    return max(verdicts, key=lambda v: rank(v.evidence) if v.evidence else (False, -1.0, 0)), absent


def _with_markers(claim: str, numbers: list[int]) -> str:
    if not claim:
        return ""
    if not numbers:
        return claim
    marks = "".join(f"[{n}]" for n in sorted(numbers))
    if claim[-1] in ".!?":
        return f"{claim[:-1]} {marks}{claim[-1]}"
    return f"{claim} {marks}"


def _cite(ev: Evidence, supported: bool = True) -> Citation:
    """The supporting span (one sentence or two adjacent ones) with exact document offsets."""
    p = ev.passage
    chunk = p.hit.chunk
    return Citation(
        marker=p.number, source=chunk.source, start=p.start + ev.start, end=p.start + ev.end,
        text=ev.text, title=chunk.title, url=chunk.url, supported=supported,
    )
