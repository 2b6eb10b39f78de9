"""The Milvus store, for real against Milvus Lite (Milvus's C++ engine in a process of its own, reached
by this process alone or, through `rag milvus-serve`, on a port: the client code is the code a cluster gets).

Oracles: the FAISS index built from the same documents with the same embedder (same chunks, same
vectors, same BM25), and numpy brute force for the dense top-k.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="store = milvus needs pymilvus (requirements.txt)")
pytest.importorskip("milvus_lite", reason="the Milvus tests run against milvus-lite (requirements.txt)")

from rag.store.embedding import HashingEmbedder  # noqa: E402
from rag.errors import IndexCorruptError, StoreError  # noqa: E402
from rag.store.milvus.update import MilvusConfig, open_milvus_index, update_milvus_index  # noqa: E402
from rag.retrieval.hybrid import HybridRetriever  # noqa: E402
from rag.store.index import update_index  # noqa: E402

from conftest import MEKONG_DOC, ROOT, UK_DOC  # noqa: E402
from test_index import CountingEmbedder  # noqa: E402

FAKE = {"RAG_EMBEDDER": "hashing", "RAG_ENGINE": "echo"}


def config(tmp_path: Path, uri: str = "", bm25: str = "client", timeout: float = 10.0) -> MilvusConfig:
    # The CLI's default collection name, so the tests and `python -m rag` meet in one store.
    return MilvusConfig(uri or str(tmp_path / "milvus.db"), collection="rag_chunks", timeout=timeout, bm25=bm25,
                        lock_dir=tmp_path / "lock")


def build(docs: Path, cfg: MilvusConfig, embedder=None, **kw):
    return update_milvus_index(docs, embedder or CountingEmbedder(), 300, 50, cfg, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """Milvus Lite served on a port (`rag milvus-serve`): several app processes share it, as they would a cluster."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rag", "milvus-serve", "--milvus-uri", str(tmp_path / "server.db"),
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def rag_cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag", *args], cwd=ROOT, env=dict(os.environ, **FAKE, **(env or {})),
                          capture_output=True, text=True, timeout=timeout)


def key(c) -> tuple:
    return (c.source, c.start, c.id)


@pytest.mark.parametrize("bm25", ["client", "server"])
def test_same_chunks_vectors_and_topk_as_faiss_exact_search(docs, tmp_path, bm25):
    words = (docs / MEKONG_DOC).read_text().split()
    rng = np.random.default_rng(0)
    for i in range(30):  # more chunks than candidates
        (docs / f"extra{i}.txt").write_text(" ".join(rng.choice(words, 120)))
    embedder = HashingEmbedder(128)
    faiss_index, _ = update_index(docs, tmp_path / "faiss", embedder, 300, 50)
    index, report = build(docs, config(tmp_path, bm25=bm25), embedder)
    assert report.total_chunks == len(faiss_index.chunks) == index.size
    assert index.chunks() == faiss_index.chunks  # same chunks, in the same order
    reads = []
    get = index.client.get
    index.client.get = lambda name, *a, **kw: (name == index.config.collection and reads.append(kw.get("ids"))) \
        or get(name, *a, **kw)  # reads of chunks (not of the head row in <name>_meta)
    for query in ["What did the UK fund?", "Who delivered the opening speech at IMM6?", "rivers training 12"]:
        qvec = embedder.embed_query(query)
        reads.clear()
        found = index.candidates(query, qvec, 10)
        assert len(reads) <= 1, reads  # the keyword-only candidates are read by key once, vectors and texts together
        brute = np.argsort(-(faiss_index.vectors @ qvec), kind="stable")[:10]
        assert found.dense_ids == [key(faiss_index.chunks[i]) for i in brute]  # exact top-10, in order
        for k, score in found.dense.items():
            row = faiss_index.chunks.index(found.chunks[k])
            assert score == pytest.approx(float(faiss_index.vectors[row] @ qvec), abs=1e-5)
        if bm25 == "client":  # our BM25 over the same texts: the whole hybrid ranking is FAISS's
            ours = HybridRetriever(index, embedder).search(query, 5)
            theirs = HybridRetriever(faiss_index, embedder).search(query, 5)
            assert [h.chunk for h in ours] == [h.chunk for h in theirs]
            assert [h.score for h in ours] == pytest.approx([h.score for h in theirs], abs=1e-4)
            assert [h.keyword_score for h in ours] == pytest.approx([h.keyword_score for h in theirs], abs=1e-4)
        else:  # Milvus's BM25 function over our terms: the keyword candidates match the query's words
            assert found.keyword_ids and all(found.keyword[k] > 0 for k in found.keyword_ids)
    vocab = sorted(faiss_index.bm25.vocab)
    inner = [t for t in vocab if t.isalpha() and any(t in u and t != u for u in vocab)][:8]  # "train" in "trainer"
    assert len(inner) >= 3
    for word in ["trafficking", "Mekong", "zebra"] + inner:  # the IDF the answer check asks of either store
        assert index.bm25.idf_of(word) == pytest.approx(faiss_index.bm25.idf_of(word), abs=1e-6), word
    assert HybridRetriever(index, embedder).search("What did the UK fund?", 3)[0].chunk.source == UK_DOC


def test_incremental_update_embeds_only_changed_and_removes_deleted(docs, tmp_path):
    cfg = config(tmp_path)
    first, _ = build(docs, cfg)
    old_version = first.head["version"]
    (docs / UK_DOC).write_text((docs / UK_DOC).read_text() + "\nA new closing sentence about grants.\n")
    (docs / "new.txt").write_text("A brand new document about cooperation.")
    removed = next(p.name for p in docs.iterdir() if p.suffix == ".txt" and p.name not in (UK_DOC, "new.txt"))
    (docs / removed).unlink()
    embedder = CountingEmbedder()
    index, report = build(docs, cfg, embedder)
    assert report.updated == [UK_DOC] and report.added == ["new.txt"] and report.removed == [removed]
    chunks = index.chunks()
    assert sorted(embedder.seen) == sorted(c.text for c in chunks)  # only the changed and new documents
    assert {c.source for c in chunks} == {UK_DOC, "new.txt"}
    assert index.head["version"] == old_version + 1 and index.head["stale_chunks"] == 0
    # No row of the old UK document or of the removed one is left in the collection.
    rows = index.client.query("rag_chunks", filter="build >= 0", output_fields=["source", "build"])
    assert len(rows) == len(chunks) and all(r["source"] != removed for r in rows)
    _, again = build(docs, cfg, CountingEmbedder())
    assert not again.changed


def test_interrupted_updates_leave_a_consistent_index(docs, tmp_path, monkeypatch):
    """Killed after inserting (before the commit), then after the commit (before deleting what it
    replaced): readers answer from the old, then the new version, whole; the next update cleans up."""
    import rag.store.milvus.update as ms

    cfg = config(tmp_path)
    old, _ = build(docs, cfg)
    old_chunks = old.chunks()
    (docs / UK_DOC).write_text("The UK funded a new bridge over the river. " * 20)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(ms.mc, "write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        build(docs, cfg)
    assert old.chunks() == old_chunks  # the new rows are there, but not committed: invisible
    monkeypatch.undo()
    monkeypatch.setattr(ms, "_delete_rows", crash)
    with pytest.raises(KeyboardInterrupt):
        build(docs, cfg)
    reader = open_milvus_index(cfg, CountingEmbedder(), 300, 50)
    assert reader.head["stale_chunks"] > 0
    new_chunks = reader.chunks()
    assert new_chunks != old_chunks and "bridge" in " ".join(c.text for c in new_chunks if c.source == UK_DOC)
    hits = HybridRetriever(reader, CountingEmbedder()).search("What did the UK fund?", 8)
    assert not any("1 million pounds" in h.chunk.text for h in hits)  # the replaced version never shows
    monkeypatch.undo()
    index, report = build(docs, cfg)
    assert not report.changed and index.head["stale_chunks"] == 0
    rows = index.client.query("rag_chunks", filter="build >= 0", output_fields=["source"])
    assert len(rows) == len(new_chunks)  # superseded and uncommitted rows are gone


def test_killed_rag_index_leaves_old_or_new(tmp_path, server):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(600):
        (docs / f"doc{i:03d}.txt").write_text(f"Document {i} revision 1. " + "Rivers and grants and training. " * 40)
    args = ["index", "--docs", str(docs), "--index", str(tmp_path / "ix"), "--store", "milvus", "--milvus-uri", server]
    assert rag_cli(*args).returncode == 0
    cfg = config(tmp_path, uri=server)
    old = open_milvus_index(cfg, HashingEmbedder(), 1200, 150)
    old_chunks, old_version = old.chunks(), old.head["version"]
    for i in range(600):
        (docs / f"doc{i:03d}.txt").write_text(f"Document {i} revision 2. " + "Bridges and loans. " * 60)
    proc = subprocess.Popen([sys.executable, "-m", "rag", *args], cwd=ROOT, env=dict(os.environ, **FAKE),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not old.client.query("rag_chunks", filter=f"build > {old_version}", output_fields=["count(*)"])[0]["count(*)"]:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # most likely mid-insert (3 batches): new rows written, not committed
    proc.wait(30)
    seen = old.chunks()
    assert seen == old_chunks or all("revision 2" in c.text for c in seen if c.start == 0)  # never a mix
    print(f"killed {'before' if seen == old_chunks else 'after'} the commit")
    r = rag_cli(*args)
    assert r.returncode == 0, r.stderr
    new = open_milvus_index(cfg, HashingEmbedder(), 1200, 150).chunks()
    assert all("revision 2" in c.text for c in new if c.start == 0) and len({c.source for c in new}) == 600
    rows = old.client.query("rag_chunks", filter="build >= 0", output_fields=["count(*)"])[0]["count(*)"]
    assert rows == len(new)


READER = """
import json, sys
from pathlib import Path
from rag.pipeline import Pipeline
from rag.settings import Settings
s = Settings(docs_dir=sys.argv[1], index_dir=sys.argv[2], embedder="hashing", engine="echo", store="milvus", milvus_uri=sys.argv[3])
p = Pipeline.from_settings(s, build=False)
stop = Path(sys.argv[4])
while not stop.exists():
    hits = p.search("round marker alpha beta", 4)
    print(json.dumps(sorted(h.chunk.text.split()[1] for h in hits)), flush=True)
"""


def write_round(docs: Path, n: int) -> None:
    for name in ("alpha", "beta"):
        (docs / f"{name}.txt").write_text(f"Round {n} marker {name}. " + f"Filler text {name} {n}. " * 5)


def test_two_readers_while_a_third_process_updates(tmp_path, server):
    docs = tmp_path / "docs"
    docs.mkdir()
    write_round(docs, 1)
    args = ["index", "--docs", str(docs), "--index", str(tmp_path / "ix"), "--store", "milvus", "--milvus-uri", server]
    assert rag_cli(*args).returncode == 0
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(docs), str(tmp_path / "ix"), server, str(tmp_path / "stop")], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(3)
    for n in range(2, 5):
        write_round(docs, n)
        r = rag_cli(*args)
        assert r.returncode == 0, r.stderr
    time.sleep(1)
    (tmp_path / "stop").touch()
    for proc in readers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        seen = [json.loads(line) for line in out.splitlines()]
        assert len(seen) > 10
        # Both documents, from one round: never one document of round n and the other of round n-1.
        assert all(len(s) == 2 and s[0] == s[1] for s in seen), [s for s in seen if len(s) != 2 or s[0] != s[1]][:3]
        assert seen[-1] == ["4", "4"] and len({s[0] for s in seen}) >= 2  # it followed the updates


def test_store_down_is_one_line_error_not_a_hang(docs, tmp_path):
    port = free_port()  # nothing listens there
    t0 = time.time()
    r = rag_cli("search", "--docs", str(docs), "--index", str(tmp_path / "ix"), "--store", "milvus",
                "--milvus-uri", f"http://127.0.0.1:{port}", "What did the UK fund?", env={"RAG_MILVUS_TIMEOUT_S": "2"})
    assert r.returncode == 2 and time.time() - t0 < 30
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"127.0.0.1:{port}" in lines[0], r.stderr
    # A server that accepts and never answers: the connect timeout bounds the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        t0 = time.time()
        with pytest.raises(StoreError) as e:
            build(docs, config(tmp_path, uri=f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=1.0))
        assert time.time() - t0 < 15 and "\n" not in str(e.value)


def test_wrong_uri_and_corrupt_manifest(docs, tmp_path):
    r = rag_cli("index", "--docs", str(docs), "--index", str(tmp_path / "ix"), "--store", "milvus", "--milvus-uri", str(tmp_path / "x.txt"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "milvus_uri" in r.stderr, r.stderr
    cfg = config(tmp_path)
    index, _ = build(docs, cfg)
    head_key = max(r["key"] for r in index.client.query("rag_chunks_meta", filter='key like "head-%"', output_fields=["key"]))
    index.client.upsert("rag_chunks_meta", [{"key": head_key, "body": json.dumps(dict(index.head, sha256="0" * 64)), "unused": [0.0, 0.0]}])
    with pytest.raises(IndexCorruptError):
        open_milvus_index(cfg, CountingEmbedder(), 300, 50)
    embedder = CountingEmbedder()
    rebuilt, report = build(docs, cfg, embedder)
    assert "checksum" in report.rebuilt_reason and len(embedder.seen) == rebuilt.size == len(rebuilt.chunks())


def test_cli_index_says_which_keyword_search_and_other_store_rebuilds(docs, tmp_path):
    ix = tmp_path / "ix"
    r = rag_cli("index", "--docs", str(docs), "--index", str(ix))
    assert r.returncode == 0 and "index folder:" in r.stdout
    r = rag_cli("index", "--docs", str(docs), "--index", str(ix), "--store", "milvus")
    assert r.returncode == 0, r.stderr
    assert "2 added" in r.stdout  # the FAISS files in the same folder are not taken for this store's
    assert f"Milvus collection rag_chunks at {ix / 'milvus.db'}" in r.stdout and "our BM25 over the chunk texts" in r.stdout
    r = rag_cli("search", "--docs", str(docs), "--index", str(ix), "--store", "milvus", "--json", "What did the UK fund?")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["passages"][0]["source"] == UK_DOC
    r = rag_cli("ask", "--docs", str(docs), "--index", str(ix), "--store", "milvus", "--json", "What did the UK fund?")
    assert r.returncode == 0 and json.loads(r.stdout)["citations"][0]["source"] == UK_DOC


def test_lite_file_open_in_another_process_is_one_line_error(tmp_path):
    from rag.store.milvus import connect as milvus_conn

    uri = str(tmp_path / "held.db")
    hold = "import sys, time; from rag.store.milvus.connect import connect; connect(sys.argv[1]); print('open', flush=True); time.sleep(120)"
    holder = subprocess.Popen([sys.executable, "-c", hold, uri], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError, match="open in another process.*milvus-serve"):
            milvus_conn.connect(uri)
    finally:
        holder.kill()
        holder.wait()
    (tmp_path / "folder.db").mkdir()
    with pytest.raises(StoreError, match="is a folder"):
        milvus_conn.connect(str(tmp_path / "folder.db"))
    with pytest.raises(StoreError, match="at most 36"):
        milvus_conn.connect(str(tmp_path / ("x" * 40 + ".db")))


def test_a_server_without_hnsw_gets_exact_search(docs, tmp_path, server):
    # Milvus Lite on a port refuses HNSW ("local mode only support FLAT IVF_FLAT"): above
    # exact_search_max the store falls back to FLAT and says so in the manifest.
    embedder = HashingEmbedder(128)
    index, report = build(docs, config(tmp_path, uri=server), embedder, exact_max=1)
    assert report.total_chunks > 1 and index.manifest["vector_index"] == "flat"
    assert HybridRetriever(index, embedder).search("What did the UK fund?", 3)[0].chunk.source == UK_DOC
