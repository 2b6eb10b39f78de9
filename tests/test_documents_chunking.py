import unicodedata
from pathlib import Path

import pytest

from rag.ingest.chunking import chunk_document
from rag.ingest.documents import load_file, load_folder
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


@pytest.mark.parametrize("line", [
    "Source: https://example.org/en/story-1",
    "Nguồn: https://example.org/en/story-1",
    unicodedata.normalize("NFD", "Nguồn: https://example.org/en/story-1"),  # ồ as o + two combining marks
    "स्रोत: https://example.org/en/story-1",  # Hindi: the virama is a combining mark, not a letter
    "出典：https://example.org/en/story-1",  # full-width colon
    "Source: <https://example.org/en/story-1>",  # Markdown autolink
    "Source : https://example.org/en/story-1",  # French spacing
    "Source\u202f: https://example.org/en/story-1",  # French narrow no-break space
    "Quelle: https://example.org/en/story-1",
    "出典: https://example.org/en/story-1",
    "  URL:https://example.org/en/story-1  ",
])
def test_a_trailing_source_line_in_any_language_gives_the_url(tmp_path: Path, line: str):
    body = "A headline\n\nThe ministry opened a new office.\nIt will hire 40 people.\n\n"
    (tmp_path / "a.txt").write_text(body + line + "\n\nComment (0)\n\n", encoding="utf-8")
    assert load_file(tmp_path / "a.txt", "a.txt").url == "https://example.org/en/story-1"


@pytest.mark.parametrize("text", [
    # A URL in the middle of the text, even on a "Source:" line, is not the document's source.
    "A headline\nSource: https://example.org/mid\nThe ministry opened an office.\nIt hired people.\nIt grew.\nThe end.\n",
    "A headline\nSee https://example.org/report for the report.\nMore text.\n",
    "A headline\nRead more at: https://example.org/x\n",  # more than one word before the colon
    "A headline\nThe last line mentions https://example.org/x in a sentence.\n",
])
def test_a_url_that_is_not_a_trailing_source_line_is_not_the_source(tmp_path: Path, text: str):
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    assert load_file(tmp_path / "a.txt", "a.txt").url is None


HTML_PAGE = """<!doctype html><html><head><title>Grant &amp; plan</title><style>p {color: red}</style></head>
<body><nav><a href="/">Home</a> | <a href="/news">News</a></nav>
<h1>The UK  grant</h1>
<p>On March 31 the UK &amp; Vietnam signed a <b>Joint Action Plan</b>.&nbsp;It runs to 2025.</p>


<div><p>The project trained <em>1,936</em> people
in   four provinces.</p><ul><li>Police</li><li>Border guards</li></ul></div>
<script>var tracking = "not text";</script>
<p>Caf\u00e9 cr\u00e8me \u2013 \u201cquoted\u201d text, then a long sentence that goes on and on so that the splitter has to cut it somewhere in the middle of the paragraph.</p>
<footer>Source: https://example.org/uk-grant</footer></body></html>"""


def _pdf_pages(pages: list[list[str]]) -> bytes:
    """A valid PDF with one page per list of lines (Helvetica, 14 pt leading), xref offsets computed."""
    n = len(pages)
    font = 3 + 2 * n
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(n)), n)]
    for i, lines in enumerate(pages):
        body = " 0 -14 Td ".join(f"({line})Tj" for line in lines)
        stream = f"BT /F1 12 Tf 72 720 Td {body} ET".encode("latin-1")
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (4 + 2 * i, font))
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


PDF_PAGES = [
    ["Vietnam and the UK signed a Joint Action Plan on March 31.", "The plan covers prevention, protection and prosecution.",
     "", "A grant of 1 million pounds came from the Modern Slavery Prevention Fund."],
    ["The project trained 1,936 people in four provinces.", "Police, border guards and social workers took part.",
     "Hanoi hosted the sixth ministerial meeting in November."],
    ["Source: https://example.org/uk-grant"],
]


def _check_offsets(docs_dir: Path, name: str, size: int, overlap: int) -> None:
    """Every chunk, from the splitter and from the saved index, is the document text at its offsets."""
    from rag.store.embedding import HashingEmbedder
    from rag.store.index import update_index

    doc = load_file(docs_dir / name, name)
    chunks = chunk_document(doc, size, overlap)
    assert len(chunks) >= 2
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text and c.source == name
    covered = {i for c in chunks for i in range(c.start, c.end)}
    assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace())
    index, _ = update_index(docs_dir, docs_dir.parent / "ix", HashingEmbedder(64), size, overlap)
    saved = [c for c in index.chunks if c.source == name]
    assert saved and all(doc.text[c.start : c.end] == c.text for c in saved)


@pytest.mark.parametrize("size,overlap", [(120, 20), (150, 0), (60, 10)])
def test_html_chunk_offsets_reproduce_the_extracted_text(tmp_path: Path, size, overlap):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "page.html").write_text(HTML_PAGE, encoding="utf-8")
    doc = load_file(docs / "page.html", "page.html")
    assert "1,936" in doc.text and "tracking" not in doc.text and "color: red" not in doc.text
    assert "UK & Vietnam" in doc.text and doc.title == "Grant & plan" and doc.url == "https://example.org/uk-grant"
    _check_offsets(docs, "page.html", size, overlap)


@pytest.mark.parametrize("size,overlap", [(120, 20), (150, 0), (60, 10)])
def test_pdf_chunk_offsets_reproduce_the_extracted_text(tmp_path: Path, size, overlap):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.pdf").write_bytes(_pdf_pages(PDF_PAGES))
    doc = load_file(docs / "report.pdf", "report.pdf")
    assert all(line in doc.text for page in PDF_PAGES for line in page)  # every page, in order
    assert doc.text.index("March 31") < doc.text.index("1,936") < doc.text.index("Source:")
    assert doc.url == "https://example.org/uk-grant"
    _check_offsets(docs, "report.pdf", size, overlap)
