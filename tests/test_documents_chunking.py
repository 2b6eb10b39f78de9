from pathlib import Path

import pytest

from rag.chunking import chunk_document
from rag.documents import load_file, load_folder
from rag.errors import DocumentError

from conftest import MEKONG_DOC, SEEDS, UK_DOC


@pytest.mark.parametrize("size,overlap", [(800, 120), (300, 50), (120, 0), (1000, 200)])
def test_chunk_offsets_reproduce_the_source(size, overlap):
    docs, skipped = load_folder(SEEDS)
    assert not skipped and len(docs) == 2
    for doc in docs:
        raw = (SEEDS / doc.source).read_text(encoding="utf-8")
        assert doc.text == raw  # plain text: the document text is the file text
        chunks = chunk_document(doc, size, overlap)
        assert chunks
        for c in chunks:
            assert raw[c.start : c.end] == c.text
            assert len(c.text) <= size
        # Every non-space character of the file is inside some chunk.
        covered = set()
        for c in chunks:
            covered.update(range(c.start, c.end))
        assert all(i in covered for i, ch in enumerate(raw) if not ch.isspace())


def test_title_and_source_url():
    docs, _ = load_folder(SEEDS)
    by_name = {d.source: d for d in docs}
    assert by_name[MEKONG_DOC].url == "https://www.vietnamplus.vn/hop-tac-toan-dien-ve-phong-chong-buon-nguoi-trong-khu-vuc-tieu-vung-song-mekong-post1078022.vnp"
    assert by_name[UK_DOC].url is None
    assert by_name[UK_DOC].title.startswith("On March 31 in the UK")


def test_html_and_markdown(tmp_path: Path):
    (tmp_path / "page.html").write_text(
        "<html><head><title>Fund news</title><script>var x=1;</script></head>"
        "<body><h1>Grant</h1><p>The UK gave 1 million pounds.</p></body></html>", encoding="utf-8")
    (tmp_path / "notes.md").write_text("# Notes\n\nSome *markdown* text.\n", encoding="utf-8")
    docs, skipped = load_folder(tmp_path)
    by_name = {d.source: d for d in docs}
    assert not skipped
    html = by_name["page.html"]
    assert html.title == "Fund news" and "1 million pounds" in html.text and "var x" not in html.text
    assert by_name["notes.md"].title == "Notes"


def test_pdf_text_is_extracted(tmp_path: Path):
    pdf = _tiny_pdf("The grant was 1 million pounds.")
    (tmp_path / "a.pdf").write_bytes(pdf)
    docs, skipped = load_folder(tmp_path)
    assert not skipped
    assert "1 million pounds" in docs[0].text


def test_unreadable_files_are_skipped_with_a_reason(tmp_path: Path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.txt").write_bytes(b"\x00\x01\x02PNG" * 100)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (tmp_path / "latin1.txt").write_bytes("Café crème à Hanoï, façade.".encode("cp1252"))
    (tmp_path / "good.txt").write_text("A readable file.")
    docs, skipped = load_folder(tmp_path)
    reasons = {s.source: s.reason for s in skipped}
    assert set(reasons) == {"empty.txt", "binary.txt", "broken.pdf"}
    assert "binary" in reasons["binary.txt"] and "no text" in reasons["empty.txt"]
    by_name = {d.source: d for d in docs}
    assert by_name["latin1.txt"].text == "Café crème à Hanoï, façade."
    assert by_name["latin1.txt"].encoding != "utf-8"


def test_load_file_raises_document_error(tmp_path: Path):
    with pytest.raises(DocumentError):
        load_file(tmp_path / "missing.txt", "missing.txt")


def _tiny_pdf(text: str) -> bytes:
    """A minimal valid one-page PDF with `text`, built by hand (xref offsets computed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
