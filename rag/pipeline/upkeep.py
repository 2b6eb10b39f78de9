"""The index kept in step with the documents folder: updates, removals, a document's text."""

from __future__ import annotations

import logging
from pathlib import Path

from ..ingest.documents import load_file
from ..errors import DocumentError, RagError
from ..answer.prompting import block_texts
from ..store.index import Index, UpdateReport, update_index

log = logging.getLogger(__name__)


class IndexUpkeep:
    """The index kept in step with the documents folder: updates, removals, a document's text.

    One part of `Pipeline` (rag/pipeline/core.py), which holds the settings, models, index and locks it uses.
    """

    def update_index(self, force: bool = False, progress=None) -> UpdateReport:
        """Sync the index with the documents folder (only new/changed documents are embedded);
        `progress(stage, done, total)` hears of each file read and chunk batch embedded."""
        with self._index_lock:
            index, report = self._update_store(force, progress)
            self.index = index  # one reference swap: readers see the old or the new index, whole
            if report.changed:
                self._prune_states(index)
        self.last_report = report
        return report

    def _prune_states(self, index: Index) -> None:
        """Saved passage states of chunks this index no longer holds are deleted (the others stay exact)."""
        from ..generation.state_store import prune_states

        folder = Path(self.settings.index_dir) / "states"
        if not folder.is_dir():  # no states kept: do not list a large (Milvus) index's chunks for nothing
            return
        removed = prune_states(folder, set(block_texts([c.text for c in index.chunks])[1]))
        if removed:
            log.info("passage states removed=%d (their chunks left the index)", removed)

    def _update_store(self, force: bool, progress=None):
        """The store the settings name: FAISS files in index_dir (default) or a Milvus collection."""
        s = self.settings
        if s.store == "milvus":
            from ..store.milvus.update import MilvusConfig, update_milvus_index

            return update_milvus_index(s.docs_dir, self.embedder, s.chunk_size, s.chunk_overlap, MilvusConfig.from_settings(s),
                                       exact_max=s.exact_search_max, max_file_mb=s.max_file_mb, force=force,
                                       progress=progress)
        if s.store != "faiss":
            raise RagError(f"unknown store {s.store!r} (faiss, milvus)")
        return update_index(s.docs_dir, s.index_dir, self.embedder, s.chunk_size, s.chunk_overlap,
                            exact_max=s.exact_search_max, max_file_mb=s.max_file_mb, force=force, progress=progress)

    def document_text(self, source: str) -> str | None:
        """The text of an indexed document (None if it is gone or changed since indexing)."""
        entry = self.index.documents.get(source)
        if entry is None:
            return None
        key = (source, entry["sha256"])
        if key not in self._doc_cache:
            path = self._doc_path(source)
            if path is None:
                return None
            try:
                doc = load_file(path, source, self.settings.max_file_mb)
            except DocumentError:
                return None
            if doc.sha256 != entry["sha256"]:
                return None
            if len(self._doc_cache) > 64:
                self._doc_cache.clear()
            self._doc_cache[key] = doc.text
        return self._doc_cache[key]

    def remove_document(self, source: str) -> UpdateReport:
        """Delete a document file from the documents folder and drop it from the index."""
        path = self._doc_path(source)
        if path is None or not path.is_file():
            raise DocumentError(f"no such document: {source}")
        path.unlink()
        return self.update_index()

    def _doc_path(self, source: str) -> Path | None:
        """The file of `source` inside the documents folder; None if the name would lead outside it."""
        docs = self.settings.docs_dir.resolve()
        path = (docs / source).resolve()
        return path if docs in path.parents else None
