"""The reader alone (`eval --oracle`, `Pipeline.ask_with_passages`) and where wrong answers are lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import UK_DOC
from rag.cli import main
from rag.errors import RagError
from rag.evaluation.losses import BUCKETS, Reading, gold_passages, loss_bucket, reading, whole_document_passage
from rag.pipeline import Pipeline
from rag.records import Answer, Chunk, Hit, Passage, Timings

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
    a = pipeline.ask_with_passages(question, [whole_document_passage(1, UK_DOC, text)])
    assert a.timings.ttft_s is not None and a.raw_answer  # the model was asked


# ---- loss buckets


def _reading(gold=True, answer=True, raw=True, correct=False) -> Reading:
    return Reading(gold_in_prompt=gold, answer_in_prompt=answer, raw_correct=raw, correct=correct)


def test_loss_bucket_puts_each_wrong_answer_in_the_first_bucket_that_applies():
    assert loss_bucket(_reading(gold=False, answer=False, raw=False)) == "not_retrieved"
    assert loss_bucket(_reading(gold=False, answer=True, raw=True)) == "not_retrieved"  # answer from another document
    assert loss_bucket(_reading(gold=True, answer=False, raw=True)) == "not_in_prompt"  # right by chance, not from the passages
    assert loss_bucket(_reading(gold=True, answer=True, raw=False)) == "model_wrong"
    assert loss_bucket(_reading(gold=True, answer=True, raw=True)) == "rejected_by_check"
    assert loss_bucket(_reading(gold=False, answer=False, raw=False, correct=True)) is None
    assert BUCKETS == ("not_retrieved", "not_in_prompt", "model_wrong", "rejected_by_check")


def _passage(n: int, source: str, text: str) -> Passage:
    return Passage(n, Hit(Chunk(f"{source}#0", source, 0, len(text), text), 1.0, n), 0, len(text), text)


def _answer(raw: str, passages, abstained: bool, asked: bool = True) -> Answer:
    timings = Timings(ttft_s=0.5, prompt_tokens=100) if asked else Timings()
    return Answer("q", "The documents do not say." if abstained else raw, abstained, (), tuple(passages), timings, raw_answer=raw)


def test_reading_judges_the_prompt_and_the_raw_reply():
    gold, other = _passage(1, "gold.txt", "The bridge opened in 1936."), _passage(2, "other.txt", "The lake is cold.")
    golds, sources = ["1936"], ("gold.txt",)
    r = reading(_answer("It opened in 1936 [1].", [other, gold], abstained=True), golds, sources, correct=False)
    assert r == Reading(gold_in_prompt=True, answer_in_prompt=True, raw_correct=True, correct=False)
    assert loss_bucket(r) == "rejected_by_check"
    r = reading(_answer("It opened in 1937 [1].", [gold], abstained=False), golds, sources, correct=False)
    assert loss_bucket(r) == "model_wrong"
    # "19" is not the whole word 1936: the same normalisation as the cited spans' support precision
    assert loss_bucket(reading(_answer("No [1].", [gold], False), ["19"], sources, correct=False)) == "not_in_prompt"
    assert loss_bucket(reading(_answer("No [1].", [other], False), golds, sources, correct=False)) == "not_retrieved"


def test_an_answer_abstained_before_the_model_had_no_prompt():
    gold = _passage(1, "gold.txt", "The bridge opened in 1936.")
    r = reading(_answer("", [gold], abstained=True, asked=False), ["1936"], ("gold.txt",), correct=False)
    assert not r.gold_in_prompt and not r.answer_in_prompt and loss_bucket(r) == "not_retrieved"


def test_gold_passages_are_the_sources_whole_in_order_and_a_missing_one_is_an_error():
    texts = {"a.txt": "Alpha text.", "b.txt": "Beta text, longer."}
    passages = gold_passages(("b.txt", "a.txt"), texts.get, lambda s: {"title": s.upper()})
    assert [(p.number, p.hit.chunk.source, p.start, p.end, p.text, p.hit.chunk.title) for p in passages] == [
        (1, "b.txt", 0, 18, "Beta text, longer.", "B.TXT"), (2, "a.txt", 0, 11, "Alpha text.", "A.TXT")]
    with pytest.raises(RagError, match="c.txt"):
        gold_passages(("a.txt", "c.txt"), texts.get)


# ---- eval, normal and --oracle, on a tiny documents folder

DOCS = {
    "alpha.txt": "The Alpha Fund was created in 2019 by the city council. It paid for twelve new libraries. "
                 "The fund was managed by Maria Lopez.",
    "beta.txt": "The Beta Bridge crosses the Green River. Construction began in 1931 and ended in 1936. "
                "The bridge is painted red.",
    "gamma.txt": "Gamma Lake is the deepest lake in the valley. Its water is cold all year. Fishing is allowed in summer.",
}
QUESTIONS = [
    {"id": "q1", "question": "Who managed the fund?", "answers": ["Maria Lopez"], "sources": ["alpha.txt"], "answerable": True},
    {"id": "q2", "question": "In what year did construction of the Beta Bridge end?", "answers": ["1936"],
     "sources": ["beta.txt"], "answerable": True},
    {"id": "q3", "question": "How deep is Gamma Lake in meters?", "answers": ["310 meters"], "sources": ["gamma.txt"], "answerable": True},
    {"id": "q4", "question": "What did the fund pay for near the Beta Bridge?", "answers": ["twelve new libraries"],
     "sources": ["beta.txt", "alpha.txt"], "answerable": True},
    {"id": "q5", "question": "Who painted the Gamma Lake boathouse?", "answers": [], "sources": [], "answerable": False},
]


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch) -> Path:
    """A three-document folder and its questions (one with two sources, one unanswerable)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    monkeypatch.setenv("RAG_EMBEDDER", "hashing")
    monkeypatch.setenv("RAG_ENGINE", "echo")
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _eval(root: Path, out: str, *flags: str) -> dict:
    code = main(["eval", "--docs", str(root / "docs"), "--index", str(root / "ix"), "--qa", str(root / "qa.jsonl"),
                 "--json", str(root / out), *flags])
    assert code == 0
    return json.loads((root / out).read_text())


def test_oracle_reads_the_gold_documents_whole_and_reports_the_reader_alone(tiny, capsys):
    result = _eval(tiny, "oracle.json", "--oracle")
    answers = {a["id"]: a for a in result["answers"]}
    assert sorted(answers) == ["q1", "q2", "q3", "q4"]  # the unanswerable question is skipped
    for q in QUESTIONS[:4]:
        assert answers[q["id"]]["prompt_passages"] == [{"source": s, "start": 0, "end": len(DOCS[s])} for s in q["sources"]]
    s = result["summary"]
    assert s["oracle"] == {"questions": 4, "skipped_unanswerable": 1} and "retrieval" not in s and s["settings"]["oracle"]
    assert s["answers"]["gold_in_prompt"] == 1.0 and s["answers"]["answer_in_prompt"] == 0.75  # q3's answer is in no document
    assert {"correct", "correct_answerable", "em", "f1", "raw_correct"} <= set(s["answers"])
    assert s["losses"]["not_retrieved"] == 0 and answers["q3"]["loss"] == "not_in_prompt"
    assert sum(s["losses"][b] for b in BUCKETS) == s["losses"]["wrong"] == sum(not a["correct"] for a in answers.values())
    out = capsys.readouterr().out
    assert "oracle      questions=4  skipped_unanswerable=1" in out and "\nlosses " in out


def test_oracle_answers_the_same_sample_and_replays_its_replies(tiny):
    normal = _eval(tiny, "normal.json", "--limit", "3", "--seed", "1")  # q2, q1 and the unanswerable q5
    flags = ("--limit", "3", "--seed", "1", "--oracle", "--reply-cache", str(tiny / "replies.jsonl"))
    first, second = _eval(tiny, "o1.json", *flags), _eval(tiny, "o2.json", *flags)
    answerable = [a["id"] for a in normal["answers"] if a["answerable"]]
    assert [a["id"] for a in first["answers"]] == answerable and len(answerable) == 2
    assert first["summary"]["oracle"] == {"questions": 2, "skipped_unanswerable": 1}
    assert not any(a["replayed"] for a in first["answers"]) and all(a["replayed"] for a in second["answers"])
    assert [a["raw_answer"] for a in first["answers"]] == [a["raw_answer"] for a in second["answers"]]


def test_a_normal_run_puts_every_wrong_answerable_answer_in_one_bucket(tiny):
    result = _eval(tiny, "normal.json")
    answers = result["answers"]
    wrong = [a for a in answers if a["answerable"] and not a["correct"]]
    assert wrong and len(wrong) < 4  # q3's answer is in no document; q1 is answered right
    assert all((a["loss"] in BUCKETS) == (a in wrong) for a in answers)
    losses = result["summary"]["losses"]
    assert losses["wrong"] == len(wrong) == sum(losses[b] for b in BUCKETS)
    assert all(losses[b] == sum(a["loss"] == b for a in wrong) for b in BUCKETS)
    answerable = [a for a in answers if a["answerable"]]
    assert result["summary"]["answers"]["answer_in_prompt"] == sum(a["answer_in_prompt"] for a in answerable) / len(answerable)
    assert all(a["raw_correct"] is None and a["loss"] is None for a in answers if not a["answerable"])
