"""Hybrid retrieval: dense and BM25 keyword search (from FAISS + our BM25, or Milvus), fused into one ranking.

Two fusions, both pure functions: `convex_fusion` (the default: a weighted sum of z-normalised scores
over the candidates) and `reciprocal_rank_fusion` (ranks only). Measured on the SQuAD slice (810
questions, MiniLM, chunks of 1200), hit@1 / hit@5 / MRR@10 with the current tokenizer: RRF k=10
.681/.963/.802; convex with dense weight 0.5 .735/.973/.837. The weight sweep, run before possessives
were stemmed, was flat (0.4: .833, 0.5: .834, 0.6: .835 MRR), so the even split stays. Scores carry more than ranks:
a paragraph that BM25 puts far ahead of the rest should stay ahead, which RRF forgets.

>>> reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)[0][0]
1
>>> [i for i, _ in convex_fusion({1: 0.9, 2: 0.8, 3: 0.1}, {1: 0.0, 2: 5.0, 3: 0.0}, dense_weight=0.5)]
[2, 1, 3]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from typing import Any, Mapping, Sequence

import numpy as np

from ..store.embedding import Embedder
from ..errors import RagError
from .exact_terms import asked_terms, term_score, without_other_values
from ..records import Candidates, Hit, Scope


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    """Fuse ranked id lists: score(id) = sum over lists of 1 / (k + rank), rank from 1. Best first."""
    scores: dict[int, float] = defaultdict(float)
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] += 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def convex_fusion(dense: Mapping[int, float], keyword: Mapping[int, float], dense_weight: float = 0.5) -> list[tuple[int, float]]:
    """Fuse two score maps over the same candidates: w * z(dense) + (1 - w) * z(keyword). Best first.

    Each list is z-normalised over the candidates (cosines and BM25 scores live on different scales);
    a list whose scores are all equal contributes nothing.
    """
    ids = sorted(set(dense) | set(keyword))
    if not ids:
        return []
    fused = dense_weight * _zscores([dense.get(i, 0.0) for i in ids])
    fused += (1.0 - dense_weight) * _zscores([keyword.get(i, 0.0) for i in ids])
    order = sorted(range(len(ids)), key=lambda j: (-fused[j], ids[j]))
    return [(ids[j], float(fused[j])) for j in order]


def _zscores(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


class Retriever(ABC):
    @abstractmethod
    def search(self, query: str, k: int, scope: Scope | None = None) -> list[Hit]:
        """The k best chunks for `query`, best first, with scores."""


class HybridRetriever(Retriever):
    """Dense + keyword candidates, fused (convex by default, or RRF); each hit keeps both raw scores.

    `index` is any store that gives candidates: the FAISS `store.Index` or the Milvus `MilvusIndex`
    (`size`, `candidates(query, qvec, n, scope)`, `exact_scores(query, qvec, keys)`).
    """

    def __init__(self, index, embedder: Embedder, candidates: int = 30, rrf_k: int = 10,
                 fusion: str = "convex", dense_weight: float = 0.5, term_weight: float = 0.0,
                 term_filter: bool = False):
        """`term_weight`: how much the question's own years and quarters count (`exact_terms`; convex only).
        `term_filter`: candidates that state only other years or quarters are dropped when one states an asked one."""
        self.index = index
        self.embedder = embedder
        self.candidates = candidates
        self.rrf_k = rrf_k
        if fusion not in ("convex", "rrf"):
            raise RagError(f"unknown fusion {fusion!r} (convex, rrf)")
        self.fusion = fusion
        self.dense_weight = dense_weight
        self.term_weight = term_weight
        self.term_filter = term_filter

    def search(self, query: str, k: int, scope: Scope | None = None) -> list[Hit]:
        return self.search_many([query], k, scope)

    def search_many(self, queries: Sequence[str], k: int, scope: Scope | None = None) -> list[Hit]:
        """Fuse the rankings of several phrasings (a follow-up alone and rewritten).

        Each query ranks on its own, so a follow-up's own words are not drowned by borrowed ones; the
        per-query fused scores are summed. Raw scores reported (cosine, BM25) are the first query's.
        `scope`: only these documents compete (the filter is applied inside the index's search).
        """
        if self.index.size == 0 or k <= 0:
            return []
        n = max(self.candidates, k)
        per_query = [self.index.candidates(query, self.embedder.embed_query(query), n, scope) for query in queries]
        chunks = {key: chunk for c in per_query for key, chunk in c.chunks.items()}
        fused = self._fuse(per_query)
        asked = asked_terms(queries[0]) if self.term_weight or self.term_filter else None
        if asked and self.term_weight and self.fusion == "convex":
            fused = sorted(((key, score + self.term_weight * term_score(asked, chunks[key].text)) for key, score in fused),
                           key=lambda kv: (-kv[1], kv[0]))
        if asked and self.term_filter:
            fused = without_other_values(asked, fused, lambda kv: chunks[kv[0]].text)
        fused = fused[:k]
        first = per_query[0]
        # A hit that only another phrasing found still reports the first query's exact scores.
        missing = [key for key, _ in fused if key not in first.dense]
        extra = self.index.exact_scores(queries[0], first.qvec, missing) if missing else {}
        hits = []
        for rank, (key, score) in enumerate(fused, start=1):
            dense, keyword = (first.dense[key], first.keyword[key]) if key in first.dense else extra[key][:2]
            hits.append(Hit(chunks[key], score, rank, dense, keyword))
        return hits

    def _fuse(self, per_query: list[Candidates]) -> list[tuple[Any, float]]:
        if self.fusion == "rrf":
            return reciprocal_rank_fusion([r for c in per_query for r in (c.dense_ids, c.keyword_ids)], self.rrf_k)
        total: dict[int, float] = defaultdict(float)
        for c in per_query:
            for row, score in convex_fusion(c.dense, c.keyword, self.dense_weight):
                total[row] += score
        return sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))

