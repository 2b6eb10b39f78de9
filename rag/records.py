"""Typed records passed between pipeline stages.

Every stage takes and returns these frozen dataclasses, never loose dicts, so a
reader can follow the data from a file on disk to a cited answer.

>>> chunk = Chunk(id="a.txt#0", source="a.txt", start=0, end=5, text="Hello")
>>> chunk.source
'a.txt'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Document:
    """One source file as text. Offsets of chunks and citations index into `text`."""

    source: str  # file name relative to the documents folder, with forward slashes
    text: str
    title: str
    url: str | None = None
    sha256: str = ""  # of the raw file bytes
    encoding: str = "utf-8"
    locations: tuple[tuple[int, str], ...] = ()  # where each page, slide, sheet or section begins in `text`
    warnings: tuple[str, ...] = ()  # parts of the file that could not be read (scanned pages without OCR)


@dataclass(frozen=True)
class Chunk:
    """A contiguous span of a document: `document.text[start:end] == text`."""

    id: str
    source: str
    start: int
    end: int
    text: str
    title: str = ""
    url: str | None = None


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the scores that produced it."""

    chunk: Chunk
    score: float
    rank: int
    dense_score: float | None = None
    keyword_score: float | None = None


@dataclass(frozen=True)
class Passage:
    """The span of a hit that is shown to the model as passage number `number`."""

    number: int
    hit: Hit
    start: int  # offsets into the document text, inside the hit's chunk
    end: int
    text: str
    location: str = ""  # where in the file it begins ("page 3", "slide 2"), from the document's location map


@dataclass(frozen=True)
class Citation:
    """A `[n]` marker in the answer, resolved to an exact span of a source file."""

    marker: int
    source: str
    start: int
    end: int
    text: str
    title: str = ""
    url: str | None = None
    supported: bool = True  # whether the cited span supports the sentence that cites it
    location: str = ""  # where in the file the span is ("page 3", "slide 2 “Budget”"); "" for plain text


@dataclass(frozen=True)
class Unsupported:
    """A sentence of the model's reply that no passage supports: removed from the answer, with why."""

    claim: str
    reason: str


@dataclass(frozen=True)
class Scope:
    """The documents a search may return: only those in `only` (every one when it is empty), and none in
    `exclude`. Applied inside the index search, before ranking, so a restricted question still gets its
    full share of passages.

    >>> Scope(only=frozenset({"a.txt"})).allows("b.txt"), Scope().everything
    (False, True)
    """

    only: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()

    def allows(self, source: str) -> bool:
        return (not self.only or source in self.only) and source not in self.exclude

    @property
    def everything(self) -> bool:
        return not self.only and not self.exclude


@dataclass(frozen=True)
class Candidates:
    """One query's candidates from an index: both rankings, and both exact scores of every candidate.

    Keys identify chunks and sort like the FAISS index's rows (by source, then position), so fusion
    breaks ties the same way on every store.
    """

    qvec: Any  # the query vector (numpy array)
    dense: dict[Any, float]  # key -> cosine
    keyword: dict[Any, float]  # key -> BM25 score
    dense_ids: list[Any]  # best first
    keyword_ids: list[Any]
    chunks: dict[Any, Chunk]


@dataclass(frozen=True)
class Timings:
    retrieve_ms: float = 0.0
    ttft_s: float | None = None
    total_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    check_s: float = 0.0  # checking the reply after it is generated: the rules, and the model check when on
    check_ms: dict | None = None  # that time by part: rules, model_check, attach, memory, embeddings, ...
    # With a second, wider reading (setting `reread_tokens`): when it began, in seconds after the question.
    # ttft_s stays the first reading's (the first token shown); the token counts and check are the second's.
    reread_s: float | None = None

    @property
    def tokens_per_s(self) -> float | None:
        """Generation speed after the first token: the check's time is not the model's.

        >>> Timings(ttft_s=1.0, total_s=3.5, completion_tokens=21, check_s=0.5).tokens_per_s
        10.0
        """
        if self.ttft_s is None or self.completion_tokens <= 1 or self.reread_s is not None:
            return None  # two readings: the interval after the first token is not one generation
        gen_s = self.total_s - self.ttft_s - self.check_s
        return (self.completion_tokens - 1) / gen_s if gen_s > 0 else None


@dataclass(frozen=True)
class Answer:
    """The result of one question: text, checked citations, passages and timings."""

    question: str
    answer: str
    abstained: bool
    citations: tuple[Citation, ...]
    passages: tuple[Passage, ...]
    timings: Timings
    short_answer: str = ""
    search_query: str = ""  # the standalone query used for retrieval (differs for follow-ups)
    abstain_reason: str = ""
    id: str | None = None
    raw_answer: str = ""  # what the model wrote, before citation checking
    unsupported: tuple[Unsupported, ...] = ()  # sentences removed because no passage supports them
    dropped_markers: tuple[int, ...] = ()  # markers that named no given passage
    model_check: float | None = None  # the model's P(Yes) that its reply is stated in the passages
    quoted: str | None = None  # the sentence the reply quoted first (setting `quote_first`); None otherwise
    # The calibrated answer decision (rag/answer/calibration.py): its signals, P(the answer is right), and what
    # the rules alone (the vetoes) would have done with the same reply.
    signals: dict[str, float] | None = None
    confidence: float | None = None
    veto_reason: str = ""  # the vetoes' reason to abstain ("" when they keep the answer)
    veto_answer: str = ""  # the answer the vetoes keep (the same text as `answer` when they agree)
    attached_answer: str = ""  # the answer the calibrated decision weighs: every claim that can be attached
    check_state: str = ""  # the model check's hidden states, packed (setting `record_states`; for a probe study)
    readings: int = 1  # 2 when the first reply was refused and the question was read again with wider evidence
    first_reason: str = ""  # then: why the first reading abstained

    def to_json(self) -> dict[str, Any]:
        """The JSON object of `python -m rag ask --json` and the UI's `/ask` endpoint."""
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out.update(
            question=self.question,
            answer=self.answer,
            short_answer=self.short_answer,
            abstained=self.abstained,
            abstain_reason=self.abstain_reason,
            search_query=self.search_query,
            citations=[asdict(c) for c in self.citations],
            unsupported=[asdict(u) for u in self.unsupported],
            model_check=_round(self.model_check),
            confidence=_round(self.confidence),
            signals={k: _round(v) for k, v in (self.signals or {}).items()},
            passages=[passage_json(p) for p in self.passages],
            timings=asdict(self.timings),
            readings=self.readings,
        )
        if self.readings > 1:
            out["first_reason"] = self.first_reason
        return out


def passage_json(p: Passage) -> dict[str, Any]:
    """A passage as `{rank, source, start, end, text, score, ...}`."""
    return {
        "rank": p.number,
        "source": p.hit.chunk.source,
        "title": p.hit.chunk.title,
        "url": p.hit.chunk.url,
        "start": p.start,
        "end": p.end,
        "text": p.text,
        "location": p.location,
        "score": round(p.hit.score, 6),
        "dense_score": _round(p.hit.dense_score),
        "keyword_score": _round(p.hit.keyword_score),
        "chunk": {"id": p.hit.chunk.id, "start": p.hit.chunk.start, "end": p.hit.chunk.end},
    }


def hit_json(h: Hit) -> dict[str, Any]:
    """A search hit as `{rank, source, start, end, text, score, ...}` (the whole chunk)."""
    return {
        "rank": h.rank,
        "source": h.chunk.source,
        "title": h.chunk.title,
        "url": h.chunk.url,
        "start": h.chunk.start,
        "end": h.chunk.end,
        "text": h.chunk.text,
        "score": round(h.score, 6),
        "dense_score": _round(h.dense_score),
        "keyword_score": _round(h.keyword_score),
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)
