import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rag.ingest.documents import list_files
from rag.store.embedding import HashingEmbedder
from rag.errors import IndexCorruptError, IndexMismatchError
from rag.retrieval.hybrid import HybridRetriever, convex_fusion, reciprocal_rank_fusion
from rag.store.index import load_index, settings_signature, update_index
from rag.store.vectors import VectorIndex

from conftest import ROOT, UK_DOC


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, recording which texts it was asked to embed."""

    def __init__(self, dim=128):
        super().__init__(dim)
        self.seen: list[str] = []

    def embed(self, texts):
        self.seen.extend(texts)
        return super().embed(texts)


def document_names(docs: Path) -> list[str]:
    """The documents of a folder (the seeds also hold questions.jsonl, which is not one)."""
    return [p.name for p in list_files(docs)]


def build(docs: Path, index: Path, embedder=None, size=300, overlap=50):
    return update_index(docs, index, embedder or CountingEmbedder(), size, overlap)


def test_faiss_topk_equals_brute_force():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex.build(vectors)
    for q in rng.normal(size=(20, 64)).astype(np.float32):
        q /= np.linalg.norm(q)
        ids, scores = index.search(q, 10)
        brute = np.argsort(-(vectors @ q), kind="stable")[:10]
        assert ids == brute.tolist()
        np.testing.assert_allclose(scores, (vectors @ q)[brute], rtol=1e-5)


def test_hnsw_recall_against_exact():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    hnsw = VectorIndex.build(vectors, exact_max=1000)
    assert hnsw.kind == "hnsw"
    found = 0
    queries = rng.normal(size=(50, 32)).astype(np.float32)
    for q in queries:
        exact = set(np.argsort(-(vectors @ q))[:10].tolist())
        found += len(exact & set(hnsw.search(q, 10)[0]))
    assert found / 500 >= 0.9


def test_save_load_round_trip(docs, tmp_path):
    index, report = build(docs, tmp_path / "ix")
    assert sorted(report.added) == sorted(document_names(docs))
    loaded = load_index(tmp_path / "ix")
    assert loaded.chunks == index.chunks
    np.testing.assert_array_equal(loaded.vectors, index.vectors)
    q = index.vectors[3]
    assert loaded.vector_index.search(q, 5) == index.vector_index.search(q, 5)
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["dim"] == 128
    assert manifest["chunking"] == {"splitter": "recursive-v1", "size": 300, "overlap": 50}
    assert set(manifest["documents"]) == set(document_names(docs))
    # chunks file is readable JSONL with exact offsets
    chunks_file = tmp_path / "ix" / manifest["files"]["chunks"]["name"]
    first = json.loads(chunks_file.read_text().splitlines()[0])
    text = (docs / first["source"]).read_text()
    assert text[first["start"] : first["end"]] == first["text"]


def test_incremental_update_embeds_only_the_changed_file(docs, tmp_path):
    build(docs, tmp_path / "ix")
    (docs / UK_DOC).write_text((docs / UK_DOC).read_text() + "\nA new closing sentence about grants.\n")
    (docs / "new.txt").write_text("A brand new document about cooperation.")
    embedder = CountingEmbedder()
    index, report = build(docs, tmp_path / "ix", embedder)
    assert report.updated == [UK_DOC] and report.added == ["new.txt"] and not report.removed
    assert len(report.unchanged) == 1
    sources = {c.source for c in index.chunks}
    changed_chunks = [c.text for c in index.chunks if c.source in (UK_DOC, "new.txt")]
    assert sorted(embedder.seen) == sorted(changed_chunks)  # nothing else was embedded
    assert sources == set(document_names(docs))
    # vectors of unchanged chunks were reused and still match a fresh embedding
    fresh = CountingEmbedder().embed([c.text for c in index.chunks])
    np.testing.assert_allclose(index.vectors, fresh, atol=1e-6)


def test_nothing_changed_embeds_nothing_and_writes_nothing(docs, tmp_path):
    build(docs, tmp_path / "ix")
    before = sorted(p.name for p in (tmp_path / "ix").iterdir())
    embedder = CountingEmbedder()
    _, report = build(docs, tmp_path / "ix", embedder)
    assert not report.changed and embedder.seen == []
    assert sorted(p.name for p in (tmp_path / "ix").iterdir()) == before


def test_removed_document_is_dropped(docs, tmp_path):
    build(docs, tmp_path / "ix")
    (docs / UK_DOC).unlink()
    index, report = build(docs, tmp_path / "ix")
    assert report.removed == [UK_DOC]
    assert all(c.source != UK_DOC for c in index.chunks)
    assert len(index.vectors) == len(index.chunks) == index.vector_index.index.ntotal


def test_changed_settings_rebuild_with_a_reason(docs, tmp_path):
    build(docs, tmp_path / "ix", size=300)
    with pytest.raises(IndexMismatchError):
        load_index(tmp_path / "ix", settings_signature(HashingEmbedder(128), 500, 50))
    embedder = CountingEmbedder()
    index, report = build(docs, tmp_path / "ix", embedder, size=500)
    assert "chunking" in report.rebuilt_reason
    assert len(embedder.seen) == len(index.chunks)


def test_truncated_index_file_is_detected_and_rebuilt(docs, tmp_path):
    index, _ = build(docs, tmp_path / "ix")
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    vec = tmp_path / "ix" / manifest["files"]["vectors"]["name"]
    vec.write_bytes(vec.read_bytes()[:-100])
    with pytest.raises(IndexCorruptError):
        load_index(tmp_path / "ix")
    rebuilt, report = build(docs, tmp_path / "ix")
    assert "checksum" in report.rebuilt_reason
    assert rebuilt.chunks == index.chunks
    load_index(tmp_path / "ix")  # loads cleanly again


def test_interrupted_build_leaves_previous_index_loadable(docs, tmp_path, monkeypatch):
    index, _ = build(docs, tmp_path / "ix")
    (docs / "new.txt").write_text("Another document.")

    def crash(self, path):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(VectorIndex, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        build(docs, tmp_path / "ix")
    assert load_index(tmp_path / "ix").chunks == index.chunks


def test_rrf_is_a_pure_fusion_of_ranks():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 2, 4]], k=60)
    scores = dict(fused)
    assert scores[2] == pytest.approx(2 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert [i for i, _ in fused][:2] == [3, 2]
    assert scores[4] == pytest.approx(1 / 63)


def test_convex_fusion_against_hand_computed_zscores():
    dense = {1: 0.9, 2: 0.6, 3: 0.3}
    keyword = {1: 0.0, 2: 6.0, 3: 3.0}
    # z(dense) = (+1.2247, 0, -1.2247); z(keyword) = (-1.2247, +1.2247, 0)
    fused = dict(convex_fusion(dense, keyword, dense_weight=0.5))
    assert fused[1] == pytest.approx(0.0, abs=1e-9)
    assert fused[2] == pytest.approx(0.61237, abs=1e-4)
    assert fused[3] == pytest.approx(-0.61237, abs=1e-4)
    assert [i for i, _ in convex_fusion(dense, keyword, dense_weight=1.0)] == [1, 2, 3]
    assert [i for i, _ in convex_fusion(dense, keyword, dense_weight=0.0)] == [2, 3, 1]
    # A list with one value everywhere carries no information and does not move the ranking.
    assert [i for i, _ in convex_fusion(dense, {1: 2.0, 2: 2.0, 3: 2.0})] == [1, 2, 3]


@pytest.mark.parametrize("fusion", ["convex", "rrf"])
def test_hybrid_retrieval_finds_the_grant_with_either_fusion(docs, tmp_path, fusion):
    embedder = HashingEmbedder(256)
    index, _ = build(docs, tmp_path / "ix", embedder)
    hits = HybridRetriever(index, embedder, fusion=fusion).search("What did the UK fund?", 3)
    assert hits[0].chunk.source == UK_DOC
    assert any("1 million pounds" in h.chunk.text for h in hits)
    assert [h.rank for h in hits] == [1, 2, 3]


def test_hybrid_retrieval_finds_the_grant(docs, tmp_path):
    embedder = HashingEmbedder(256)
    index, _ = build(docs, tmp_path / "ix", embedder)
    hits = HybridRetriever(index, embedder).search("What did the UK fund?", 3)
    assert hits[0].chunk.source == UK_DOC
    assert any("1 million pounds" in h.chunk.text for h in hits)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert all(h.dense_score is not None for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # Reported raw scores are exact: the cosine with the stored vector, the BM25 score of the full scoring.
    qvec = embedder.embed_query("What did the UK fund?")
    bm25 = index.bm25.scores("What did the UK fund?")
    row = index.chunks.index(hits[0].chunk)
    assert hits[0].dense_score == pytest.approx(float(index.vectors[row] @ qvec), abs=1e-5)
    assert hits[0].keyword_score == pytest.approx(float(bm25[row]), abs=1e-5)


def test_second_writer_waits_for_the_first_and_deletes_none_of_its_files(docs, tmp_path, monkeypatch):
    """A writer paused between its data files and its manifest; `python -m rag index` on the same folder
    must wait for it (saying so), not build its own index and delete the paused writer's files."""
    ix = tmp_path / "ix"
    paused, resume = threading.Event(), threading.Event()
    real_build = VectorIndex.build

    def paused_build(vectors, exact_max=50_000):
        paused.set()  # chunks-<gen>.jsonl and vectors-<gen>.npy are written; index-<gen>.faiss and the manifest are not
        resume.wait(60)
        return real_build(vectors, exact_max)

    monkeypatch.setattr(VectorIndex, "build", staticmethod(paused_build))
    first: dict = {}
    writer = threading.Thread(target=lambda: first.update(index=update_index(docs, ix, HashingEmbedder(256), 1200, 150)[0]))
    writer.start()
    try:
        assert paused.wait(30)
        written = {p.name for p in ix.iterdir() if p.name.startswith(("chunks-", "vectors-"))}
        assert len(written) == 2
        stderr = tmp_path / "second.err"
        with stderr.open("w") as err:
            second = subprocess.Popen(
                [sys.executable, "-m", "rag", "index", "--docs", str(docs), "--index", str(ix)], cwd=ROOT,
                env=dict(os.environ, RAG_EMBEDDER="hashing", RAG_ENGINE="echo"), stdout=subprocess.PIPE, stderr=err, text=True)
            deadline = time.time() + 60
            while second.poll() is None and "waiting for another process" not in stderr.read_text() and time.time() < deadline:
                time.sleep(0.05)
            assert f"waiting for another process that is updating the index at {ix}" in stderr.read_text()
            time.sleep(0.3)
            assert second.poll() is None  # still waiting
            assert written <= {p.name for p in ix.iterdir()}
    finally:
        resume.set()
        writer.join(60)
    out, _ = second.communicate(timeout=120)
    assert second.returncode == 0, stderr.read_text()
    assert "index up to date" in out  # it saw the first writer's index, whole
    index = load_index(ix)
    assert index.manifest["files"] == first["index"].manifest["files"]
    assert written <= {p.name for p in ix.iterdir()}


def test_index_locked_too_long_is_a_one_line_error(docs, tmp_path):
    from filelock import FileLock

    from rag.errors import RagError
    from rag.store.index import LOCK

    ix = tmp_path / "ix"
    ix.mkdir()
    with FileLock(ix / LOCK):  # another writer, as far as update_index can tell
        t0 = time.perf_counter()
        with pytest.raises(RagError) as e:
            update_index(docs, ix, HashingEmbedder(), 300, 50, lock_timeout=0.5)
        assert 0.4 < time.perf_counter() - t0 < 10
    message = str(e.value)
    assert "\n" not in message and str(ix) in message and "another process" in message
    build(docs, ix)  # released: the next update goes through
