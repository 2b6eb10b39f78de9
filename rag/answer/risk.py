"""Selective answering measured: risk-coverage curves, their area, and a threshold for a chosen risk.

Coverage is the share of all questions answered; risk the share of answered ones that are wrong. A
question whose reply could not be attached to any passage is never answered, at any threshold.

>>> rows = [(0.9, True), (0.8, True), (0.7, False), (0.2, False)]
>>> [(round(c, 2), round(r, 2)) for c, r in risk_coverage(rows, total=5)]
[(0.2, 0.0), (0.4, 0.0), (0.6, 0.33), (0.8, 0.5)]
>>> round(auc(rows), 3)
1.0
"""

from __future__ import annotations

import math
from typing import Sequence

# One-sided 90% normal quantile: the upper bound a threshold's risk is held under (Wilson score).
Z90 = 1.2816


def ordered(rows: Sequence[tuple[float, bool]]) -> list[tuple[float, bool]]:
    """Rows (confidence, right) most confident first; ties keep their order."""
    return sorted(rows, key=lambda r: -r[0])


def risk_coverage(rows: Sequence[tuple[float, bool]], total: int | None = None) -> list[tuple[float, float]]:
    """(coverage, risk) when the k most confident are answered, for every k. `total`: all questions asked."""
    total = total or len(rows)
    out, wrong = [], 0
    for k, (_, right) in enumerate(ordered(rows), start=1):
        wrong += not right
        out.append((k / total, wrong / k))
    return out


def aurc(rows: Sequence[tuple[float, bool]], lo: float = 0.0, hi: float | None = None, total: int | None = None) -> float | None:
    """Mean risk over the coverage range [lo, hi] of the curve (lower is better; None if the curve misses it)."""
    return area(risk_coverage(rows, total), lo, hi)


def area(points: Sequence[tuple[float, float]], lo: float = 0.0, hi: float | None = None) -> float | None:
    """Mean risk of a piecewise-linear (coverage, risk) curve over [lo, hi]; flat before its first point."""
    pts = sorted(points)
    if not pts:
        return None
    hi = pts[-1][0] if hi is None else min(hi, pts[-1][0])
    if hi <= lo:
        return None
    pts = [(0.0, pts[0][1])] + pts
    total = 0.0
    for (c0, r0), (c1, r1) in zip(pts, pts[1:]):
        a, b = max(c0, lo), min(c1, hi)
        if b <= a or c1 == c0:
            continue
        ra = r0 + (r1 - r0) * (a - c0) / (c1 - c0)
        rb = r0 + (r1 - r0) * (b - c0) / (c1 - c0)
        total += (ra + rb) / 2 * (b - a)
    return total / (hi - lo)


def coverage_at(rows: Sequence[tuple[float, bool]], max_risk: float, total: int | None = None) -> float:
    """The largest coverage whose risk is at most `max_risk` (0 when none is)."""
    return max((c for c, r in risk_coverage(rows, total) if r <= max_risk + 1e-12), default=0.0)


def upper_bound(wrong: int, n: int, z: float = Z90) -> float:
    """Wilson score upper bound of a share `wrong / n`.

    >>> round(upper_bound(0, 10), 3), round(upper_bound(10, 100), 3)
    (0.141, 0.145)
    """
    if n == 0:
        return 1.0
    p = wrong / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def threshold_for(rows: Sequence[tuple[float, bool]], max_risk: float) -> float:
    """The lowest confidence threshold at which the answered rows' risk, by its upper bound, is at most `max_risk`.

    Answering at least the k most confident rows is allowed when the upper bound of their risk is at
    most `max_risk`; the threshold is the k-th confidence for the largest such k. Above every
    confidence (nothing answered) when no k qualifies.
    """
    best, wrong = None, 0
    for k, (p, right) in enumerate(ordered(rows), start=1):
        wrong += not right
        if upper_bound(wrong, k) <= max_risk:
            best = p
    return best if best is not None else 1.0 + 1e-9


def auc(rows: Sequence[tuple[float, bool]]) -> float | None:
    """Area under the ROC curve of confidence for "right" (ties count one half); None without both classes."""
    pos = [p for p, y in rows if y]
    neg = [p for p, y in rows if not y]
    if not pos or not neg:
        return None
    ranked = sorted((p, y) for p, y in rows)
    # Mann-Whitney U with mid-ranks for ties.
    ranks: dict[int, float] = {}
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        for t in range(i, j + 1):
            ranks[t] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(ranks[t] for t, (_, y) in enumerate(ranked) if y)
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
