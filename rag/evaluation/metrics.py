"""Scoring functions for evaluation, each a pure function of strings or ranks.

>>> exact_match("the Denver Broncos", ["Denver Broncos"]), round(token_f1("Denver", ["Denver Broncos"]), 3)
(1.0, 0.667)
>>> alce_correct("They won 24-10 in Santa Clara [1].", ["Santa Clara, California", "Santa Clara"])
True
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from ..language.text import normalize_answer


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in golds))


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """SQuAD token F1, the best over the gold answers."""
    best = 0.0
    p = normalize_answer(prediction).split()
    for g in golds:
        gt = normalize_answer(g).split()
        common = sum((Counter(p) & Counter(gt)).values())
        if common:
            precision, recall = common / len(p), common / len(gt)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def alce_correct(answer: str, golds: Sequence[str]) -> bool:
    """ALCE-style correctness: some normalised gold answer occurs in the normalised answer."""
    a = f" {normalize_answer(answer)} "
    return any(f" {normalize_answer(g)} " in a for g in golds if normalize_answer(g))


def holds_gold(span: str, golds: Sequence[str]) -> bool:
    """Whether a passage or cited span contains a gold answer: ALCE's test (normalised, whole words).

    >>> holds_gold("The Broncos beat the Panthers 24-10.", ["Denver Broncos", "Broncos"]), holds_gold("Bronco", ["Broncos"])
    (True, False)
    """
    return alce_correct(span, golds)


def reciprocal_rank(ranked_sources: Sequence[str], gold: set[str]) -> tuple[int | None, float]:
    """(1-based rank of the first gold source or None, reciprocal rank)."""
    for rank, source in enumerate(ranked_sources, start=1):
        if source in gold:
            return rank, 1.0 / rank
    return None, 0.0


def percentile(values: Sequence[float | None], q: float) -> float | None:
    """The q-quantile (0..1, linear interpolation) of the values that are not None; None if there are none.

    >>> percentile([1, None, 3, 2, 4], 0.5), percentile([], 0.5)
    (2.5, None)
    """
    import numpy as np

    vals = [v for v in values if v is not None]
    return float(np.percentile(vals, q * 100)) if vals else None


def precision_recall(predicted: Sequence[bool], actual: Sequence[bool]) -> tuple[float | None, float | None]:
    tp = sum(p and a for p, a in zip(predicted, actual))
    pp, ap = sum(predicted), sum(actual)
    return (tp / pp if pp else None), (tp / ap if ap else None)
