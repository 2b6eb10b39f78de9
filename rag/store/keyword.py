"""BM25 keyword search over chunk texts, as a sparse matrix so 100k chunks score in milliseconds.

Its terms are those of `rag.language.terms` (the same notion of 'content word' as passage selection and
the answer check).

>>> bm = BM25(["the cat sat", "a dog barked", "cat and dog"])
>>> [i for i, _ in bm.search("cat", k=2)]
[0, 2]
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from ..language.terms import stem, terms

class BM25:
    """Okapi BM25 (k1=1.2, b=0.75) over a fixed list of texts."""

    def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75):
        from scipy.sparse import csc_matrix

        self.vocab: dict[str, int] = {}
        rows, cols, vals = [], [], []
        lengths = np.zeros(len(texts), dtype=np.float32)
        for row, text in enumerate(texts):
            counts = Counter(terms(text))
            lengths[row] = sum(counts.values())
            for word, tf in counts.items():
                rows.append(row)
                cols.append(self.vocab.setdefault(word, len(self.vocab)))
                vals.append(tf)
        n = max(len(texts), 1)
        tf = np.asarray(vals, dtype=np.float32)
        avg = float(lengths.mean()) if len(texts) else 1.0
        norm = k1 * (1 - b + b * lengths[np.asarray(rows, dtype=np.int64)] / max(avg, 1e-9))
        weights = tf * (k1 + 1) / (tf + norm) if len(vals) else tf
        df = np.bincount(np.asarray(cols, dtype=np.int64), minlength=len(self.vocab))
        self.idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        self.matrix = csc_matrix((weights, (rows, cols)), shape=(len(texts), len(self.vocab)))
        self.size = len(texts)

    def idf_of(self, word: str) -> float:
        """Inverse document frequency of a word (stemmed here, so pass words, not terms); unseen words count as rare."""
        col = self.vocab.get(stem(word))
        return float(self.idf[col]) if col is not None else math.log(1 + (self.size + 0.5) / 0.5)

    def scores(self, query: str) -> np.ndarray:
        cols = [self.vocab[w] for w in set(terms(query)) if w in self.vocab]
        if not cols or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        sub = self.matrix[:, cols]
        return np.asarray(sub @ self.idf[cols], dtype=np.float32).ravel()

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Top-k (row, score) with score > 0, best first."""
        s = self.scores(query)
        return [(i, float(s[i])) for i in self.top(s, k)]

    @staticmethod
    def top(scores: np.ndarray, k: int) -> list[int]:
        """Rows of the k best scores above 0, best first (ties: lower row first)."""
        if k <= 0 or not scores.any():
            return []
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [int(i) for i in top if scores[i] > 0]
