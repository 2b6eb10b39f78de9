"""The persisted index: build, update incrementally, save atomically, load with validation.

Layout of the index folder (every file readable or standard):
- `manifest.json`: format version, embedder identity and dimension, chunk settings, per-document
  content hashes, titles and URLs, and the sha256 of each data file below. Written last, by atomic
  rename: it is the commit point, so a build killed at any moment leaves the previous index whole.
- `chunks-<gen>.jsonl`: one chunk per line (id, source, start, end, text).
- `vectors-<gen>.npy`: the chunk embeddings, row i = line i (lets updates reuse unchanged vectors).
- `index-<gen>.faiss`: the FAISS index over those vectors.
- `.update.lock`: held by the process that is updating the index (the UI and `python -m rag index`
  may run at once); a second writer waits for it, so it never deletes the first one's new files.

>>> from .embedding import HashingEmbedder
>>> import tempfile, pathlib
>>> docs = pathlib.Path(tempfile.mkdtemp()); _ = (docs / "a.txt").write_text("Cats purr. Dogs bark.")
>>> idx, report = update_index(docs, pathlib.Path(tempfile.mkdtemp()), HashingEmbedder(), 800, 100)
>>> report.added, len(idx.chunks)
(['a.txt'], 1)
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..ingest.chunking import chunk_document, make_splitter
from ..ingest.documents import PARSER_VERSION, Skipped, list_files, load_file, source_name
from .embedding import Embedder
from ..fileio import sha256_file
from ..errors import DocumentError, IndexBusyError, IndexCorruptError, IndexError_, IndexMismatchError
from ..records import Candidates, Chunk, Scope
from .vectors import VectorIndex

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".update.lock"
# How long a second writer waits for the first: a full build of a large folder takes minutes.
LOCK_TIMEOUT_S = 600.0


@dataclass
class Index:
    """A loaded index: chunks, their vectors, the FAISS index and the manifest that describes them."""

    folder: Path
    manifest: dict
    chunks: list[Chunk]
    vectors: np.ndarray
    vector_index: VectorIndex
    _bm25: object = field(default=None, repr=False)

    @property
    def bm25(self):
        """Keyword index over the chunks, built on first use (a few ms per thousand chunks)."""
        if self._bm25 is None:
            from .keyword import BM25

            self._bm25 = BM25([c.text for c in self.chunks])
        return self._bm25

    @property
    def documents(self) -> dict[str, dict]:
        return self.manifest["documents"]

    @property
    def size(self) -> int:
        return len(self.chunks)

    def describe(self) -> str:
        return f"index folder: {self.folder}"

    def candidates(self, query: str, qvec: np.ndarray, n: int, scope: Scope | None = None) -> Candidates:
        """The n best rows by cosine and by BM25; both scores of every candidate are exact
        (cosines from the stored vectors, BM25 from the full scoring). Keys are row numbers.

        With a `scope`, only its documents' rows compete: their cosines are computed exactly (a scan of
        the allowed rows, not the FAISS graph) and the other rows' BM25 scores are zeroed.
        """
        keyword_all = self.bm25.scores(query)
        if scope is None or scope.everything:
            dense_ids, _ = self.vector_index.search(qvec, n)
        else:
            allowed = np.array([i for i, c in enumerate(self.chunks) if scope.allows(c.source)], dtype=np.int64)
            cosines = self.vectors[allowed] @ qvec if len(allowed) else np.zeros(0, dtype=np.float32)
            order = np.lexsort((allowed, -cosines))[:n]  # best first, ties by row
            dense_ids = [int(allowed[i]) for i in order]
            mask = np.zeros(len(keyword_all), dtype=bool)
            mask[allowed] = True
            keyword_all = np.where(mask, keyword_all, 0.0)
        keyword_ids = self.bm25.top(keyword_all, n)
        rows = list(dict.fromkeys(dense_ids + keyword_ids))
        dense = dict(zip(rows, (self.vectors[rows] @ qvec).tolist()))
        keyword = {i: float(keyword_all[i]) for i in rows}
        return Candidates(qvec, dense, keyword, dense_ids, keyword_ids, {i: self.chunks[i] for i in rows})

    def exact_scores(self, query: str, qvec: np.ndarray, keys: list[int]) -> dict[int, tuple[float, float, Chunk]]:
        """Cosine, BM25 score and chunk of rows that were not candidates of `query`."""
        keyword_all = self.bm25.scores(query)
        return {i: (float(self.vectors[i] @ qvec), float(keyword_all[i]), self.chunks[i]) for i in keys}


@dataclass
class UpdateReport:
    """What an index update did, for the CLI and the UI to print."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[Skipped] = field(default_factory=list)  # indexed, but part of the file could not be read
    chunks_embedded: int = 0
    total_chunks: int = 0
    rebuilt_reason: str = ""
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt_reason)

    def summary(self) -> str:
        parts = [
            f"{len(self.added)} added", f"{len(self.updated)} updated", f"{len(self.removed)} removed",
            f"{len(self.unchanged)} unchanged", f"{len(self.skipped)} skipped",
            f"{self.chunks_embedded} chunks embedded", f"{self.total_chunks} chunks in index",
        ]
        head = f"rebuilt ({self.rebuilt_reason}): " if self.rebuilt_reason else ""
        return head + ", ".join(parts) + f" in {self.seconds:.2f}s"


# progress(stage, done, total): "files" read, then "chunks" embedded (the CLI's bar, the page's progress).
Progress = Callable[[str, int, int], None]
EMBED_BATCH = 64  # chunks per call to the embedder when progress is reported


def embed_with_progress(embedder: Embedder, texts: list[str], progress: Progress | None) -> np.ndarray:
    """The texts' vectors, in batches that each report their progress (one call when nobody listens)."""
    if progress is None or not texts:
        return embedder.embed(texts)
    parts = []
    for i in range(0, len(texts), EMBED_BATCH):
        progress("chunks", i, len(texts))
        parts.append(embedder.embed(texts[i:i + EMBED_BATCH]))
    progress("chunks", len(texts), len(texts))
    return np.vstack(parts)


def settings_signature(embedder: Embedder, chunk_size: int, chunk_overlap: int) -> dict:
    """What must match for a saved index to be reused."""
    return {
        "format_version": FORMAT_VERSION,
        "embedder": embedder.identity,
        "chunking": {"splitter": "recursive-v1", "size": chunk_size, "overlap": chunk_overlap},
        "parser_version": PARSER_VERSION,
    }


def load_index(folder: Path, expected: dict | None = None) -> Index:
    """Load and validate; raise IndexMismatchError or IndexCorruptError with the reason."""
    manifest = _read_manifest(folder)
    if expected is not None:
        for key, value in expected.items():
            if manifest.get(key) != value:
                raise IndexMismatchError(
                    f"index was built with {key}={manifest.get(key)!r}, settings say {value!r}"
                )
    files = manifest.get("files", {})
    for role in ("chunks", "vectors", "faiss"):
        entry = files.get(role)
        if not entry or not (folder / entry["name"]).is_file():
            raise IndexCorruptError(f"index file for {role} is missing")
        if sha256_file(folder / entry["name"]) != entry["sha256"]:
            raise IndexCorruptError(f"index file {entry['name']} fails its checksum (truncated or edited)")
    chunks = _read_chunks(folder / files["chunks"]["name"])
    try:
        vectors = np.load(folder / files["vectors"]["name"], allow_pickle=False)
    except (ValueError, OSError) as e:
        raise IndexCorruptError(f"cannot read vectors: {e}") from None
    vindex = VectorIndex.load(folder / files["faiss"]["name"], manifest.get("vector_index", "flat"))
    if len(chunks) != len(vectors) or vindex.index.ntotal != len(chunks):
        raise IndexCorruptError("index files disagree on the number of chunks")
    return Index(folder, manifest, chunks, vectors, vindex)


def update_index(
    docs_dir: Path,
    index_dir: Path,
    embedder: Embedder,
    chunk_size: int,
    chunk_overlap: int,
    exact_max: int = 50_000,
    max_file_mb: float = 60.0,
    force: bool = False,
    lock_timeout: float = LOCK_TIMEOUT_S,
    progress: Progress | None = None,
) -> tuple[Index, UpdateReport]:
    """Bring the index in line with the documents folder; embed only new or changed documents.

    The whole update (read the old index, embed, write, commit, delete stale files) holds the index
    folder's lock, so a second process updating the same folder waits and then sees this update.
    `progress(stage, done, total)` is told of each file read ("files") and chunks embedded ("chunks").
    """
    with update_lock(index_dir, lock_timeout):
        return _update_locked(docs_dir, index_dir, embedder, chunk_size, chunk_overlap, exact_max, max_file_mb, force,
                              progress)


@contextmanager
def update_lock(index_dir: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the inter-process lock of `index_dir`, waiting up to `timeout` s (and saying so) for another writer.

    An OS lock (flock), so a writer that is killed releases it; the lock file itself stays.
    """
    from filelock import FileLock, Timeout

    index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(index_dir / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("waiting for another process that is updating the index at %s (up to %g s)", index_dir, timeout)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise IndexBusyError(
                f"the index at {index_dir} stayed locked by another process updating it for {timeout:g} s "
                f"(lock file {LOCK}); try again when that process has finished"
            ) from None
    try:
        yield
    finally:
        lock.release()


def _update_locked(
    docs_dir: Path, index_dir: Path, embedder: Embedder, chunk_size: int, chunk_overlap: int,
    exact_max: int, max_file_mb: float, force: bool, progress: Progress | None = None,
) -> tuple[Index, UpdateReport]:
    """`update_index` once the lock is held."""
    t0 = time.perf_counter()
    signature = settings_signature(embedder, chunk_size, chunk_overlap)
    report = UpdateReport()
    old = None if force else _try_load(index_dir, signature, report)
    if force:
        report.rebuilt_reason = "forced"
    old_docs = old.documents if old else {}
    old_by_source = _chunks_by_source(old) if old else {}

    documents, new_chunks = scan_documents(docs_dir, old_docs, chunk_size, chunk_overlap, max_file_mb, report, progress)
    kept_rows = [r for name in report.unchanged for r in old_by_source.get(name, [])]
    kept_chunks = [old.chunks[r] for r in kept_rows]

    if old is not None and not report.changed:
        report.total_chunks = len(old.chunks)
        report.seconds = time.perf_counter() - t0
        return old, report

    new_vectors = embed_with_progress(embedder, [c.text for c in new_chunks], progress)
    report.chunks_embedded = len(new_chunks)
    old_vectors = old.vectors[kept_rows] if old is not None and kept_rows else None
    chunks, vectors = _merge(kept_chunks, old_vectors, new_chunks, new_vectors, embedder)
    index = _save(index_dir, signature, documents, chunks, vectors, exact_max)
    report.total_chunks = len(chunks)
    report.seconds = time.perf_counter() - t0
    log.info("index updated %s", report.summary())
    return index, report


def scan_documents(
    docs_dir: Path, old_docs: dict[str, dict], chunk_size: int, chunk_overlap: int, max_file_mb: float,
    report: UpdateReport, progress: Progress | None = None,
) -> tuple[dict[str, dict], list[Chunk]]:
    """Compare the documents folder with an index's documents: the new documents map and the chunks of
    new or changed documents. Fills the report's added, updated, unchanged, skipped and removed.
    Shared by every store: what changed does not depend on where the vectors live."""
    new_chunks: list[Chunk] = []
    documents: dict[str, dict] = {}
    splitter = make_splitter(chunk_size, chunk_overlap)
    paths = list_files(docs_dir)
    for done, path in enumerate(paths):
        if progress is not None:
            progress("files", done, len(paths))
        name = source_name(docs_dir, path)
        try:
            raw_hash = _raw_hash(path, max_file_mb)
            if name in old_docs and old_docs[name]["sha256"] == raw_hash:
                documents[name] = old_docs[name]
                report.unchanged.append(name)
                continue
            doc = load_file(path, name, max_file_mb=max_file_mb)
        except DocumentError as e:
            log.warning("skipped source=%s reason=%s", name, e)
            report.skipped.append(Skipped(name, str(e)))
            continue
        chunks = chunk_document(doc, chunk_size, chunk_overlap, splitter)
        new_chunks.extend(chunks)
        documents[name] = {
            "sha256": doc.sha256, "title": doc.title, "url": doc.url, "chunks": len(chunks),
            "chars": len(doc.text), "encoding": doc.encoding,
            "locations": [list(x) for x in doc.locations], "warnings": list(doc.warnings),
        }
        report.warnings += [Skipped(name, w) for w in doc.warnings]
        (report.updated if name in old_docs else report.added).append(name)
    if progress is not None:
        progress("files", len(paths), len(paths))
    report.removed = sorted(set(old_docs) - set(documents) - {s.source for s in report.skipped})
    # A skipped file that was indexed before stays out: its old chunks describe a file that changed.
    report.removed += sorted(set(old_docs) & {s.source for s in report.skipped})
    return documents, new_chunks


def _try_load(index_dir: Path, signature: dict, report: UpdateReport) -> Index | None:
    if not (index_dir / MANIFEST).exists():
        return None
    try:
        return load_index(index_dir, signature)
    except IndexError_ as e:
        report.rebuilt_reason = str(e)
        log.warning("rebuilding index reason=%s", e)
        return None


def _chunks_by_source(index: Index) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = {}
    for i, c in enumerate(index.chunks):
        rows.setdefault(c.source, []).append(i)
    return rows


def _merge(kept, kept_vectors, new, new_vectors, embedder) -> tuple[list[Chunk], np.ndarray]:
    """Kept and new chunks ordered by source and position, vectors in the same order."""
    chunks = list(kept) + list(new)
    parts = [v for v in (kept_vectors, new_vectors) if v is not None and len(v)]
    vectors = np.concatenate(parts) if parts else np.zeros((0, embedder.dim), dtype=np.float32)
    order = sorted(range(len(chunks)), key=lambda i: (chunks[i].source, chunks[i].start, chunks[i].id))
    return [chunks[i] for i in order], np.ascontiguousarray(vectors[order], dtype=np.float32)


def _save(folder, signature, documents, chunks, vectors, exact_max) -> Index:
    """Write new data files, then commit by renaming the manifest over the old one."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = time.strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
    names = {"chunks": f"chunks-{gen}.jsonl", "vectors": f"vectors-{gen}.npy", "faiss": f"index-{gen}.faiss"}
    with (folder / names["chunks"]).open("w", encoding="utf-8") as f:
        for c in chunks:
            f.write(json.dumps(asdict(c), ensure_ascii=False) + "\n")
    with (folder / names["vectors"]).open("wb") as f:
        np.save(f, vectors, allow_pickle=False)
    vindex = VectorIndex.build(vectors, exact_max)
    vindex.save(folder / names["faiss"])
    for name in names.values():
        _fsync(folder / name)
    manifest = dict(signature)
    manifest.update(
        dim=int(vectors.shape[1]) if vectors.ndim == 2 else 0,
        vector_index=vindex.kind,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        documents=documents,
        files={role: {"name": n, "sha256": sha256_file(folder / n)} for role, n in names.items()},
    )
    tmp = folder / f".{MANIFEST}.{gen}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, folder / MANIFEST)
    _remove_stale(folder, set(names.values()))
    return Index(folder, manifest, chunks, vectors, vindex)


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete data files no manifest points to (earlier generations, interrupted builds)."""
    for path in folder.iterdir():
        stale_data = path.name.startswith(("chunks-", "vectors-", "index-")) and path.name not in keep
        stale_tmp = path.name.startswith(f".{MANIFEST}.") and path.name.endswith(".tmp")
        if stale_data or stale_tmp:
            path.unlink(missing_ok=True)


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise IndexError_(f"no index in {folder} (run: python -m rag index)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexCorruptError(f"manifest.json is not valid JSON ({e.msg if hasattr(e, 'msg') else e})") from None
    if not isinstance(manifest, dict) or not _well_formed(manifest):
        raise IndexCorruptError("manifest.json lacks its files or documents, or they are malformed")
    return manifest


def _well_formed(manifest: dict) -> bool:
    """The shape that loading and updating rely on; a hand-edited manifest can lack it (a rebuild, not a crash)."""
    files, documents = manifest.get("files"), manifest.get("documents")
    if not isinstance(files, dict) or not isinstance(documents, dict):
        return False
    # Data files are plain names inside the index folder, each with its checksum.
    entries_ok = all(
        isinstance(e, dict) and isinstance(e.get("name"), str) and Path(e["name"]).name == e["name"]
        and isinstance(e.get("sha256"), str) for e in files.values()
    )
    return entries_ok and all(isinstance(d, dict) and isinstance(d.get("sha256"), str) for d in documents.values())


def _read_chunks(path: Path) -> list[Chunk]:
    chunks = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            chunks.append(Chunk(**json.loads(line)))
    return chunks


def _raw_hash(path: Path, max_file_mb: float) -> str:
    try:
        size = path.stat().st_size
        if size > max_file_mb * 1024 * 1024:
            raise DocumentError(f"file is {size / 1e6:.0f} MB, over the {max_file_mb:g} MB limit")
        return sha256_file(path) + f":p{PARSER_VERSION}"
    except OSError as e:
        raise DocumentError(f"cannot read file: {e.strerror or e}") from None


def _fsync(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())
