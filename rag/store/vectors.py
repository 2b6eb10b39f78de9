"""FAISS vector search over unit vectors (inner product = cosine).

Exact search (`IndexFlatIP`) up to `exact_max` vectors; above that HNSW, whose recall against exact
search `python -m rag bench` measures.

>>> import numpy as np
>>> v = np.eye(3, dtype=np.float32)
>>> VectorIndex.build(v).search(v[1], 1)
([1], [1.0])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import IndexCorruptError

HNSW_M = 32  # graph degree: recall ~0.99 at efSearch 64 on 100k MiniLM vectors (see bench)
HNSW_EF_SEARCH = 64
HNSW_EF_CONSTRUCTION = 80


class VectorIndex:
    """A FAISS index plus the knowledge of which kind it is."""

    def __init__(self, index, kind: str):
        self.index = index
        self.kind = kind

    @classmethod
    def build(cls, vectors: np.ndarray, exact_max: int = 50_000) -> "VectorIndex":
        import faiss

        n, dim = vectors.shape if vectors.ndim == 2 else (0, 0)
        if n > exact_max:
            index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
            kind = "hnsw"
        else:
            index = faiss.IndexFlatIP(max(dim, 1))
            kind = "flat"
        if n:
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index, kind)

    def search(self, query: np.ndarray, k: int) -> tuple[list[int], list[float]]:
        """Row ids and cosine scores of the k nearest vectors, best first."""
        if self.index.ntotal == 0 or k <= 0:
            return [], []
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        scores, ids = self.index.search(q, min(k, self.index.ntotal))
        keep = ids[0] >= 0
        return [int(i) for i in ids[0][keep]], [float(s) for s in scores[0][keep]]

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, kind: str) -> "VectorIndex":
        import faiss

        try:
            index = faiss.read_index(str(path))
        except RuntimeError as e:
            raise IndexCorruptError(f"cannot read {path.name}: {str(e).splitlines()[0]}") from None
        if kind == "hnsw":
            index.hnsw.efSearch = HNSW_EF_SEARCH
        return cls(index, kind)
