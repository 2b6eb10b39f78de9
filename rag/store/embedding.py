"""Embedders: text -> L2-normalised float32 vectors (so inner product = cosine).

`SentenceTransformerEmbedder` is the real one; `HashingEmbedder` is a deterministic, dependency-free
fake selected with `embedder = "hashing"`, so tests build indexes in milliseconds.

>>> e = HashingEmbedder(dim=64)
>>> v = e.embed(["the cat", "the cat"])
>>> bool((v[0] == v[1]).all()), v.shape
(True, (2, 64))
"""

from __future__ import annotations

import hashlib
import logging
import re
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..models import ModelRef, hub_download, resolve, verify

log = logging.getLogger(__name__)


class Embedder(ABC):
    """Turns texts into unit vectors. `identity` names the model in the index manifest."""

    identity: str
    dim: int

    @abstractmethod
    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors for passages, shape (len(texts), dim), float32, unit length."""

    def embed_query(self, text: str) -> np.ndarray:
        """One query vector (models with query prefixes override this)."""
        return self.embed([text])[0]


class HashingEmbedder(Embedder):
    """Feature hashing of word unigrams and bigrams: a fast, deterministic stand-in for tests."""

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.identity = f"hashing-{dim}"

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Words repeat across chunks: hashing each gram once per call keeps a 50 MB file to seconds.
        cache: dict[str, tuple[int, float]] = {}
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            grams = words + [a + " " + b for a, b in zip(words, words[1:])]
            pairs = [cache.get(g) or self._bucket(g, cache) for g in grams]
            if pairs:
                buckets, signs = zip(*pairs)
                out[row] = np.bincount(buckets, weights=signs, minlength=self.dim)
        return _normalise(out)

    def _bucket(self, gram: str, cache: dict[str, tuple[int, float]]) -> tuple[int, float]:
        """(bucket, sign) of one word or bigram, remembered in `cache`."""
        digest = hashlib.blake2b(gram.encode(), digest_size=8).digest()
        cache[gram] = (int.from_bytes(digest[:4], "little") % self.dim, 1.0 if digest[4] & 1 else -1.0)
        return cache[gram]


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model, loaded lazily: an unchanged re-index never loads it."""

    def __init__(self, ref: ModelRef, batch_size: int = 64, device: str | None = None):
        self.ref = ref
        self.identity = ref.identity
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._dim: int | None = None

    @property
    def dim(self) -> int:  # type: ignore[override]
        if self._dim is None:
            self._dim = int(self.model.get_embedding_dimension())
        return self._dim

    @property
    def model(self):
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self):
        verify(self.ref)
        try:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # "Loading weights" bars would clutter the CLI's stderr
        except ImportError:
            raise ModelError("sentence-transformers is not installed: pip install -r requirements.txt") from None
        location = hub_download(self.ref.location) if self.ref.kind == "hub" else self.ref.location
        try:
            model = SentenceTransformer(location, device=self.device, local_files_only=True)
        except OSError as e:
            raise ModelError(f"cannot load embedder {self.ref.spec}: {str(e).splitlines()[0]}") from None
        log.info("loaded embedder=%s", self.ref.spec)
        return model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def make_embedder(spec: str, cache_dir: Path) -> Embedder:
    """The embedder named by a settings value."""
    if spec == "hashing" or spec.startswith("hashing-"):
        dim = int(spec.split("-", 1)[1]) if "-" in spec else 256
        return HashingEmbedder(dim)
    ref = resolve(spec, cache_dir)
    if ref.kind == "gguf":
        raise ModelError(f"{spec} is a generator model, not an embedder")
    return SentenceTransformerEmbedder(ref)


def _normalise(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (m / norms).astype(np.float32)
