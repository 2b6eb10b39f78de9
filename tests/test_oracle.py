"""The reader alone: `Pipeline.ask_with_passages` answers from given passages, not retrieved ones."""

from __future__ import annotations

from conftest import UK_DOC
from rag.pipeline import Pipeline
from rag.records import Chunk, Hit, Passage

# ---- Pipeline.ask_with_passages


def test_ask_with_passages_reads_the_given_document_whole_with_exact_citations(fake_settings):
    pipeline = Pipeline.from_settings(fake_settings)
    text = pipeline.document_text(UK_DOC)
    given = Passage(7, Hit(Chunk("x", UK_DOC, 0, len(text), text), 1.0, 1), 0, len(text), text)
    a = pipeline.ask_with_passages("What did the UK fund?", [given], qid="q1")
    assert [(p.number, p.start, p.end, p.text) for p in a.passages] == [(1, 0, len(text), text)]  # renumbered [1]
    assert a.id == "q1" and not a.abstained and a.citations
    assert all(c.source == UK_DOC and text[c.start:c.end] == c.text for c in a.citations)


def test_ask_with_passages_skips_the_retrieval_floor(fake_settings):
    pipeline = Pipeline.from_settings(fake_settings)
    question = "Zebra quantum xylophone?"  # shares nothing with the seeds: retrieval abstains before the model
    assert pipeline.ask(question).timings.ttft_s is None
    text = pipeline.document_text(UK_DOC)
    a = pipeline.ask_with_passages(question, [Passage(1, Hit(Chunk("x", UK_DOC, 0, len(text), text), 1.0, 1), 0, len(text), text)])
    assert a.timings.ttft_s is not None and a.raw_answer  # the model was asked
