"""Office files, e-books, spreadsheets and scanned PDFs: each read from a file the test builds, with
its location map, and cited with exact offsets through the whole pipeline."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from rag.ingest import formats
from rag.ingest.documents import load_file, load_folder
from rag.ingest.formats import location_at

from test_documents_chunking import _tiny_pdf


def _docx(path: Path) -> None:
    import docx

    d = docx.Document()
    d.core_properties.title = "Grant report"
    d.add_heading("Funding", level=1)
    d.add_paragraph("The UK funded 1 million pounds for victim support.")
    d.add_heading("Results by region", level=1)
    t = d.add_table(rows=3, cols=2)
    for row, (a, b) in zip(t.rows, [("Region", "People trained"), ("North", "1,200"), ("South", "736")]):
        row.cells[0].text, row.cells[1].text = a, b
    d.add_paragraph("Training continued in 2024.")
    d.save(path)


def _pptx(path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    s1 = deck.slides.add_slide(deck.slide_layouts[1])
    s1.shapes.title.text = "Mekong cooperation"
    s1.placeholders[1].text = "Six countries signed the plan in Hanoi."
    s1.notes_slide.notes_text_frame.text = "Mention the signing ceremony."
    s2 = deck.slides.add_slide(deck.slide_layouts[5])
    s2.shapes.title.text = "Budget"
    table = s2.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for (r, c), v in {(0, 0): "Item", (0, 1): "Amount", (1, 0): "Training", (1, 1): "£31,000"}.items():
        table.cell(r, c).text = v
    deck.save(path)


def _xlsx(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Budget"
    for row in [("Region", "Sales"), ("North", 1200), (None, None), ("South", 736.0)]:
        sheet.append(row)
    other = book.create_sheet("Staff")
    other.append(("Name", "Role"))
    other.append(("Lan", "Coordinator"))
    book.save(path)


def _epub(path: Path) -> None:
    chapter = ('<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>{t}</title>'
               '</head><body><h1>{t}</h1><p>{p}</p></body></html>')
    opf = ('<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
           '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>River Book</dc:title></metadata>'
           '<manifest><item id="c2" href="text/two.xhtml" media-type="application/xhtml+xml"/>'
           '<item id="c1" href="text/one.xhtml" media-type="application/xhtml+xml"/></manifest>'
           '<spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>')
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml", '<?xml version="1.0"?><container xmlns="urn:oasis:names:tc:opendocument:'
                   'xmlns:container" version="1.0"><rootfiles><rootfile full-path="OEBPS/content.opf" '
                   'media-type="application/oebps-package+xml"/></rootfiles></container>')
        z.writestr("OEBPS/content.opf", opf)
        z.writestr("OEBPS/text/one.xhtml", chapter.format(t="The Source", p="The river rises in the mountains."))
        z.writestr("OEBPS/text/two.xhtml", chapter.format(t="The Delta", p="It reaches the sea after 4,350 km."))


def _odt(path: Path) -> None:
    ns = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"')
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ns}><office:body><office:text>'
               '<text:h text:outline-level="1">Minutes</text:h>'
               '<text:p>The board met on<text:s/> 3 May<text:s text:c="2"/>and approved the plan.</text:p>'
               '<table:table><table:table-row><table:table-cell><text:p>Vote</text:p></table:table-cell>'
               '<table:table-cell><text:p>Count</text:p></table:table-cell></table:table-row>'
               '<table:table-row><table:table-cell><text:p>Yes</text:p></table:table-cell>'
               '<table:table-cell><text:p>7</text:p></table:table-cell></table:table-row></table:table>'
               '</office:text></office:body></office:document-content>')
    meta = ('<?xml version="1.0"?><office:document-meta xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><office:meta><dc:title>Board minutes</dc:title></office:meta>'
            '</office:document-meta>')
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        z.writestr("content.xml", content)
        z.writestr("meta.xml", meta)


def _image_pdf(text: str) -> bytes:
    """A one-page PDF that is only a picture of `text` (no text layer), as a scanner makes."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (1700, 500), "white")
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 64)
    except OSError:
        font = ImageFont.load_default(size=64)
    ImageDraw.Draw(image).text((60, 180), text, fill="black", font=font)
    out = io.BytesIO()
    image.save(out, format="PDF", resolution=200)
    return out.getvalue()


def _joined_pdf(*pdfs: bytes) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for pdf in pdfs:
        for page in PdfReader(io.BytesIO(pdf)).pages:
            writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


BUILDERS = {".docx": _docx, ".pptx": _pptx, ".xlsx": _xlsx, ".epub": _epub, ".odt": _odt}


def test_docx_headings_tables_and_sections(tmp_path):
    _docx(tmp_path / "r.docx")
    doc = load_file(tmp_path / "r.docx", "r.docx")
    assert doc.title == "Grant report"
    assert "The UK funded 1 million pounds for victim support." in doc.text
    assert "Region: North; People trained: 1,200" in doc.text and "Region: South; People trained: 736" in doc.text
    at = doc.text.index("Region: North")
    assert location_at(doc.locations, at) == "section “Results by region”"
    assert location_at(doc.locations, doc.text.index("1 million")) == "section “Funding”"


def test_pptx_slides_titles_tables_and_notes(tmp_path):
    _pptx(tmp_path / "d.pptx")
    doc = load_file(tmp_path / "d.pptx", "d.pptx")
    assert doc.title == "Mekong cooperation"
    for part in ("Six countries signed the plan in Hanoi.", "Notes: Mention the signing ceremony.",
                 "Item: Training; Amount: £31,000"):
        assert part in doc.text
    assert location_at(doc.locations, doc.text.index("Six countries")) == "slide 1 “Mekong cooperation”"
    assert location_at(doc.locations, doc.text.index("£31,000")) == "slide 2 “Budget”"


def test_spreadsheets_rows_become_lines(tmp_path):
    _xlsx(tmp_path / "b.xlsx")
    doc = load_file(tmp_path / "b.xlsx", "b.xlsx")
    assert "Row 2: Region: North; Sales: 1200" in doc.text and "Row 4: Region: South; Sales: 736" in doc.text
    assert "Row 3" not in doc.text  # an empty row is not a line
    assert location_at(doc.locations, doc.text.index("Coordinator")) == "sheet “Staff”"
    (tmp_path / "c.csv").write_text("name;amount\nTraining;31000\nShelters;12500\n", encoding="utf-8")
    csv_doc = load_file(tmp_path / "c.csv", "c.csv")
    assert "Row 3: name: Shelters; amount: 12500" in csv_doc.text


def test_epub_chapters_in_spine_order(tmp_path):
    _epub(tmp_path / "b.epub")
    doc = load_file(tmp_path / "b.epub", "b.epub")
    assert doc.title == "River Book"
    assert doc.text.index("rises in the mountains") < doc.text.index("4,350 km")  # the spine's order, not the manifest's
    assert location_at(doc.locations, doc.text.index("4,350 km")) == "chapter 2 “The Delta”"


def test_odt_paragraphs_spaces_and_tables(tmp_path):
    _odt(tmp_path / "m.odt")
    doc = load_file(tmp_path / "m.odt", "m.odt")
    assert doc.title == "Board minutes"
    assert "The board met on  3 May  and approved the plan." in doc.text  # text:s counts kept
    assert "Vote: Yes; Count: 7" in doc.text
    assert location_at(doc.locations, doc.text.index("Vote: Yes")) == "section “Minutes”"


def test_pdf_pages_are_located(tmp_path):
    (tmp_path / "p.pdf").write_bytes(_joined_pdf(_tiny_pdf("First page words."), _tiny_pdf("The grant was 31 pounds.")))
    doc = load_file(tmp_path / "p.pdf", "p.pdf")
    assert location_at(doc.locations, doc.text.index("31 pounds")) == "page 2"
    assert location_at(doc.locations, doc.text.index("First")) == "page 1"


def test_scanned_pdf_without_ocr_is_reported_not_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "ocr_available", lambda: False)
    (tmp_path / "scan.pdf").write_bytes(_image_pdf("Scanned words"))
    (tmp_path / "mixed.pdf").write_bytes(_joined_pdf(_tiny_pdf("A text page."), _image_pdf("Scanned words")))
    docs, skipped = load_folder(tmp_path)
    assert [s.source for s in skipped] == ["scan.pdf"]
    assert "scanned PDF with no text layer" in skipped[0].reason and "tesseract-ocr" in skipped[0].reason
    (mixed,) = docs
    assert mixed.warnings == ("page 2 scanned, no text layer: " + formats.OCR_INSTALL,)


@pytest.mark.skipif(not formats.ocr_available(), reason="needs tesseract and pdftoppm (tesseract-ocr, poppler-utils)")
def test_scanned_pages_are_read_by_ocr(tmp_path):
    (tmp_path / "mixed.pdf").write_bytes(_joined_pdf(_tiny_pdf("A text page."), _image_pdf("Forty rivers crossed")))
    doc = load_file(tmp_path / "mixed.pdf", "mixed.pdf")
    assert "Forty rivers crossed" in doc.text and not doc.warnings
    assert location_at(doc.locations, doc.text.index("Forty")) == "page 2"


@pytest.mark.parametrize("suffix", sorted(BUILDERS))
def test_broken_files_are_skipped_with_a_reason(tmp_path, suffix):
    (tmp_path / f"bad{suffix}").write_bytes(b"PK\x03\x04 not really a zip file at all")
    docs, skipped = load_folder(tmp_path)
    assert not docs and len(skipped) == 1 and "broken" in skipped[0].reason


def test_citations_of_office_files_have_exact_offsets_and_locations(fake_settings, tmp_path):
    from rag.pipeline import Pipeline

    docs = tmp_path / "office"
    docs.mkdir()
    _docx(docs / "report.docx")
    _pptx(docs / "deck.pptx")
    pipeline = Pipeline.from_settings(fake_settings.replace(docs_dir=docs, index_dir=tmp_path / "office-index"))
    assert pipeline.index.documents["deck.pptx"]["locations"][0] == [0, "slide 1 “Mekong cooperation”"]
    answer = pipeline.ask("How much was the training budget amount?", only=["deck.pptx"])
    assert not answer.abstained, answer.abstain_reason
    c = answer.citations[0]
    text = pipeline.document_text("deck.pptx")
    assert text[c.start:c.end] == c.text
    assert c.location.startswith("slide ")
    assert answer.passages[0].location.startswith("slide ")


REAL = Path(__file__).resolve().parent / "data" / "formats"  # files made by the real applications (SOURCES.md)
REAL_QUESTIONS = [  # (file, a question it answers, words the cited span holds, where it is)
    ("textract-paragraphs_and_tables.docx", "What is in row 2, column 3?", "Column", ""),
    ("textract-raw_text.pptx", "Why was this package written?", "wrote this package", "slide 1"),
    ("textract-raw_text.xlsx", "What does the AVERAGEIF function return?", "AVERAGEIF", "sheet “Sheet1”"),
    ("textract-raw_text.csv", "What was the most recent action on 600 N MICHIGAN AVE?", "600 N MICHIGAN AVE", ""),
    ("textract-raw_text.epub", "Who starred in a pilot that became nothing?", "She starred", "chapter 2"),
    ("textract-raw_text.odt", "Which sample file has tabs and multiple spaces?", "OppenOffice Writer file", ""),
]


@pytest.mark.parametrize("name, question, words, where", REAL_QUESTIONS, ids=[q[0] for q in REAL_QUESTIONS])
def test_real_world_files_are_read_and_cited_exactly(fake_settings, tmp_path, name, question, words, where):
    import shutil

    from rag.pipeline import Pipeline

    docs = tmp_path / "real"
    docs.mkdir()
    shutil.copy(REAL / name, docs / name)
    pipeline = Pipeline.from_settings(fake_settings.replace(docs_dir=docs, index_dir=tmp_path / "real-index"))
    assert pipeline.last_report is None or not pipeline.last_report.skipped
    text = pipeline.document_text(name)
    for chunk in pipeline.index.chunks:
        assert text[chunk.start:chunk.end] == chunk.text
    answer = pipeline.ask(question)
    assert not answer.abstained, answer.abstain_reason
    c = answer.citations[0]
    assert c.source == name and text[c.start:c.end] == c.text
    assert words in c.text
    assert c.location.startswith(where)
