"""Work you can watch: `rag index` draws progress bars on a terminal and nothing elsewhere; the index
update reports each file read and each batch of chunks embedded, on FAISS and on Milvus."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from rag.cli import terminal_progress
from rag.store.embedding import HashingEmbedder
from rag.store.index import EMBED_BATCH, update_index

from conftest import ROOT


def _more_docs(docs, n=8, words=400):
    text = (docs / next(p.name for p in docs.iterdir() if p.suffix == ".txt")).read_text().split()
    for i in range(n):
        (docs / f"more{i}.txt").write_text(" ".join(text[(i * 37) % len(text):] + text)[: words * 7])


def _recorder():
    calls = []
    return calls, lambda stage, done, total: calls.append((stage, done, total))


def _check(calls, files: int, chunks: int):
    seen = [c for c in calls if c[0] == "files"]
    assert seen[0] == ("files", 0, files) and seen[-1] == ("files", files, files)
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)
    embedded = [c for c in calls if c[0] == "chunks"]
    assert embedded[-1] == ("chunks", chunks, chunks)
    assert len(embedded) >= 2 if chunks > EMBED_BATCH else True


def test_faiss_update_reports_files_and_chunks(docs, tmp_path):
    _more_docs(docs, 30)
    calls, progress = _recorder()
    index, report = update_index(docs, tmp_path / "ix", HashingEmbedder(64), 300, 50, progress=progress)
    n_files = len(report.added)
    assert report.chunks_embedded > EMBED_BATCH  # several batches
    _check(calls, n_files, report.chunks_embedded)
    plain, _ = update_index(docs, tmp_path / "ix2", HashingEmbedder(64), 300, 50)  # the same vectors, batched or not
    assert (plain.vectors == index.vectors).all()


def test_milvus_update_reports_too(docs, tmp_path):
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    from test_store_milvus import config

    from rag.store.milvus.update import update_milvus_index

    _more_docs(docs, 4)
    calls, progress = _recorder()
    _, report = update_milvus_index(docs, HashingEmbedder(64), 300, 50, config(tmp_path), progress=progress)
    _check(calls, len(report.added), report.chunks_embedded)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_on_a_terminal_and_silence_elsewhere():
    screen = _Terminal()
    with terminal_progress(screen) as progress:
        for done in range(0, 201, 50):
            progress("chunks", done, 200)
    drawn = screen.getvalue()
    assert "embedding" in drawn and "200/200" in drawn and "chunks" in drawn
    with terminal_progress(io.StringIO()) as progress:
        assert progress is None


def test_cli_index_in_a_pipe_prints_no_bar(docs, tmp_path):
    env = dict(os.environ, RAG_EMBEDDER="hashing", RAG_ENGINE="echo")
    out = subprocess.run([sys.executable, "-m", "rag", "index", "--docs", str(docs), "--index", str(tmp_path / "ix")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "index:" in out.stdout and "%|" not in out.stderr + out.stdout


def test_page_upload_reports_progress(fake_settings, tmp_path):
    import ui
    from rag.pipeline import Pipeline

    pipeline = Pipeline.from_settings(fake_settings)
    upload = tmp_path / "upload.md"
    upload.write_text("# Notes\n\n" + "The new shelter opened in March with forty beds. " * 80)
    seen = []
    msg, *_ = ui._add_uploads(pipeline, [str(upload)], lambda value, desc="", unit="": seen.append((value, desc)))
    assert "added upload.md" in msg
    assert seen and seen[-1][1] == "Embedding chunks" and seen[-1][0][0] == seen[-1][0][1]
    assert any(desc == "Reading files" for _, desc in seen)
