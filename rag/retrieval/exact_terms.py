"""The question's own years and quarters, matched exactly in the ranking.

The embedder and BM25 treat "2021" as one more word: a snippet about the same subject in 2019 ranks
as high as the one about 2021, and a quarter's revenue is answered from another year's report. So the
years and quarters a question names are read out (a range "from 2006 to 2009" names every year in
it) and each candidate is scored: +1 where it states one of them, -1 where it states only other values
of that kind (another year, another quarter), 0 where it states none; the mean over the kinds the
question names. `HybridRetriever` adds `term_weight` times this to the fused score, and with
`term_filter` drops the candidates that state only other values (-1) whenever one states an asked value.

>>> asked = asked_terms("Who coached Atletico Madrid from 2006 to 2009?")
>>> sorted(asked.years)
[2006, 2007, 2008, 2009]
>>> term_score(asked, "On 3 February 2009, Javier Aguirre was dismissed."), term_score(asked, "In 2011 he left.")
(1.0, -1.0)
>>> term_score(asked, "Aguirre was dismissed after a poor start.")
0.0
>>> without_other_values(asked, ["In 2011 he left.", "Undated.", "In 2007 he won."], str)
['Undated.', 'In 2007 he won.']
>>> without_other_values(asked, ["In 2011 he left.", "Undated."], str)  # none states an asked year
['In 2011 he left.', 'Undated.']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")

_Y = r"(1[5-9]\d\d|20\d\d)"
# A year: four digits not inside a longer number, an amount ("$2,015") or a decimal.
YEAR = re.compile(rf"(?<![\d$£€.,]){_Y}(?![\d]|[.,]\d)")
# "from 2006 to 2009", "between 1990 and 1995", "2006-2009", "from Aug 2002 to 2007".
RANGE = re.compile(rf"\b(?:from|between)\s+(?:[A-Za-z]+\.?\s+){{0,2}}{_Y}\s+(?:to|and|until|till|through)\s+"
                   rf"(?:[A-Za-z]+\.?\s+){{0,2}}{_Y}\b|\b{_Y}\s*[–-]\s*{_Y}\b")
QUARTER = re.compile(r"\bQ([1-4])\b|\b(first|second|third|fourth|1st|2nd|3rd|4th)[- ]quarter\b", re.I)
_QUARTER_WORDS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
MAX_RANGE = 40  # a longer span is read as its two ends only


@dataclass(frozen=True)
class AskedTerms:
    """The exact values a question names, by kind."""

    years: frozenset[int] = frozenset()
    quarters: frozenset[int] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.years or self.quarters)


def years_in(text: str) -> set[int]:
    return {int(y) for y in YEAR.findall(text)}


def quarters_in(text: str) -> set[int]:
    return {int(n) if n else _QUARTER_WORDS[w.lower()] for n, w in QUARTER.findall(text)}


def year_ranges(question: str) -> list[tuple[int, int]]:
    """The spans of years `question` names ("from 1942 to 1976" -> (1942, 1976)), up to MAX_RANGE long.

    >>> year_ranges("Who led Zambia from Nov 1991 to 2002, and who in 1950?")
    [(1991, 2002)]
    """
    out = []
    for m in RANGE.finditer(question):
        ends = [int(g) for g in m.groups() if g]
        lo, hi = min(ends), max(ends)
        if hi - lo <= MAX_RANGE:
            out.append((lo, hi))
    return out


def asked_terms(question: str) -> AskedTerms:
    """The years (ranges expanded) and quarters `question` names."""
    years = years_in(question)
    for lo, hi in year_ranges(question):
        years |= set(range(lo, hi + 1))
    return AskedTerms(frozenset(years), frozenset(quarters_in(question)))


def term_score(asked: AskedTerms, text: str) -> float:
    """In [-1, 1]: does `text` state the question's own years and quarters (+), only others (-), none (0)?"""
    kinds = [(asked.years, years_in), (asked.quarters, quarters_in)]
    scores = []
    for wanted, read in kinds:
        if not wanted:
            continue
        stated = read(text)
        scores.append(1.0 if stated & wanted else -1.0 if stated else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def without_other_values(asked: AskedTerms, items: Sequence[T], text_of: Callable[[T], str]) -> list[T]:
    """`items` less those whose text states only other values of the asked kinds (`term_score` < 0),
    when at least one item states an asked value; all of them, in order, when none does (a question whose
    year no candidate states keeps its candidates: the answer may be in one that names no year)."""
    scores = [term_score(asked, text_of(item)) for item in items]
    if not any(s > 0 for s in scores):
        return list(items)
    return [item for item, s in zip(items, scores) if s >= 0]
