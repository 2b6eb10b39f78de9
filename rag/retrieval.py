"""Hybrid retrieval: dense (FAISS) and BM25 keyword search fused by reciprocal rank fusion.

>>> reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)[0][0]
1
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from typing import Sequence

from .embedding import Embedder
from .records import Hit
from .store import Index


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    """Fuse ranked id lists: score(id) = sum over lists of 1 / (k + rank), rank from 1. Best first."""
    scores: dict[int, float] = defaultdict(float)
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] += 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


class Retriever(ABC):
    @abstractmethod
    def search(self, query: str, k: int) -> list[Hit]:
        """The k best chunks for `query`, best first, with scores."""


class HybridRetriever(Retriever):
    """Dense + keyword candidates, fused with RRF; each hit keeps both raw scores."""

    def __init__(self, index: Index, embedder: Embedder, candidates: int = 30, rrf_k: int = 60):
        self.index = index
        self.embedder = embedder
        self.candidates = candidates
        self.rrf_k = rrf_k

    def search(self, query: str, k: int) -> list[Hit]:
        return self.search_many([query], k)

    def search_many(self, queries: Sequence[str], k: int) -> list[Hit]:
        """Fuse the dense and keyword rankings of several phrasings (a follow-up alone and rewritten).

        Each query ranks on its own, so a follow-up's own words are not drowned by borrowed ones.
        Raw scores reported are those of the first query that found the chunk.
        """
        if not self.index.chunks or k <= 0:
            return []
        n = max(self.candidates, k)
        rankings: list[list[int]] = []
        dense: dict[int, float] = {}
        keyword: dict[int, float] = {}
        qvecs = [self.embedder.embed_query(q) for q in queries]
        for query, qvec in zip(queries, qvecs):
            dense_ids, dense_scores = self.index.vector_index.search(qvec, n)
            kw = self.index.bm25.search(query, n)
            rankings += [dense_ids, [i for i, _ in kw]]
            for i, sc in zip(dense_ids, dense_scores):
                dense.setdefault(i, sc)
            for i, sc in kw:
                keyword.setdefault(i, sc)
        hits = []
        for rank, (row, score) in enumerate(reciprocal_rank_fusion(rankings, self.rrf_k)[:k], start=1):
            dense_score = dense.get(row)
            if dense_score is None:  # keyword-only hit: its cosine is still cheap to know
                dense_score = float(self.index.vectors[row] @ qvecs[0])
            hits.append(Hit(self.index.chunks[row], score, rank, dense_score, keyword.get(row, 0.0)))
        return hits
