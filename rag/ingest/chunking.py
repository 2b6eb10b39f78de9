"""Split documents into chunks that keep exact character offsets into the document text.

langchain-text-splitters decides where to cut (paragraphs, then lines, then sentences, then words);
we locate each piece in the original text so that `doc.text[chunk.start:chunk.end] == chunk.text`.

>>> from ..records import Document
>>> doc = Document(source="a.txt", text="One. Two. Three.", title="a")
>>> [c.text for c in chunk_document(doc, size=10, overlap=0)]
['One. Two.', 'Three.']
"""

from __future__ import annotations

from ..records import Chunk, Document

SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]


def make_splitter(size: int, overlap: int):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        chunk_size=size,
        chunk_overlap=overlap,
        separators=SEPARATORS,
        keep_separator="end",  # a sentence keeps its full stop
        strip_whitespace=True,
    )


def chunk_document(doc: Document, size: int, overlap: int, splitter=None) -> list[Chunk]:
    """Chunks of `doc` in order, each with exact offsets."""
    splitter = splitter or make_splitter(size, overlap)
    chunks: list[Chunk] = []
    cursor = 0
    for piece in splitter.split_text(doc.text):
        start = doc.text.find(piece, cursor)
        if start < 0:  # cannot happen with strip_whitespace splitting; guard the invariant anyway
            start = doc.text.find(piece)
        if start < 0:
            raise AssertionError(f"chunk not found in {doc.source}")
        end = start + len(piece)
        chunks.append(
            Chunk(
                id=f"{doc.source}#{len(chunks)}",
                source=doc.source,
                start=start,
                end=end,
                text=piece,
                title=doc.title,
                url=doc.url,
            )
        )
        # The next piece starts after this one's start (overlap may move it before this end).
        cursor = start + 1
    return chunks
