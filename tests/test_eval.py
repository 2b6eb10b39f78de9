import json
import subprocess
import sys

import pytest

from rag.evaluation.evaluate import Question, score_answer, summarize
from rag.evaluation.metrics import alce_correct, exact_match, percentile, precision_recall, reciprocal_rank, token_f1
from rag.records import Answer, Citation, Timings

from conftest import ROOT, UK_DOC

# The seed sample of ../shared/eval (5 answerable questions and 1 not), shipped so a clone alone passes.
SEEDS_SAMPLE = ROOT / "tests" / "data" / "eval_seeds_sample.jsonl"


def test_metrics_against_hand_computed_values():
    assert exact_match("The Denver Broncos.", ["Denver Broncos"]) == 1.0
    assert token_f1("Broncos won", ["Denver Broncos"]) == pytest.approx(0.5)
    assert token_f1("nothing", ["Denver Broncos"]) == 0.0
    assert alce_correct("They played at Levi's Stadium [1].", ["Levi's Stadium"])
    assert not alce_correct("They played in Santa Clara.", ["Levi's Stadium"])
    assert reciprocal_rank(["a", "b", "c"], {"c"}) == (3, pytest.approx(1 / 3))
    assert reciprocal_rank(["a"], {"z"}) == (None, 0.0)
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert precision_recall([True, True, False], [True, False, False]) == (0.5, 1.0)


def _answer(text, abstained=False, cite_text="", source=UK_DOC, short=""):
    cites = (Citation(1, source, 0, len(cite_text), cite_text),) if cite_text else ()
    return Answer("q", text, abstained, cites, (), Timings(total_s=2.0, ttft_s=1.0, completion_tokens=11), short_answer=short)


def test_score_answer_counts_correctness_and_good_citations():
    q = Question("1", "What did the UK fund?", ("1 million pounds",), frozenset({UK_DOC}), True)
    good = score_answer(q, _answer("A grant of 1 million pounds [1].", cite_text="a grant of 1 million pounds", short="1 million pounds"))
    assert good["correct"] and good["em"] == 1.0 and good["good_citations"] == 1 and good["tokens_per_s"] == 10.0
    wrong_source = score_answer(q, _answer("A grant of 1 million pounds [1].", cite_text="a grant of 1 million pounds", source="other.txt"))
    assert wrong_source["correct"] and wrong_source["good_citations"] == 0
    abstained = score_answer(q, _answer("The documents do not say.", abstained=True))
    assert not abstained["correct"] and abstained["f1"] == 0.0


def test_unanswerable_is_correct_only_when_abstained():
    q = Question("2", "How much did Japan give?", (), frozenset(), False)
    assert score_answer(q, _answer("The documents do not say.", abstained=True))["correct"]
    assert not score_answer(q, _answer("Japan gave 5 million [1].", cite_text="x"))["correct"]


def test_summary_abstention_precision_recall():
    records = [
        {"answerable": True, "abstained": False, "correct": True, "em": 1.0, "f1": 1.0, "words": 5, "citations": 1, "good_citations": 1,
         "citations_with_gold": 1, "model_check": 0.8, "check_s": 0.5, "retrieve_ms": 5, "ttft_s": 1, "total_s": 2, "tokens_per_s": 10, "prompt_tokens": 100},
        {"answerable": False, "abstained": True, "correct": True, "em": 0.0, "f1": 0.0, "words": 5, "citations": 0, "good_citations": 0,
         "citations_with_gold": 0, "model_check": None, "check_s": 0.0, "retrieve_ms": 5, "ttft_s": None, "total_s": 0.1, "tokens_per_s": None, "prompt_tokens": 0},
    ]
    s = summarize([{"rank": 1, "rr": 1.0}], records)
    assert s["abstention"] == {"precision": 1.0, "recall": 1.0, "abstained": 1}
    assert s["citations"] == {"precision": 1.0, "recall": 1.0, "support_precision": 1.0}
    assert s["model_check"]["checked"] == 1
    assert s["answers"]["correct"] == 1.0 and s["retrieval"]["hit@1"] == 1.0


def test_eval_command_end_to_end_with_fake_backends(tmp_path):
    out = tmp_path / "eval.json"
    env = {"RAG_EMBEDDER": "hashing", "RAG_ENGINE": "echo", "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, "-m", "rag", "eval", "--docs", str(ROOT / "seeds"), "--qa", str(SEEDS_SAMPLE),
         "--index", str(tmp_path / "ix"), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    for section in ("retrieval", "answers", "citations", "abstention", "speed"):
        assert any(line.startswith(section) for line in r.stdout.splitlines())
    data = json.loads(out.read_text())
    assert len(data["answers"]) == 6 and data["summary"]["retrieval"]["questions"] == 5
    assert {"id", "correct", "em", "f1", "words", "good_citations", "ttft_s"} <= set(data["answers"][0])
    r = subprocess.run([sys.executable, "-m", "rag", "eval", "--docs", str(ROOT / "seeds"), "--qa", str(tmp_path / "none.jsonl")],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: ")
