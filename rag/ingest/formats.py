"""Text out of document files: PDF (with OCR for scanned pages), HTML, Word (.docx), slides (.pptx),
spreadsheets (.xlsx, .csv), e-books (.epub) and OpenDocument text (.odt).

Every reader returns an `Extracted`: the text that chunks and citations index into (a citation's
`start`/`end` are offsets into exactly this text), a title, and a location map: where each page,
slide, sheet, chapter or section begins in the text, so a citation can say "page 3" or "slide 2".
Headings, slide titles, sheet names and table rows become readable text: a table row is one line,
"Column: value; Column: value", prefixed with its row number in spreadsheets.

A PDF page without a text layer is read by OCR when `tesseract` and `pdftoppm` are installed (Debian:
`tesseract-ocr`, `poppler-utils`); otherwise the page is reported ("scanned, no text layer"), never
dropped silently, and a PDF with no text at all is refused with what to install.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from ..errors import DocumentError

OFFICE_SUFFIXES = (".docx", ".pptx", ".xlsx", ".csv", ".epub", ".odt")
OCR_INSTALL = "install tesseract-ocr and poppler-utils (Debian) to read it by OCR"


@dataclass(frozen=True)
class Extracted:
    text: str
    title: str = ""
    locations: tuple[tuple[int, str], ...] = ()  # (offset where it begins, "page 3"), in text order
    warnings: tuple[str, ...] = ()  # what could not be read, for the index report


@dataclass
class _Builder:
    """Text made of blocks joined by blank lines, with the offset where each location begins."""

    parts: list[str] = field(default_factory=list)
    length: int = 0
    locations: list[tuple[int, str]] = field(default_factory=list)
    _pending: str | None = None

    def mark(self, label: str) -> None:
        """The next block begins `label` (a page, a slide, a sheet)."""
        self._pending = label

    def add(self, block: str) -> None:
        block = block.strip()
        if not block:
            return
        if self.parts:
            self.parts.append("\n\n")
            self.length += 2
        if self._pending is not None:
            self.locations.append((self.length, self._pending))
            self._pending = None
        self.parts.append(block)
        self.length += len(block)

    def build(self, title: str = "", warnings: tuple[str, ...] = ()) -> Extracted:
        return Extracted("".join(self.parts), title.strip(), tuple(self.locations), warnings)


def location_at(locations, offset: int) -> str:
    """The label of the location that holds `offset` ("" when none does).

    >>> location_at([(0, "page 1"), (120, "page 2")], 130)
    'page 2'
    """
    label = ""
    for start, name in locations:
        if start > offset:
            break
        label = name
    return label


def extract(suffix: str, raw: bytes) -> Extracted:
    """The reader for a file type; a file it cannot read is a DocumentError with a one-line reason."""
    readers = {".docx": _docx, ".pptx": _pptx, ".xlsx": _xlsx, ".epub": _epub, ".odt": _odt, ".pdf": pdf_text}
    reader = readers.get(suffix)
    if reader is None:
        raise DocumentError(f"no reader for {suffix} files")
    try:
        return reader(raw)
    except DocumentError:
        raise
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError) as e:
        raise DocumentError(f"broken {suffix[1:].upper()} file: {type(e).__name__}: {str(e)[:80]}") from None
    except Exception as e:  # the libraries raise many internal types on damaged files
        raise DocumentError(f"broken {suffix[1:].upper()} file: {type(e).__name__}") from None


def table_row(cells, header=None) -> str:
    """One table row as a line: "Header: value; Header: value" (just the values without a header).

    >>> table_row(["North", "1200"], ["Region", "Sales"])
    'Region: North; Sales: 1200'
    """
    values = [_cell(c) for c in cells]
    if not any(values):
        return ""
    if header:
        named = [f"{h}: {v}" if h else v for h, v in zip(header, values) if v]
        named += [v for v in values[len(header):] if v]
        return "; ".join(named)
    return " | ".join(v for v in values if v)


def table_text(rows) -> str:
    """A document table (Word, slides, OpenDocument) as lines: its first row is the header line, each
    other row is "Header: value; ...".

    >>> table_text([["Item", "Amount"], ["Training", "31,000"]])
    'Item | Amount\\nItem: Training; Amount: 31,000'
    """
    header = rows[0] if rows else None
    return "\n".join(filter(None, [table_row(header)] + [table_row(r, header) for r in rows[1:]]))


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return re.sub(r"\s+", " ", str(value)).strip()


# --- PDF ---------------------------------------------------------------------------------------------

def pdf_text(raw: bytes) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            raise DocumentError("PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as e:
        raise DocumentError(f"broken PDF: {e}") from None
    except Exception as e:  # pypdf raises many internal types on damaged files
        raise DocumentError(f"broken PDF: {type(e).__name__}") from None
    blank = [i for i, p in enumerate(pages) if not p.strip()]
    warnings: list[str] = []
    if blank:
        if ocr_available():
            for i, text in zip(blank, _ocr_pages(raw, blank)):
                pages[i] = text
            unread = [i for i in blank if not pages[i].strip()]
            if unread:
                warnings.append(f"{_pages(unread)}: no text found by OCR")
        else:
            if len(blank) == len(pages):
                raise DocumentError(f"scanned PDF with no text layer ({len(pages)} page{'s' * (len(pages) > 1)}): "
                                    + OCR_INSTALL)
            warnings.append(f"{_pages(blank)} scanned, no text layer: {OCR_INSTALL}")
    out = _Builder()
    for i, text in enumerate(pages):
        out.mark(f"page {i + 1}")
        out.add(text)
    return out.build(warnings=tuple(warnings))


def _pages(indexes: list[int]) -> str:
    shown = ", ".join(str(i + 1) for i in indexes[:12]) + (f" and {len(indexes) - 12} more" if len(indexes) > 12 else "")
    return f"page{'s' * (len(indexes) > 1)} {shown}"


def ocr_available() -> bool:
    return shutil.which("tesseract") is not None and shutil.which("pdftoppm") is not None


def _ocr_pages(raw: bytes, indexes: list[int], dpi: int = 200) -> list[str]:
    """Each page rendered by pdftoppm and read by tesseract (English); "" for a page that fails."""
    out = []
    with tempfile.TemporaryDirectory(prefix="rag-ocr-") as tmp:
        pdf = Path(tmp) / "in.pdf"
        pdf.write_bytes(raw)
        for i in indexes:
            image = Path(tmp) / f"page-{i + 1}"
            try:
                subprocess.run(["pdftoppm", "-r", str(dpi), "-f", str(i + 1), "-l", str(i + 1), "-singlefile", "-png",
                                str(pdf), str(image)], check=True, capture_output=True, timeout=120)
                done = subprocess.run(["tesseract", str(image) + ".png", "stdout"], check=True, capture_output=True,
                                      timeout=300)
                out.append(done.stdout.decode("utf-8", "replace"))
            except (subprocess.SubprocessError, OSError):
                out.append("")
    return out


# --- HTML --------------------------------------------------------------------------------------------

def html_text(html: str) -> tuple[str, str]:
    """The visible text of an HTML page and its <title>."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    body = soup.body or soup
    text = body.get_text("\n")
    # Collapse the blank runs that markup leaves behind; offsets refer to this cleaned text.
    text = re.sub(r"[ \t\r\f\v]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return text, title


# --- Word, slides, spreadsheets ----------------------------------------------------------------------

def _docx(raw: bytes) -> Extracted:
    import docx
    from docx.table import Table

    document = docx.Document(io.BytesIO(raw))
    out = _Builder()
    title = document.core_properties.title or ""
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            rows = [[c.text for c in row.cells] for row in item.rows]
            out.add(table_text(rows))
            continue
        style = (item.style.name if item.style is not None else "") or ""
        if style.startswith("Heading") or style == "Title":
            out.mark(f"section “{_short(item.text)}”")
            title = title or item.text
        out.add(item.text)
    return out.build(title)


def _pptx(raw: bytes) -> Extracted:
    from pptx import Presentation

    deck = Presentation(io.BytesIO(raw))
    out = _Builder()
    first_title = ""
    for n, slide in enumerate(deck.slides, start=1):
        heading = slide.shapes.title.text_frame.text.strip() if slide.shapes.title is not None else ""
        first_title = first_title or heading
        out.mark(f"slide {n}" + (f" “{_short(heading)}”" if heading else ""))
        out.add(heading)
        for shape in _shapes(slide.shapes):
            if slide.shapes.title is not None and shape.shape_id == slide.shapes.title.shape_id:
                continue
            if shape.has_text_frame:
                out.add(shape.text_frame.text)
            elif getattr(shape, "has_table", False) and shape.has_table:
                rows = [[c.text for c in row.cells] for row in shape.table.rows]
                out.add(table_text(rows))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                out.add(f"Notes: {notes}")
    return out.build(deck.core_properties.title or first_title)


def _shapes(shapes):
    for shape in shapes:
        if shape.shape_type == 6:  # a group: its shapes, in order
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _xlsx(raw: bytes) -> Extracted:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    out = _Builder()
    try:
        for sheet in book.worksheets:
            out.mark(f"sheet “{sheet.title}”")
            out.add(f"Sheet: {sheet.title}")
            out.add(_rows_text(sheet.iter_rows(values_only=True)))
    finally:
        book.close()
    return out.build(book.properties.title or "")


def csv_text(text: str) -> str:
    """A CSV file's rows as lines ("Row 2: Region: North; Sales: 1200"), its first row the header."""
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    return _rows_text(csv.reader(io.StringIO(text), dialect))


def _rows_text(rows) -> str:
    lines, header = [], None
    for n, row in enumerate(rows, start=1):
        if header is None:
            if any(_cell(c) for c in row):
                header = [_cell(c) for c in row]
                lines.append(f"Columns: {table_row(header)}")
            continue
        line = table_row(row, header)
        if line:
            lines.append(f"Row {n}: {line}")
    return "\n".join(lines)


# --- E-books and OpenDocument ------------------------------------------------------------------------

def _epub(raw: bytes) -> Extracted:
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        container = ElementTree.fromstring(z.read("META-INF/container.xml"))
        opf_path = next(e.get("full-path") for e in container.iter() if e.tag.endswith("rootfile"))
        opf = ElementTree.fromstring(z.read(opf_path))
        base = opf_path.rsplit("/", 1)[0] + "/" if "/" in opf_path else ""
        items = {e.get("id"): e.get("href") for e in opf.iter() if e.tag.endswith("}item")}
        spine = [e.get("idref") for e in opf.iter() if e.tag.endswith("}itemref")]
        title = next((e.text or "" for e in opf.iter() if e.tag.endswith("}title")), "")
        from .documents import decode_text  # here: documents imports this module

        out = _Builder()
        for n, idref in enumerate(spine, start=1):
            href = items.get(idref)
            if not href:
                continue
            text, heading = html_text(decode_text(z.read(base + href))[0])
            first_line = text.split("\n", 1)[0] if text else ""
            out.mark(f"chapter {n}" + (f" “{_short(heading or first_line)}”" if (heading or first_line) else ""))
            out.add(text)
    return out.build(title)


_ODF_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_ODF_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"


def _odt(raw: bytes) -> Extracted:
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        content = ElementTree.fromstring(z.read("content.xml"))
        meta = ElementTree.fromstring(z.read("meta.xml")) if "meta.xml" in z.namelist() else None
    title = next((e.text or "" for e in meta.iter() if e.tag.endswith("}title")), "") if meta is not None else ""
    body = next((e for e in content.iter() if e.tag.endswith("}body")), content)
    out = _Builder()
    _odf_blocks(body, out)
    first = next((label for _, label in out.locations), "")
    return out.build(title or first.removeprefix("section “").removesuffix("”"))


def _odf_blocks(element, out: _Builder) -> None:
    for child in element:
        if child.tag == f"{{{_ODF_TEXT}}}h":
            text = _odf_inline(child)
            out.mark(f"section “{_short(text)}”")
            out.add(text)
        elif child.tag == f"{{{_ODF_TEXT}}}p":
            out.add(_odf_inline(child))
        elif child.tag == f"{{{_ODF_TABLE}}}table":
            rows = [[_odf_inline(cell) for cell in row if cell.tag.endswith("}table-cell")]
                    for row in child.iter(f"{{{_ODF_TABLE}}}table-row")]
            out.add(table_text(rows))
        else:
            _odf_blocks(child, out)  # sections, lists and frames hold paragraphs


def _odf_inline(element) -> str:
    parts = [element.text or ""]
    for child in element:
        if child.tag == f"{{{_ODF_TEXT}}}s":
            parts.append(" " * int(child.get(f"{{{_ODF_TEXT}}}c", "1")))
        elif child.tag == f"{{{_ODF_TEXT}}}tab":
            parts.append("\t")
        elif child.tag == f"{{{_ODF_TEXT}}}line-break":
            parts.append("\n")
        else:
            parts.append(_odf_inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _short(text: str, limit: int = 60) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
