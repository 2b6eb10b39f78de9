"""`python -m rag bench` on the fake backends: which questions it asks, and that it says so."""

import json

import pytest

from rag.cli import main

from conftest import SEEDS


@pytest.fixture
def fake_env(monkeypatch):
    monkeypatch.setenv("RAG_EMBEDDER", "hashing")
    monkeypatch.setenv("RAG_ENGINE", "echo")


def bench(capsys, tmp_path, docs, *extra) -> tuple[str, dict]:
    out = tmp_path / "bench.json"
    code = main(["bench", "--scale-chunks", "0", "--repeats", "1", "--docs", str(docs), "--index", str(tmp_path / "ix"),
                 "--json", str(out), *extra])
    printed = capsys.readouterr().out
    assert code == 0
    return printed, json.loads(out.read_text())


def seed_questions() -> list[str]:
    return [json.loads(line)["question"] for line in (SEEDS / "questions.jsonl").read_text().splitlines() if line.strip()]


def test_bench_asks_the_questions_of_a_questions_file_and_prints_them(fake_env, capsys, tmp_path, docs):
    qfile = tmp_path / "mine.jsonl"
    qfile.write_text('{"question": "Who delivered the opening speech at IMM6?"}\n{"id": "x", "question": "What did the UK fund?"}\n')
    printed, figures = bench(capsys, tmp_path, docs, "--questions", str(qfile))
    assert f"bench questions (2, from {qfile}):" in printed
    assert "  Who delivered the opening speech at IMM6?" in printed.splitlines()
    assert figures["bench_questions"] == ["Who delivered the opening speech at IMM6?", "What did the UK fund?"]
    assert figures["questions"] == 2 and figures["questions_from"] == str(qfile)


def test_bench_uses_the_seed_questions_for_the_seeds_only(fake_env, capsys, tmp_path, docs):
    printed, figures = bench(capsys, tmp_path, docs)
    assert figures["bench_questions"] == seed_questions() and f"from {docs / 'questions.jsonl'}" in printed
    other = tmp_path / "other"
    other.mkdir()
    (other / "cats.txt").write_text("Cats purr\nCats purr when they are content.")
    (other / "dogs.md").write_text("# Dogs bark\nDogs bark at strangers.")
    printed, figures = bench(capsys, tmp_path, other)
    assert not set(figures["bench_questions"]) & set(seed_questions())
    assert figures["bench_questions"] == ["What does the document say about Cats purr?", "What does the document say about Dogs bark?"]
    assert "made from the document titles" in printed and "--questions" in printed


@pytest.mark.models
def test_decode_passes_give_the_drafting_bound_from_measured_passes(fake_settings, model_cache):
    """The bench's proof that drafting cannot reach a target: pass costs, and the bound computed from them."""
    from rag.evaluation.bench import decode_passes
    from rag.pipeline import Pipeline

    settings = fake_settings.replace(engine="llama_cpp", generator="packaged:smollm2-135m-instruct", cache_dir=model_cache)
    p = Pipeline.from_settings(settings)
    out = decode_passes(p, "What did the UK fund?", sizes=(1, 2, 4), repeats=2, warm=1)
    assert set(out["pass_ms"]) == {1, 2, 4} and all(ms > 0 for ms in out["pass_ms"].values())
    k = out["draft_speedup_bound_k"]
    assert k in (1, 3)
    assert out["draft_speedup_bound"] == pytest.approx((k + 1) * out["pass_ms"][1] / out["pass_ms"][k + 1])
    assert p.ask("What did the UK fund?").answer  # the pipeline still answers after the measurement


def test_cold_time_to_first_token_starts_from_no_saved_state(fake_settings, model_cache):
    """bench's cold figure asks with an empty state store each time (every passage computed then), and
    leaves the store empty; the warm questions after it reuse what they saved."""
    from rag.evaluation.bench import _cold_ttft
    from rag.pipeline import Pipeline

    settings = fake_settings.replace(engine="llama_cpp", generator="packaged:smollm2-135m-instruct", cache_dir=model_cache)
    p = Pipeline.from_settings(settings)
    p.warm_up()
    p.ask("What did the UK fund?")  # the store exists and holds states now
    store = p.generator.state_store
    assert any(store.folder.glob("*.kvstate"))
    misses = store.stats.misses
    out = _cold_ttft(p, ["What did the UK fund?", "Who delivered the opening speech at IMM6?"])
    assert out["cold_ttft_s"] > 0
    assert store.stats.misses - misses >= 2  # every question computed its passages
    assert not any(store.folder.glob("*.kvstate"))


@pytest.mark.slow  # ~40-90 s: a corpus indexed, questions asked cold, warm and after an upload
def test_upload_figures_cold_warm_and_after_background_states(fake_settings, model_cache, tmp_path):
    """bench's upload measurement: a corpus of filler plus all documents but the last, cold and warm
    questions on it, then the last document uploaded, its states computed, and its questions asked."""
    from rag.evaluation.bench import bench_upload, print_table
    from rag.store.embedding import make_embedder

    settings = fake_settings.replace(engine="llama_cpp", generator="packaged:smollm2-135m-instruct", cache_dir=model_cache)
    questions = ["What did the UK fund?", "Who delivered the opening speech at IMM6?"]
    out = bench_upload(settings, make_embedder("hashing", model_cache), tmp_path, 20, questions)
    assert out["upload_corpus_chunks"] >= 20
    assert out["upload_questions"] == [1, 1]  # one question per document
    assert out["upload_cold_ttft_s"] > 0 and out["upload_warm_ttft_s"] > 0 and out["upload_after_ttft_s"] > 0
    assert out["upload_after_warm_ttft_s"] > 0 and out["upload_after_state_misses"] == 0  # the upload's states were ready
    assert out["upload_states_computed"] > 0
    print_table(out)
