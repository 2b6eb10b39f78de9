"""Questions restricted to some documents (`ask --only`, the page's document filter): the filter is
applied inside the index search, on FAISS and on Milvus, and checked against brute force over the
allowed chunks."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from rag.store.embedding import HashingEmbedder
from rag.errors import QuestionError
from rag.pipeline import Pipeline
from rag.records import Scope
from rag.retrieval.hybrid import HybridRetriever
from rag.store.index import update_index

from conftest import MEKONG_DOC, ROOT, UK_DOC


def _extra_docs(docs, n=12):
    words = (docs / MEKONG_DOC).read_text().split()
    rng = np.random.default_rng(1)
    for i in range(n):
        (docs / f"notes/extra{i}.txt").parent.mkdir(exist_ok=True)
        (docs / f"notes/extra{i}.txt").write_text(" ".join(rng.choice(words, 150)))


def _brute(index, qvec, scope, n):
    rows = [i for i, c in enumerate(index.chunks) if scope.allows(c.source)]
    cos = index.vectors[rows] @ qvec
    return [rows[i] for i in np.lexsort((rows, -cos))[:n]]


def test_faiss_candidates_are_the_allowed_rows_exact_top(docs, tmp_path):
    _extra_docs(docs)
    embedder = HashingEmbedder(128)
    index, _ = update_index(docs, tmp_path / "ix", embedder, 300, 50)
    query = "cooperation against human trafficking"
    qvec = embedder.embed_query(query)
    for scope in (Scope(only=frozenset({MEKONG_DOC})), Scope(only=frozenset({UK_DOC, "notes/extra3.txt"})),
                  Scope(exclude=frozenset({UK_DOC}))):
        found = index.candidates(query, qvec, 8, scope)
        assert found.dense_ids == _brute(index, qvec, scope, 8)
        assert all(scope.allows(found.chunks[k].source) for k in found.chunks)
        assert found.keyword_ids and all(scope.allows(index.chunks[k].source) for k in found.keyword_ids)
        hits = HybridRetriever(index, embedder).search(query, 6, scope)
        assert hits and all(scope.allows(h.chunk.source) for h in hits)
    # no scope: the unrestricted search, unchanged
    assert index.candidates(query, qvec, 8).dense_ids == _brute(index, qvec, Scope(), 8)


def test_milvus_filter_matches_faiss(docs, tmp_path):
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    from test_store_milvus import build, config

    _extra_docs(docs)
    embedder = HashingEmbedder(128)
    faiss_index, _ = update_index(docs, tmp_path / "faiss", embedder, 300, 50)
    milvus_index, _ = build(docs, config(tmp_path), embedder)
    scope = Scope(only=frozenset({MEKONG_DOC, "notes/extra5.txt"}))
    for query in ("What did the UK fund?", "Mekong countries cooperation"):
        ours = HybridRetriever(milvus_index, embedder).search(query, 5, scope)
        theirs = HybridRetriever(faiss_index, embedder).search(query, 5, scope)
        assert [h.chunk for h in ours] == [h.chunk for h in theirs]
        assert all(scope.allows(h.chunk.source) for h in ours)


def test_pipeline_resolves_names_and_patterns(fake_settings, docs):
    _extra_docs(docs, 3)
    pipeline = Pipeline.from_settings(fake_settings)
    assert pipeline.scope([UK_DOC]).only == {UK_DOC}
    assert pipeline.scope(["notes/*.txt"]).only == {"notes/extra0.txt", "notes/extra1.txt", "notes/extra2.txt"}
    with pytest.raises(QuestionError, match="no document matches 'missing.pdf'"):
        pipeline.scope(["missing.pdf"])
    answer = pipeline.ask("What did the UK fund?", only=[MEKONG_DOC])
    assert answer.passages and {p.hit.chunk.source for p in answer.passages} == {MEKONG_DOC}
    assert all(c.source == MEKONG_DOC for c in answer.citations)
    assert {h.chunk.source for h in pipeline.search("UK", 4, only=[UK_DOC])} == {UK_DOC}


def test_cli_only_flag(fake_settings, docs, tmp_path):
    env = dict(os.environ, RAG_EMBEDDER="hashing", RAG_ENGINE="echo")
    base = [sys.executable, "-m", "rag"]
    common = ["--docs", str(docs), "--index", str(tmp_path / "cli-ix")]
    run = lambda *a: subprocess.run(base + list(a) + common, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)  # noqa: E731
    assert run("index").returncode == 0
    out = run("search", "What did the UK fund?", "--only", MEKONG_DOC, "--json")
    assert out.returncode == 0, out.stderr
    import json

    assert {p["source"] for p in json.loads(out.stdout)["passages"]} == {MEKONG_DOC}
    bad = run("ask", "What did the UK fund?", "--only", "nothing-like-this.txt")
    assert bad.returncode != 0 and "no document matches" in bad.stderr and "Traceback" not in bad.stderr
