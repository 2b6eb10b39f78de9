"""Reading an index on Milvus: candidates for `HybridRetriever`, as the FAISS `store.Index` gives them.

A reader keeps to one committed version: it reads the `head` row, searches only rows of builds up
to that version (`build <= v`, a scalar filter on the server) and drops rows of documents that
version replaced; after the search it reads `head` again, and if a commit happened meanwhile (whose
cleanup may have deleted rows it was reading) it searches again on the new version.

Keyword search is Milvus's BM25 function ("server") or our BM25 over the chunk texts, loaded from
Milvus into this process ("client"). Either way both scores of every candidate are exact, as with
FAISS, so the fusion is the same pure function over the same numbers.

>>> bm25_tokens("The 1,936 people's grants")
'1x2cx936 peopl grant'
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading

import numpy as np

from . import connect as mc
from ...errors import IndexError_, StoreError
from ...records import Candidates, Chunk, Scope
from ...language.terms import terms
from ..vectors import HNSW_EF_SEARCH

CHUNK_FIELDS = ["build", "chunk_id", "source", "title", "url", "start", "stop", "text"]
HIT_FIELDS = CHUNK_FIELDS + ["pk"]  # a search hit's row, with its key (Lite 2.5 names the hit's own key `id`)
MAX_LIMIT = 16_384  # Milvus's largest top-k and query result
TIE_SLACK = 8  # rows fetched past n, so equal scores are cut where FAISS cuts them (lower key first)
RETRIES = 3


def row_key(build: int, chunk_id: str) -> str:
    """A row's primary key: the same chunk written by another build is another row."""
    return hashlib.sha1(f"{build}\x00{chunk_id}".encode()).hexdigest()[:32]


def _token(term: str) -> str:
    # Our terms keep inner separators ("1,936", "u.s"); analyzers split on them. Spelled out, a
    # term is one alphanumeric token on Milvus Lite's and Milvus's standard tokenizers alike.
    return re.sub(r"[^\w]", lambda m: f"x{ord(m.group()):x}x", term)


def bm25_tokens(text: str) -> str:
    """The text Milvus's BM25 function indexes: our terms (stemmed content words), one token each."""
    return " ".join(_token(t) for t in terms(text))


def _query_tokens(query: str) -> str:
    # Each query term counts once, as in rag/store/keyword.py.
    return " ".join(dict.fromkeys(_token(t) for t in terms(query)))


class View:
    """One committed version: its head, its manifest, and (client mode) our BM25 over its chunks."""

    def __init__(self, head: dict, manifest: dict):
        self.head = head
        self.manifest = manifest
        self._keyword = None
        self._lock = threading.Lock()

    @property
    def version(self) -> int:
        return self.head["version"]

    def current(self, row: dict) -> bool:
        """Whether a row belongs to this version (not an older build of a document it replaced)."""
        return self.manifest["documents"].get(row["source"], {}).get("build") == row["build"]

    def key(self, row: dict) -> tuple:
        # Sorts like the FAISS index's rows (by source, start, id), so fusion ties break alike.
        return (row["source"], row["start"], row["chunk_id"])

    def keyword(self, client, config):
        """Our BM25 over this version's chunk texts, loaded on first use (client mode)."""
        with self._lock:
            if self._keyword is None:
                self._keyword = ClientKeyword.load(client, config, self)
            return self._keyword


def open_view(client, config, missing_ok: bool = False) -> View | None:
    """The committed version, or None (if `missing_ok`) / IndexError_ when nothing was committed."""
    mc.load(client, config.uri, [config.collection, config.meta])
    head = mc.read_head(client, config.meta, config.uri)
    if head is None:
        if missing_ok:
            return None
        raise IndexError_(f"no index in Milvus collection {config.collection} at {config.uri} (run: python -m rag index --store milvus)")
    return View(head, mc.read_manifest(client, config.meta, config.uri, head))


def current_rows(client, config, view: View, fields: list[str]) -> list[dict]:
    """Every row of this version, in the FAISS index's order (a scan: for keyword loading and checks).

    A query returns at most 16,384 rows, so the scan goes by primary-key prefix (keys are hex digests,
    evenly spread), ~4,000 rows a query. (pymilvus's query iterator needs a timestamp RPC that
    Milvus Lite lacks.)"""
    digits = 0
    while 16**digits * 4000 < view.manifest.get("chunks", 0) + int(view.head.get("stale_chunks", 0)):
        digits += 1
    # (Milvus Lite 2.5 matches no row with `like "%"`: no prefix, no clause.)
    prefixes = [f' and pk like "{i:0{digits}x}%"' for i in range(16**digits)] if digits else [""]
    rows = []
    with mc.milvus_errors(config.uri, "reading every chunk"):
        for prefix in prefixes:
            found = client.query(config.collection, filter=f"build <= {view.version}{prefix}",
                                 output_fields=fields, limit=MAX_LIMIT)
            if len(found) >= MAX_LIMIT:
                raise IndexError_("the Milvus index has more rows than its manifest accounts for")
            rows.extend(r for r in found if view.current(r))
    return sorted(rows, key=view.key)


def chunk_of(row: dict) -> Chunk:
    return Chunk(id=row["chunk_id"], source=row["source"], start=row["start"], end=row["stop"], text=row["text"],
                 title=row["title"], url=row["url"] or None)


class ClientKeyword:
    """Our BM25 (rag/store/keyword.py) over every chunk of one version, keyed like the Milvus rows."""

    def __init__(self, keys: list[tuple], texts: list[str]):
        from ..keyword import BM25

        self.keys = keys
        self.rows = {k: i for i, k in enumerate(keys)}
        self.bm25 = BM25(texts)

    @classmethod
    def load(cls, client, config, view: View) -> "ClientKeyword":
        rows = current_rows(client, config, view, ["build", "chunk_id", "source", "start", "text"])
        return cls([view.key(r) for r in rows], [r["text"] for r in rows])

    def in_scope(self, scope: Scope) -> np.ndarray:
        """Whether each row's document is in `scope` (a mask in row order)."""
        return np.array([scope.allows(k[0]) for k in self.keys], dtype=bool)

    def scores_of(self, query: str, keys) -> dict[tuple, float]:
        scores = self.bm25.scores(query)
        return {k: float(scores[self.rows[k]]) if k in self.rows else 0.0 for k in keys}


class MilvusIndex:
    """A Milvus index as the retriever and the pipeline see it (`documents`, `size`, `bm25.idf_of`,
    `candidates`, `exact_scores`), following commits made by other processes."""

    def __init__(self, client, config, view: View):
        self.client = client
        self.config = config
        self._view = view

    @property
    def manifest(self) -> dict:
        return self._view.manifest

    @property
    def head(self) -> dict:
        return self._view.head

    @property
    def documents(self) -> dict[str, dict]:
        return self._view.manifest["documents"]

    @property
    def size(self) -> int:
        return int(self._view.manifest.get("chunks", 0))

    @property
    def keyword_mode(self) -> str:
        return self._view.manifest["keyword"]

    def chunks(self) -> list[Chunk]:
        """Every chunk of the committed version, ordered as the FAISS index orders them."""
        return [chunk_of(r) for r in current_rows(self.client, self.config, self.refresh(), CHUNK_FIELDS)]

    def describe(self) -> str:
        how = ("Milvus's BM25 function" if self.keyword_mode == "server"
               else "our BM25 over the chunk texts (loaded from Milvus into each app server)")
        return f"index: Milvus collection {self.config.collection} at {self.config.uri}; keyword search: {how}"

    @property
    def bm25(self):
        """What answering needs of BM25: `idf_of(word)`."""
        view = self._view
        if self.keyword_mode == "client":
            return view.keyword(self.client, self.config).bm25
        return ServerIdf(self.client, self.config, view)

    def refresh(self) -> View:
        """Follow the head: a new commit (by any process) is loaded once."""
        head = mc.read_head(self.client, self.config.meta, self.config.uri)
        if head is None:
            raise IndexError_(f"the index in Milvus collection {self.config.collection} at {self.config.uri} was removed")
        if head["version"] != self._view.version:
            self._view = View(head, mc.read_manifest(self.client, self.config.meta, self.config.uri, head))
        elif head != self._view.head:
            self._view.head = head  # same version, cleanup finished (stale_chunks went to 0)
        return self._view

    def candidates(self, query: str, qvec: np.ndarray, n: int, scope: Scope | None = None) -> Candidates:
        """The n best chunks by cosine and by BM25, with both exact scores of each, from one version
        (of the `scope`'s documents only, when one is given: a filter on the `source` field)."""
        for _ in range(RETRIES):
            view = self.refresh()
            found = _Search(self, view, query, qvec, scope).candidates(n)
            if mc.read_head(self.client, self.config.meta, self.config.uri) == view.head:
                return found
        return found  # commits faster than searches: the last answer still comes from one version

    def exact_scores(self, query: str, qvec: np.ndarray, keys: list) -> dict:
        """Cosine, BM25 score and chunk of chunks that were not candidates of `query`."""
        return _Search(self, self._view, query, qvec).exact(keys)


class _Search:
    """One query against one version."""

    def __init__(self, index: MilvusIndex, view: View, query: str, qvec: np.ndarray, scope: Scope | None = None):
        self.client, self.config, self.view = index.client, index.config, view
        self.query, self.qvec = query, qvec
        self.scope = scope if scope is not None and not scope.everything else None
        self.filter = f"build <= {view.version}" + _scope_filter(self.scope)
        # Rows a commit replaced but has not deleted yet can fill the top of a search: ask for more.
        self.extra = int(view.head.get("stale_chunks", 0))

    def candidates(self, n: int) -> Candidates:
        dense_rows = self._search([self.qvec.tolist()], "vector", {"metric_type": "IP", "params": {"ef": max(HNSW_EF_SEARCH, n)}}, n)
        dense = {self.view.key(r): r["score"] for r in dense_rows}
        chunks = {self.view.key(r): chunk_of(r) for r in dense_rows}
        fetched: dict[tuple, tuple[float, Chunk]] = {}
        keyword, keyword_ids = self._keyword_top(n, chunks, fetched)
        missing_kw = [k for k in dense if k not in keyword]
        keyword.update(self._bm25_of(missing_kw))
        missing_dense = [k for k in keyword_ids if k not in dense and k not in fetched]
        fetched.update(self._rows_of(missing_dense))  # one read of the keyword-only chunks, vectors included
        dense.update({k: fetched[k][0] for k in keyword_ids if k not in dense and k in fetched})
        return Candidates(self.qvec, dense, keyword, [self.view.key(r) for r in dense_rows], keyword_ids, chunks)

    def exact(self, keys: list) -> dict:
        rows = self._rows_of(keys)
        bm25 = self._bm25_of(keys)
        return {k: (cos, bm25.get(k, 0.0), chunk) for k, (cos, chunk) in rows.items()}

    def _keyword_top(self, n: int, chunks: dict, fetched: dict) -> tuple[dict, list]:
        """Keyword candidates (best first) and their BM25 scores; their chunks are added to `chunks`, and
        the cosine and chunk of those read by key here to `fetched`."""
        if self.view.manifest["keyword"] == "client":
            kw = self.view.keyword(self.client, self.config)
            scores = kw.bm25.scores(self.query)
            if self.scope is not None:  # keys start with the source
                scores = np.where(kw.in_scope(self.scope), scores, 0.0)
            top = [kw.keys[i] for i in kw.bm25.top(scores, n)]
            scores_of = {k: float(scores[kw.rows[k]]) for k in top}
            fetched.update(self._rows_of([k for k in top if k not in chunks]))
            chunks.update({k: chunk for k, (_, chunk) in fetched.items()})
            return scores_of, top
        tokens = _query_tokens(self.query)
        rows = self._search([tokens], "sparse", {"metric_type": "BM25"}, n) if tokens else []
        chunks.update({self.view.key(r): chunk_of(r) for r in rows if self.view.key(r) not in chunks})
        return {self.view.key(r): r["score"] for r in rows}, [self.view.key(r) for r in rows]

    def _search(self, data: list, field: str, params: dict, n: int, filter_: str | None = None) -> list[dict]:
        """Rows of this version, best first, with `score` (BM25 comes back negated from Milvus Lite)."""
        limit = min(n + self.extra + TIE_SLACK, MAX_LIMIT)
        with mc.milvus_errors(self.config.uri, "searching"):
            result = self.client.search(self.config.collection, data=data, anns_field=field, limit=limit,
                                        filter=filter_ or self.filter, output_fields=HIT_FIELDS, search_params=params)
        rows = [dict(h["entity"], score=float(h["distance"])) for h in result[0]]
        if field == "sparse":
            for r in rows:
                r["score"] = abs(r["score"])
        rows = sorted((r for r in rows if self.view.current(r)), key=lambda r: (-r["score"], self.view.key(r)))
        return rows[:n]

    def _pks(self, keys: list) -> dict[str, tuple]:
        docs = self.view.manifest["documents"]
        return {row_key(docs[k[0]]["build"], k[2]): k for k in keys if k[0] in docs}

    def _rows_of(self, keys: list) -> dict[tuple, tuple[float, Chunk]]:
        """Cosine with the query and chunk of each key: a search restricted to their primary keys (on
        Milvus Lite 2.5, 2 ms for 30 rows, where reading them by key takes 12 ms); rows a search
        leaves out (an approximate index may) are read by key with their vectors."""
        pks = self._pks(keys)
        if not pks:
            return {}
        expr = f"pk in [{', '.join(json.dumps(p) for p in pks)}]"
        with mc.milvus_errors(self.config.uri, "reading chunks"):
            hits = self.client.search(self.config.collection, data=[self.qvec.tolist()], anns_field="vector", limit=len(pks),
                                      filter=expr, output_fields=HIT_FIELDS,
                                      search_params={"metric_type": "IP", "params": {"ef": max(HNSW_EF_SEARCH, len(pks))}})[0]
            found = {h["entity"]["pk"]: (float(h["distance"]), chunk_of(h["entity"])) for h in hits}
            missing = [p for p in pks if p not in found]
            rows = self.client.get(self.config.collection, ids=missing, output_fields=HIT_FIELDS + ["vector"]) if missing else []
        found.update({r["pk"]: (float(np.asarray(r["vector"], dtype=np.float32) @ self.qvec), chunk_of(r)) for r in rows})
        return {pks[p]: v for p, v in found.items() if p in pks}

    def _bm25_of(self, keys: list) -> dict[tuple, float]:
        """Exact BM25 scores of chunks (0 where no query term occurs)."""
        if not keys:
            return {}
        if self.view.manifest["keyword"] == "client":
            return self.view.keyword(self.client, self.config).scores_of(self.query, keys)
        tokens = _query_tokens(self.query)
        pks = self._pks(keys)
        if not tokens or not pks:
            return {k: 0.0 for k in keys}
        expr = f"pk in [{', '.join(repr(p) for p in pks)}]"
        rows = self._search([tokens], "sparse", {"metric_type": "BM25"}, len(pks), filter_=expr)
        found = {self.view.key(r): r["score"] for r in rows}
        return {k: found.get(k, 0.0) for k in keys}


def _scope_filter(scope: Scope | None) -> str:
    """The Milvus filter clause for a scope ("" for every document); names are JSON-quoted strings."""
    if scope is None:
        return ""
    out = ""
    if scope.only:
        out += f" and source in [{', '.join(json.dumps(s) for s in sorted(scope.only))}]"
    if scope.exclude:
        out += f" and source not in [{', '.join(json.dumps(s) for s in sorted(scope.exclude))}]"
    return out


class ServerIdf:
    """IDF of a word from Milvus (how many chunks match its term), for the answer check and passage
    selection in server mode, where no BM25 lives in this process. Cached per version."""

    _cache: dict[tuple[str, str, int, str], float] = {}
    _no_text_match: set[str] = set()  # stores that refused TEXT_MATCH

    def __init__(self, client, config, view: View):
        self.client, self.config, self.view = client, config, view

    def idf_of(self, word: str) -> float:
        from ...language.terms import stem

        token = _token(stem(word))
        key = (self.config.uri, self.config.collection, self.view.version, token)
        if key not in self._cache:
            n = self.view.manifest.get("chunks", 0)
            df = None if self.config.uri in self._no_text_match else self._count(f"TEXT_MATCH(terms, '{token}')")
            if df is None:  # Milvus Lite 2.5 has no TEXT_MATCH: the term among the space-separated terms
                self._no_text_match.add(self.config.uri)
                df = self._count(f'(terms == "{token}" or terms like "{token} %" or terms like "% {token}" or terms like "% {token} %")')
            self._cache[key] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return self._cache[key]

    def _count(self, match: str) -> int | None:
        """Chunks of this version whose terms match; None if the server refuses the expression."""
        try:
            with mc.quiet_pymilvus(), mc.milvus_errors(self.config.uri, "counting a term"):
                rows = self.client.query(self.config.collection, output_fields=["count(*)"],
                                         filter=f"build <= {self.view.version} and {match}")
        except StoreError as e:
            if "invalid expr" in str(e).lower() and "TEXT_MATCH" in match:
                return None
            raise
        return int(rows[0]["count(*)"]) if rows else 0
