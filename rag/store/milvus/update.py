"""The index on Milvus: build and update incrementally, commit atomically, and update safely.

The same contract as the FAISS index of rag/store/index.py, with the data in a Milvus collection that
several app servers share. Each chunk row carries the `build` (manifest version) that wrote it.
An update: deletes what an interrupted update left (rows of builds above the committed one);
inserts the rows of new and changed documents under build v+1, invisible to readers, who search
`build <= their version`; writes manifest v+1 and adds a head row (the commit point); then
deletes the rows it superseded. Documents are replaced whole: a reader sees version v or v+1, never
a mix (see `MilvusIndex` for how a reader keeps to one version).

The manifest lives in Milvus beside the rows it describes, so an app pointed at another store (or
another collection) finds that store's own manifest, or none, and builds: it never mixes.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import connect as mc
from ..embedding import Embedder
from ...errors import IndexError_, RagError, StoreError
from .search import MilvusIndex, bm25_tokens, open_view, row_key
from ...records import Chunk
from ..index import LOCK_TIMEOUT_S, UpdateReport, scan_documents, settings_signature, update_lock
from ..vectors import HNSW_EF_CONSTRUCTION, HNSW_M

log = logging.getLogger(__name__)

INSERT_BATCH = 512  # rows embedded and sent per request (a 384-d row is ~1.5 KB of vector + its text)


@dataclass(frozen=True)
class MilvusConfig:
    """Where the index lives on Milvus, from the settings (`Pipeline.from_settings` builds it)."""

    uri: str
    token: str = ""
    collection: str = "rag_chunks"
    timeout: float = 10.0
    bm25: str = "auto"  # auto | server | client
    lock_dir: Path = Path("index")  # the local update lock (UI and CLI on one machine take turns)

    @classmethod
    def from_settings(cls, s) -> "MilvusConfig":
        if s.milvus_bm25 not in ("auto", "server", "client"):
            raise RagError(f"milvus_bm25 must be auto, server or client, got {s.milvus_bm25!r}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", s.milvus_collection):
            raise RagError(f"milvus_collection {s.milvus_collection!r}: letters, digits and _ only, not starting with a digit")
        return cls(mc.resolve_uri(s.milvus_uri, s.index_dir), s.milvus_token, s.milvus_collection,
                   s.milvus_timeout_s, s.milvus_bm25, s.index_dir)

    @property
    def meta(self) -> str:
        return f"{self.collection}_meta"


def milvus_signature(embedder: Embedder, chunk_size: int, chunk_overlap: int, keyword: str) -> dict:
    """What must match for a Milvus index to be reused: the FAISS signature plus the keyword search."""
    return dict(settings_signature(embedder, chunk_size, chunk_overlap), store="milvus", keyword=keyword)


def open_milvus_index(config: MilvusConfig, embedder: Embedder, chunk_size: int, chunk_overlap: int) -> MilvusIndex:
    """Load a committed index for reading (`Pipeline.from_settings(build=False)`); raise if none or other settings."""
    client = mc.connect(config.uri, config.token, config.timeout)
    keyword = _keyword_mode(client, config)
    index = MilvusIndex(client, config, open_view(client, config))
    _check_signature(index.manifest, milvus_signature(embedder, chunk_size, chunk_overlap, keyword))
    return index


def update_milvus_index(
    docs_dir: Path, embedder: Embedder, chunk_size: int, chunk_overlap: int, config: MilvusConfig,
    exact_max: int = 50_000, max_file_mb: float = 60.0, force: bool = False, lock_timeout: float = LOCK_TIMEOUT_S,
    progress=None,
) -> tuple[MilvusIndex, UpdateReport]:
    """Bring the Milvus index in line with the documents folder; embed only new or changed documents
    (`progress` as for `store.update_index`)."""
    with update_lock(config.lock_dir, lock_timeout):
        client = mc.connect(config.uri, config.token, config.timeout)
        return _update_locked(client, docs_dir, embedder, chunk_size, chunk_overlap, config, exact_max, max_file_mb, force,
                              progress)


def _update_locked(client, docs_dir, embedder, chunk_size, chunk_overlap, config, exact_max, max_file_mb, force,
                   progress=None):
    t0 = time.perf_counter()
    report = UpdateReport()
    signature = milvus_signature(embedder, chunk_size, chunk_overlap, _keyword_mode(client, config))
    old = _load_for_update(client, config, signature, force, report)
    old_docs = old.manifest["documents"] if old else {}
    documents, new_chunks = scan_documents(docs_dir, old_docs, chunk_size, chunk_overlap, max_file_mb, report, progress)
    if old is not None and not report.changed:
        report.total_chunks = old.manifest.get("chunks", 0)
        report.seconds = time.perf_counter() - t0
        return MilvusIndex(client, config, old), report
    version = (old.head["version"] if old else 0) + 1  # a rebuild starts from dropped collections
    total = sum(d["chunks"] for d in documents.values())
    vector_index = old.manifest.get("vector_index", "flat") if old else \
        _create_chunks(client, config, embedder.dim, signature["keyword"] == "server", total > exact_max)
    for chunk in new_chunks:
        documents[chunk.source]["build"] = version
    _insert(client, config, embedder, new_chunks, version, documents, signature["keyword"] == "server", progress)
    if progress is not None:
        progress("chunks", len(new_chunks), len(new_chunks))
    with mc.milvus_errors(config.uri, "flushing"):
        # Sealed segments get their vector index; unflushed rows are searched by brute force (Milvus
        # Lite: 230 ms against 28 ms a search at 5,000 chunks, measured).
        client.flush(config.collection)
    superseded = {n: old_docs[n] for n in report.updated + report.removed if n in old_docs}
    manifest = dict(signature, dim=embedder.dim, vector_index=vector_index,
                    uri=config.uri, collection=config.collection, chunks=total, documents=documents,
                    superseded={n: [d["build"], d["chunks"]] for n, d in superseded.items()},
                    created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    _commit(client, config, manifest, version)
    report.chunks_embedded = len(new_chunks)
    report.total_chunks = total
    report.seconds = time.perf_counter() - t0
    log.info("milvus index updated %s", report.summary())
    return MilvusIndex(client, config, open_view(client, config)), report


def _keyword_mode(client, config: MilvusConfig) -> str:
    """Which BM25 answers keyword search: Milvus's own ("server") or ours over the chunk texts ("client")."""
    if config.bm25 != "auto":
        return config.bm25
    return "server" if mc.server_has_bm25(client, config.uri) else "client"


def _check_signature(manifest: dict, expected: dict) -> None:
    from ...errors import IndexMismatchError

    for key, value in expected.items():
        if manifest.get(key) != value:
            raise IndexMismatchError(f"index was built with {key}={manifest.get(key)!r}, settings say {value!r}")


def _load_for_update(client, config: MilvusConfig, signature: dict, force: bool, report: UpdateReport):
    """The committed view, cleaned of what interrupted updates left; None (collections dropped) to rebuild."""
    try:
        view = None if force else open_view(client, config, missing_ok=True)
        if view is not None:
            _check_signature(view.manifest, signature)
            _clean(client, config, view)
            return view
        report.rebuilt_reason = "forced" if force else ""
    except StoreError:
        raise
    except IndexError_ as e:
        report.rebuilt_reason = str(e)
        log.warning("rebuilding milvus index reason=%s", e)
    _drop(client, config)
    return None


def _drop(client, config: MilvusConfig) -> None:
    with mc.milvus_errors(config.uri, "dropping the old index"):
        for name in (config.collection, config.meta):
            if client.has_collection(name):
                client.drop_collection(name)


def _clean(client, config: MilvusConfig, view) -> None:
    """Delete rows no committed manifest keeps: an interrupted update's new rows (build above the
    head) and rows the last commit superseded but did not get to delete."""
    version = view.head["version"]
    with mc.milvus_errors(config.uri, "removing rows of an interrupted update"):
        client.delete(config.collection, filter=f"build > {version}")
    stale = view.manifest.get("superseded", {})
    if view.head.get("stale_chunks"):
        _delete_rows(client, config, stale)
        view.head = dict(view.head, stale_chunks=0)
        mc.commit_head(client, config.meta, config.uri, view.head)
    mc.delete_manifests_except(client, config.meta, config.uri, version)


def _commit(client, config: MilvusConfig, manifest: dict, version: int) -> None:
    """Manifest rows, then the head (the commit), then the superseded rows go."""
    head = mc.write_manifest(client, config.meta, config.uri, manifest, version)
    stale = manifest["superseded"]
    mc.commit_head(client, config.meta, config.uri, dict(head, stale_chunks=sum(c for _, c in stale.values())))
    _delete_rows(client, config, stale)
    mc.commit_head(client, config.meta, config.uri, dict(head, stale_chunks=0))
    mc.delete_manifests_except(client, config.meta, config.uri, version)


def _delete_rows(client, config: MilvusConfig, stale: dict[str, list[int]]) -> None:
    """Delete the rows of these documents' old builds; chunk ids are `<source>#<n>`, so keys are known."""
    keys = [row_key(build, f"{name}#{i}") for name, (build, count) in stale.items() for i in range(count)]
    with mc.milvus_errors(config.uri, "deleting superseded rows"):
        for i in range(0, len(keys), 4096):
            client.delete(config.collection, ids=keys[i : i + 4096])


def _create_chunks(client, config: MilvusConfig, dim: int, server_bm25: bool, hnsw: bool) -> str:
    """The chunk collection, its manifest collection beside it; returns the vector index built (`flat` or
    `hnsw`). HNSW above `exact_search_max` chunks where the server has it; Milvus Lite 2.5 has only
    FLAT and IVF_FLAT, and its FLAT (exact) search takes ~17 ms at 100,000 chunks here."""
    from pymilvus import DataType, Function, FunctionType

    _drop(client, config)
    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("build", DataType.INT64)
    for name, length in (("chunk_id", 8192), ("source", 8192), ("title", 8192), ("url", 8192), ("doc_sha256", 256)):
        schema.add_field(name, DataType.VARCHAR, max_length=length)
    schema.add_field("start", DataType.INT64)
    schema.add_field("stop", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=mc.TEXT_BYTES)
    schema.add_field("terms", DataType.VARCHAR, max_length=mc.TEXT_BYTES, enable_analyzer=server_bm25,
                     enable_match=server_bm25, analyzer_params={"tokenizer": "standard"} if server_bm25 else None)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    index = client.prepare_index_params()
    if server_bm25:
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                     input_field_names=["terms"], output_field_names=["sparse"]))
        # Our BM25's parameters (rag/store/keyword.py), so both keyword searches score alike.
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params={"bm25_k1": 1.2, "bm25_b": 0.75})
    with mc.milvus_errors(config.uri, f"creating collection {config.collection}"):
        client.create_collection(config.collection, schema=schema, consistency_level="Strong")
        kind = _vector_index(client, config, hnsw)
        if server_bm25:
            client.create_index(config.collection, index)
        client.load_collection(config.collection)
    mc.create_meta(client, config.meta, config.uri)
    return kind


def _vector_index(client, config: MilvusConfig, hnsw: bool) -> str:
    """Index the vectors: HNSW if asked for and the server has it, else FLAT."""
    from pymilvus.exceptions import MilvusException

    if hnsw and not mc.is_lite(config.uri):
        index = client.prepare_index_params()
        index.add_index("vector", index_type="HNSW", metric_type="IP", params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION})
        try:
            with mc.quiet_pymilvus():
                client.create_index(config.collection, index)
            return "hnsw"
        except MilvusException as e:  # Milvus Lite served on a port: "local mode only support FLAT IVF_FLAT"
            if "index type" not in str(e).lower():
                raise
            log.info("no HNSW on this Milvus (%s): exact search", str(e).splitlines()[0])
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="IP")
    client.create_index(config.collection, index)
    return "flat"


def _insert(client, config, embedder: Embedder, chunks: list[Chunk], build: int, documents: dict, server_bm25: bool,
            progress=None) -> None:
    """Embed and insert in batches: memory stays flat however many chunks change."""
    for i in range(0, len(chunks), INSERT_BATCH):
        if progress is not None:
            progress("chunks", i, len(chunks))
        batch = chunks[i : i + INSERT_BATCH]
        vectors = embedder.embed([c.text for c in batch])
        rows = [_row(c, v, build, documents[c.source]["sha256"], server_bm25) for c, v in zip(batch, vectors)]
        with mc.milvus_errors(config.uri, "inserting chunks"):
            client.insert(config.collection, rows)


def _row(chunk: Chunk, vector: np.ndarray, build: int, sha256: str, server_bm25: bool) -> dict:
    if len(chunk.text.encode("utf-8")) > mc.TEXT_BYTES:
        raise StoreError(f"a chunk of {chunk.source} is over Milvus's {mc.TEXT_BYTES}-byte text limit: lower chunk_size")
    return {
        "pk": row_key(build, chunk.id), "build": build, "chunk_id": chunk.id, "source": chunk.source,
        "title": _clip(chunk.title), "url": _clip(chunk.url or ""), "doc_sha256": sha256,
        "start": chunk.start, "stop": chunk.end, "text": chunk.text,
        "terms": bm25_tokens(chunk.text) if server_bm25 else "", "vector": vector.tolist(),
    }


def _clip(text: str, limit: int = 8000) -> str:
    """Titles and URLs are for display; a pathological one is cut rather than failing the build."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")

