"""The calibrated answer decision: the calibrator's fit and file, its thresholds, the signals, `rag calibrate`."""

from __future__ import annotations

import json
import math
import random

import pytest

from rag.answer.calibration import fit, load_calibrator, read, save
from rag.errors import ModelError
from rag.pipeline import Pipeline
from rag.answer.risk import aurc, coverage_at, risk_coverage, threshold_for, upper_bound
from rag.answer.signals import memory_signals, reply_signals, veto_signals
from rag.generation.echo import EchoGenerator

from .conftest import ROOT, UK_DOC


def _synthetic(n=600, seed=1):
    """Rows whose label follows 3*a + 1*b (c is noise): a fit must order the weights a > b > c."""
    rng = random.Random(seed)
    rows, labels = [], []
    for _ in range(n):
        a, b, c = rng.gauss(0, 1), rng.gauss(0, 1), rng.gauss(0, 1)
        p = 1 / (1 + math.exp(-(3 * a + 1 * b)))
        rows.append({"a": a, "b": b, "c": c})
        labels.append(rng.random() < p)
    return rows, labels


def test_fit_recovers_the_known_ordering_of_synthetic_signals():
    rows, labels = _synthetic()
    c = fit(rows, labels, ("a", "b", "c"), l2=1.0)
    w = dict(zip(c.names, c.weights))
    assert w["a"] > w["b"] > abs(w["c"])
    assert w["a"] / w["b"] == pytest.approx(3.0, rel=0.35)
    # a missing signal takes its training mean: it moves nothing
    assert c.probability({"a": 1.0, "b": 0.0}) == pytest.approx(c.probability({"a": 1.0, "b": 0.0, "c": c.mean[2]}))


def test_calibrator_file_round_trips_and_a_changed_file_is_refused(tmp_path):
    rows, labels = _synthetic(200)
    c = fit(rows, labels, ("a", "b", "c"))
    path = tmp_path / "cal.json"
    sha = save(c, path)
    back = read(path)
    assert back.weights == pytest.approx(c.weights) and read(path, sha).names == c.names
    with pytest.raises(ModelError, match="does not match"):
        read(path, "0" * 64)  # the packaged file's pinned hash
    data = json.loads(path.read_text())
    data["weights"][0] += 0.5
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="changed after it was written"):
        read(path)
    path.write_text("{not json")
    with pytest.raises(ModelError, match="cannot read calibrator"):
        read(path)


def test_packaged_calibrator_loads_and_matches_its_pinned_hash():
    c = load_calibrator("packaged")
    assert c is not None, "rag/data/calibrator.json is missing"
    from rag.evaluation.calibrate import SIGNALS

    assert c.names == SIGNALS and len(c.heldout) > 100
    t = c.threshold(0.3)  # the default max_risk
    assert 0.0 < t < 1.0 and c.threshold(0.4) < t
    assert c.fitted_on["models"] == {"engine": "llama_cpp", "generator": "packaged:qwen2.5-coder-1.5b-instruct",
                                     "embedder": "packaged:all-MiniLM-L6-v2"}


def test_a_calibrator_fitted_for_other_models_leaves_the_decision_to_the_vetoes(fake_settings, caplog):
    p = Pipeline.from_settings(fake_settings.replace(decision="calibrated", signals=True))  # the packaged one: fitted for the real models
    with caplog.at_level("WARNING"):
        a = p.ask("What did the UK fund?")
    assert a.confidence is None and a.signals and "answer rules decide as vetoes" in caplog.text
    assert a.answer == a.veto_answer


def test_with_the_vetoes_deciding_an_answer_still_carries_its_confidence(fake_settings, tmp_path):
    rows, labels = _synthetic(100)
    from rag.answer.calibration import Calibrator

    path = tmp_path / "cal.json"
    c = fit([{"p_yes": r["a"]} for r in rows], labels, ("p_yes",))
    from dataclasses import replace as dc_replace

    models = {"engine": "echo", "generator": fake_settings.generator, "embedder": "hashing"}
    save(dc_replace(c, heldout=tuple((0.9, True) for _ in range(50)), fitted_on={"models": models}), path)
    a = Pipeline.from_settings(fake_settings.replace(calibrator=str(path))).ask("What did the UK fund?")
    assert isinstance(c, Calibrator) and a.confidence is not None and a.answer == a.veto_answer


def test_threshold_keeps_the_upper_bound_of_risk_under_max_risk():
    rng = random.Random(3)
    rows = [(p, rng.random() < p) for p in (rng.random() for _ in range(2000))]
    t = threshold_for(rows, 0.2)
    answered = [y for p, y in rows if p >= t]
    wrong = sum(not y for y in answered)
    assert upper_bound(wrong, len(answered)) <= 0.2
    assert 0.3 < t < 0.9  # well calibrated rows: about the confidence whose mean above it is ~0.83
    assert threshold_for([(0.9, False), (0.8, False)], 0.2) > 0.9  # nothing qualifies: nothing is answered


def test_risk_coverage_figures_against_hand_computed_values():
    rows = [(0.9, True), (0.8, False), (0.7, True), (0.1, False)]
    assert risk_coverage(rows) == [(0.25, 0.0), (0.5, 0.5), (0.75, 1 / 3), (1.0, 0.5)]
    assert coverage_at(rows, 0.4) == pytest.approx(0.75)
    # mean risk over coverage 0.25..1.0 of the piecewise-linear curve: trapezoids
    expected = ((0 + 0.5) / 2 * 0.25 + (0.5 + 1 / 3) / 2 * 0.25 + (1 / 3 + 0.5) / 2 * 0.25) / 0.75
    assert aurc(rows, 0.25, 1.0) == pytest.approx(expected)


def test_signal_readers():
    assert veto_signals("")["vetoes_pass"] == 1.0
    v = veto_signals("the model's answer is not supported by the passages: the number 31 is not in the cited sentence")
    assert v["veto_number"] == 1.0 and v["vetoes_pass"] == 0.0 and sum(v.values()) == 1.0
    lps = [("The", -0.1), (" UK", -0.2), (" gave", -0.05), (" 1", -2.0), (" million", -0.3), (" pounds", -0.1),
           (" [1].", -0.01), (" More", -3.0), (".", -0.1)]
    r = reply_signals(lps, "The UK gave 1 million pounds [1]. More.", "1 million pounds")
    assert r["lp_answer"] == -2.0 and r["lp_min"] == -2.0 and r["lp_first"] == -0.1
    assert r["lp_mean"] == pytest.approx(sum(lp for _, lp in lps[:7]) / 7)  # the first sentence only
    assert reply_signals([], "x", "x") == {}
    m = memory_signals("William Shakespeare", "Shakespeare", "Hamlet is a play.")
    assert m["verbatim"] == 0.0 and m["memory_agrees"] == 1.0 and m["memory_unstated"] == m["memory_agrees"]
    assert memory_signals("Shakespeare", "Shakespeare", "Shakespeare wrote Hamlet.")["memory_unstated"] == 0.0


def test_question_term_signals_read_the_questions_years_and_names_in_the_cited_chunk():
    from rag.records import Chunk, Hit, Passage
    from rag.answer.signals import question_term_signals

    def passage(text, source="Arnolfini_Portrait.txt"):
        return Passage(1, Hit(Chunk("a#0", source, 0, len(text), text), 1.0, 1), 0, len(text), text)

    q = "Who owned The Arnolfini Portrait from 1590 to 1610?"
    other_year = question_term_signals(q, passage("In 1842 the National Gallery bought the painting."))
    same_year = question_term_signals(q, passage("In 1599 Philip III owned it."))
    assert other_year["asked_terms"] == -1.0 and same_year["asked_terms"] == 1.0
    assert other_year["asked_names"] == 1.0  # "Arnolfini Portrait" from the document's name
    assert question_term_signals(q, passage("No date here.", "x.txt"))["asked_names"] == 0.0
    assert "asked_terms" not in question_term_signals("Who owns it?", passage("In 1599 Philip III owned it."))
    assert question_term_signals(q, None) == {}


def test_memory_test_catches_an_engine_that_answers_the_same_without_passages(fake_settings):
    # A scripted engine gives this reply to every prompt, the memory test's too (no passages there).
    scripted = EchoGenerator(script="The grant was one million pounds [1].", yes=0.9)
    p = Pipeline.from_settings(fake_settings.replace(decision="vetoes", memory_check=True, signals=True), generator=scripted)
    s = p.ask("How large was the grant from the Modern slavery Prevention and Control Fund?").signals
    assert s["memory_agrees"] == 1.0 and s["verbatim"] == 0.0 and s["memory_unstated"] == 1.0
    # The extractive fake answers from passages only: without them it says the documents do not say.
    honest = Pipeline.from_settings(fake_settings.replace(decision="vetoes", memory_check=True, signals=True),
                                   generator=EchoGenerator(yes=0.9))
    s = honest.ask("How large was the grant from the Modern slavery Prevention and Control Fund?").signals
    assert s["memory_agrees"] == 0.0 and s["memory_unstated"] == 0.0


def test_calibrate_on_a_tiny_labelled_set_writes_a_file_that_ask_then_uses(fake_settings, tmp_path, capsys):
    from rag.cli import main

    out = tmp_path / "mine.json"
    args = ["calibrate", "--docs", str(fake_settings.docs_dir), "--qa", str(ROOT / "tests/data/seeds_questions.jsonl"),
            "--index", str(fake_settings.index_dir), "--embedder", "hashing", "--engine", "echo", "--out", str(out),
            "--folds", "3"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "AUC" in printed and f"wrote {out}" in printed
    c = read(out)
    assert c.fitted_on["sets"]["seeds_questions"]["questions"] == 63 and len(c.heldout) > 10
    assert c.fitted_on["models"]["engine"] == "echo" and c.fitted_on["models"]["embedder"] == "hashing"
    p = Pipeline.from_settings(fake_settings.replace(calibrator=str(out), max_risk=0.5, decision="calibrated"))
    a = p.ask("What did the UK fund?")
    assert a.confidence is not None and 0.0 <= a.confidence <= 1.0
    assert a.to_json()["confidence"] == pytest.approx(a.confidence, abs=1e-6)
    if not a.abstained:
        assert a.citations and a.citations[0].source == UK_DOC
    else:
        assert "weighed most against it" in a.abstain_reason


def test_a_tampered_calibrator_is_a_one_line_error(fake_settings, tmp_path):
    rows, labels = _synthetic(100)
    path = tmp_path / "cal.json"
    save(fit(rows, labels, ("a", "b", "c")), path)
    data = json.loads(path.read_text())
    data["bias"] += 1.0
    path.write_text(json.dumps(data))
    p = Pipeline.from_settings(fake_settings.replace(calibrator=str(path), decision="calibrated"))
    with pytest.raises(ModelError, match="changed after it was written"):
        p.ask("What did the UK fund?")


def test_attach_keeps_a_first_claim_the_rules_reject_only_when_it_can_be_attached():
    from rag.answer.citations import check_answer
    from rag.records import Chunk, Hit, Passage

    text = "The UK gave a grant of 1 million pounds. The project trained 1,936 people."
    p = Passage(1, Hit(Chunk("a#0", "a.txt", 0, len(text), text), 1.0, 1), 0, len(text), text)
    q = "How many volunteers did the charity recruit?"
    strict = check_answer("The project trained 1,936 people [1].", [p], q)
    assert strict.supported_sentences == 0 and "does not answer the question asked" in strict.unsupported[0].reason
    loose = check_answer("The project trained 1,936 people [1].", [p], q, attach=True)
    assert loose.supported_sentences == 1 and loose.citations[0].supported is False
    assert loose.attached[0].reason == strict.unsupported[0].reason and loose.verdicts[0].evidence.support == 1.0
    # a number the passage never states cannot be attached, nor can a second rejected claim
    assert check_answer("The project trained 2,500 people [1].", [p], q, attach=True).supported_sentences == 0
    two = check_answer("The project trained 1,936 people [1]. The UK trained 1,936 volunteers [1].", [p], q, attach=True)
    assert len(two.attached) == 1 and len(two.unsupported) == 1


def test_eval_drop_gold_asks_without_the_gold_documents(fake_settings, tmp_path):
    from rag.cli import main

    out = tmp_path / "nogold.json"
    assert main(["eval", "--docs", str(fake_settings.docs_dir), "--qa", str(ROOT / "tests/data/eval_seeds_sample.jsonl"),
                 "--index", str(fake_settings.index_dir), "--embedder", "hashing", "--engine", "echo", "--drop-gold",
                 "--json", str(out)]) == 0
    answers = json.loads(out.read_text())["answers"]
    gold = {json.loads(line)["id"]: json.loads(line) for line in (ROOT / "tests/data/eval_seeds_sample.jsonl").open()}
    assert answers and all(a["id"].endswith("-nogold") for a in answers)
    for a in answers:
        q = gold[a["id"][: -len("-nogold")]]
        assert q["answerable"] and not set(q["sources"]) & {p["source"] for p in a["prompt_passages"]}


def test_the_chat_shows_the_confidence_in_words_and_an_abstention_says_what_weighed_against(fake_settings):
    from dataclasses import replace

    from rag.app.present import answer_markdown

    a = Pipeline.from_settings(fake_settings.replace(decision="vetoes")).ask("What did the UK fund?")
    shown = answer_markdown(replace(a, confidence=0.55), 1)
    assert "Confidence: low (55%" in shown
    assert "Confidence" not in answer_markdown(replace(a, confidence=None), 1)
    reason = "confidence 0.31 is below 0.52, the threshold for at most 20% wrong answers; weighed most against it: x"
    out = answer_markdown(replace(a, abstained=True, answer="The documents do not say.", abstain_reason=reason), 1)
    assert "weighed most against it: x" in out and "Not answered" in out


def _flat_calibrator(path, bias, models):
    """A calibrator that gives every answer the same confidence; its held-out rows set the threshold at 0.9."""
    from rag.answer.calibration import Calibrator

    c = Calibrator(names=("support",), mean=(0.0,), scale=(1.0,), weights=(0.0,), bias=bias,
                   heldout=tuple((0.9, True) for _ in range(50)), fitted_on={"models": models})
    save(c, path)
    return str(path)


def test_decision_either_shows_what_the_rules_show_and_rescues_what_they_refuse_only_above_the_threshold(
        fake_settings, tmp_path):
    models = {"engine": "echo", "generator": fake_settings.generator, "embedder": "hashing"}
    sure = _flat_calibrator(tmp_path / "sure.json", 4.0, models)  # confidence 0.98, above the threshold 0.9
    unsure = _flat_calibrator(tmp_path / "unsure.json", -4.0, models)  # 0.02, below it
    # A reply the rules refuse (rule 3: the sentence does not speak of what is asked) that can be attached.
    off = EchoGenerator(script="The signing ceremony took place at Lancaster Building, London [1].", yes=0.9)
    question = "Which charity did the British Embassy praise for training volunteers?"
    ruled = Pipeline.from_settings(fake_settings.replace(decision="vetoes", calibrator=sure), generator=off).ask(question)
    assert ruled.abstained and ruled.attached_answer
    rescued = Pipeline.from_settings(fake_settings.replace(decision="either", calibrator=sure), generator=off).ask(question)
    assert not rescued.abstained and "Lancaster Building" in rescued.answer and rescued.confidence > 0.9
    refused = Pipeline.from_settings(fake_settings.replace(decision="either", calibrator=unsure),
                                     generator=off).ask(question)
    assert refused.abstained and refused.abstain_reason.startswith(ruled.abstain_reason)
    assert "below 0.90" in refused.abstain_reason
    # what the rules show is shown at any confidence
    kept = Pipeline.from_settings(fake_settings.replace(decision="either", calibrator=unsure)).ask("What did the UK fund?")
    vetoes = Pipeline.from_settings(fake_settings.replace(decision="vetoes", calibrator=unsure)).ask("What did the UK fund?")
    assert not vetoes.abstained and kept.answer == vetoes.answer and kept.confidence < 0.1
    with pytest.raises(Exception, match="vetoes, calibrated or either"):
        fake_settings.replace(decision="both")


def test_recorded_evaluations_load_gzipped_and_a_rescue_keeps_only_the_rows_the_rules_refused(tmp_path):
    import gzip

    from rag.errors import RagError
    from rag.evaluation.calibrate import either_figures, sets_from_eval

    def row(i, refused, right, answerable=True):
        return {"id": str(i), "answerable": answerable, "abstained": refused, "veto_abstained": refused,
                "correct": right and not refused, "veto_correct": right and not refused, "label": right,
                "signals": {"p_yes": float(right)}}

    answers = [row(0, False, True), row(1, True, True), row(2, True, False), row(3, True, False, answerable=False)]
    body = json.dumps({"summary": {"settings": {"engine": "echo"}}, "answers": answers}).encode()
    (tmp_path / "a.json.gz").write_bytes(gzip.compress(body))
    (tmp_path / "b.json").write_bytes(body)
    a, b = sets_from_eval([str(tmp_path / "a.json.gz"), str(tmp_path / "b.json")])
    assert (a.name, b.name, a.group) == ("a", "b", "a") and a.answers == b.answers and len(a.rows) == 4
    rescue = a.refused()
    assert [r["id"] for r in rescue.rows] == ["1", "2", "3"] and rescue.total == 4
    # rows 1 (right) and 3 (an answer to an unanswerable question) clear 0.5: one right rescue, one wrong
    f = either_figures(rescue, [(0.9, True), (0.1, False), (0.8, False)], 0.5)
    assert f["either_rescued"] == 2 and f["either_correct"] == 0.5 and f["either_abstention_recall"] == 0.0
    # at any threshold, a reply with no attachable claim (no row) is never rescued
    answers.append({"id": "4", "answerable": False, "abstained": True, "veto_abstained": True, "correct": True,
                    "veto_correct": True, "label": None})
    (tmp_path / "d.json").write_text(json.dumps({"answers": answers}))
    (d,) = sets_from_eval([str(tmp_path / "d.json")])
    low = either_figures(d.refused(), [(0.9, True), (0.1, False), (0.8, False)], -1.0)
    assert low["either_rescued"] == 3 and low["either_shown"] == 4 and low["either_abstention_recall"] == 0.5
    (tmp_path / "c.json.gz").write_bytes(b"not gzip")
    with pytest.raises(RagError, match="cannot read"):
        sets_from_eval([str(tmp_path / "c.json.gz")])
