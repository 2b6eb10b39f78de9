"""Read a folder of documents into `Document` records (the readers of each format: `formats.py`).

Files that cannot be read are skipped and reported, never fatal: one bad upload must not stop the
rest of the folder from being indexed.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.txt").write_text("Title line\\nBody.")
>>> docs, skipped = load_folder(d)
>>> docs[0].title, skipped
('Title line', [])
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DocumentError
from .formats import OFFICE_SUFFIXES, csv_text, extract, html_text
from ..records import Document

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".txt", ".md", ".html", ".htm", ".pdf") + OFFICE_SUFFIXES
# Bumped when parsing changes, so that documents are re-parsed although their bytes did not change.
# 3: the source URL is read from a trailing "<word>: <url>" line in any language, not from any "Source:" line.
# 4: PDF pages are joined as blocks with a location map (page N), scanned pages OCRed or reported.
PARSER_VERSION = 4
_PREFERRED = ("cp1252", "latin_1", "iso8859_15")
_CHAOS_SLACK = 0.1
# A line saying where the text comes from: one word in any language ("Source", "Nguồn", "Quelle", "出典";
# a letter, then anything but spaces and colons, so combining marks count), a colon (French "Source :",
# full-width "："), a URL (bare or <autolink>), nothing else.
_SOURCE_LINE = re.compile(r"[^\W\d_][^\s:：]*\s*[:：]\s*<?(https?://[^\s<>]+)>?")
# Only the last few non-empty lines count: a URL in the body is a reference, not the document's source.
_SOURCE_LINES = 3


@dataclass(frozen=True)
class Skipped:
    """A file that was not indexed, and why (one line for the user)."""

    source: str
    reason: str


def list_files(folder: Path) -> list[Path]:
    """Supported files under `folder`, recursively, sorted; hidden files and folders are ignored."""
    if not folder.is_dir():
        raise DocumentError(f"documents folder not found: {folder}")
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES:
            files.append(path)
    return files


def source_name(folder: Path, path: Path) -> str:
    """The file name relative to the documents folder, with forward slashes."""
    return path.relative_to(folder).as_posix()


def load_folder(folder: Path, max_file_mb: float = 60.0) -> tuple[list[Document], list[Skipped]]:
    """Read every supported file; return the documents and the files skipped with a reason."""
    docs: list[Document] = []
    skipped: list[Skipped] = []
    for path in list_files(folder):
        name = source_name(folder, path)
        try:
            docs.append(load_file(path, name, max_file_mb=max_file_mb))
        except DocumentError as e:
            log.warning("skipped source=%s reason=%s", name, e)
            skipped.append(Skipped(name, str(e)))
    return docs, skipped


def load_file(path: Path, source: str, max_file_mb: float = 60.0) -> Document:
    """Parse one file into a Document; raise DocumentError with a one-line reason if unreadable."""
    try:
        size = path.stat().st_size
        if size > max_file_mb * 1024 * 1024:
            raise DocumentError(f"file is {size / 1e6:.0f} MB, over the {max_file_mb:g} MB limit")
        raw = path.read_bytes()
    except OSError as e:
        raise DocumentError(f"cannot read file: {e.strerror or e}") from None
    suffix = path.suffix.lower()
    locations: tuple = ()
    warnings: tuple = ()
    if suffix in (".html", ".htm"):
        html, encoding = decode_text(raw)
        text, title = html_text(html)
    elif suffix == ".csv":
        decoded, encoding = decode_text(raw)
        text, title = csv_text(decoded), path.stem  # its first line is the header, not a title
    elif suffix in (".txt", ".md") or suffix not in SUPPORTED_SUFFIXES:
        text, encoding = decode_text(raw)
        title = ""
    else:
        extracted = extract(suffix, raw)
        text, title, locations, warnings, encoding = (extracted.text, extracted.title, extracted.locations,
                                                      extracted.warnings, suffix[1:])
    if not text.strip():
        raise DocumentError("no text in file (empty, or a scanned PDF without a text layer)")
    return Document(
        source=source,
        text=text,
        title=title or _first_line_title(text, fallback=path.stem),
        url=_source_url(text),
        sha256=hashlib.sha256(raw).hexdigest() + f":p{PARSER_VERSION}",
        encoding=encoding,
        locations=tuple(locations),
        warnings=tuple(warnings),
    )


def decode_text(raw: bytes) -> tuple[str, str]:
    """UTF-8 if it decodes, else the detected encoding; binary data is refused."""
    if b"\x00" in raw[:8192]:
        raise DocumentError("looks like a binary file, not text")
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    results = list(from_bytes(raw))
    if not results:
        raise DocumentError("not text in any encoding we can detect")
    best = results[0]
    # Short texts fit several code pages almost equally well: one letter apart in "chaos" (e.g. 0.055),
    # the detector may rank cp1257 first and turn "crème" into "crčme". Among such near ties that read
    # at least as coherently, prefer the common Western ones.
    near = [m for m in results if m.chaos <= best.chaos + _CHAOS_SLACK and m.coherence >= best.coherence]
    best = next((m for enc in _PREFERRED for m in near if m.encoding == enc), best)
    text = str(best)
    # cp1250 and cp1252 share most letters: name the common code page when it reads the bytes the same.
    encoding = next((enc for enc in _PREFERRED if _decodes_to(raw, enc, text)), best.encoding)
    log.info("decoded encoding=%s", encoding)
    return text, encoding


def _decodes_to(raw: bytes, encoding: str, text: str) -> bool:
    try:
        return raw.decode(encoding) == text
    except UnicodeDecodeError:
        return False


def _first_line_title(text: str, fallback: str, limit: int = 90) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return fallback


def _source_url(text: str) -> str | None:
    """The URL of a "Source: <url>"-style line among the last few non-empty lines (the lowest one wins).

    >>> _source_url("Body with https://a.example/x in it.\\nQuelle: https://b.example/y\\nComment (0)")
    'https://b.example/y'
    """
    tail = [line.strip() for line in text.splitlines() if line.strip()][-_SOURCE_LINES:]
    for line in reversed(tail):
        match = _SOURCE_LINE.fullmatch(line)
        if match:
            return match.group(1)
    return None
