"""`eval --reply-cache`: recorded replies are replayed exactly, and the abstention trade-off is reported."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ROOT, SEEDS
from rag.cli import main
from rag.generation.echo import EchoGenerator
from rag.generation.replay import ReplayCache

QA = ROOT / "tests" / "data" / "seeds_questions.jsonl"


def _eval(tmp_path: Path, out: str, monkeypatch) -> dict:
    monkeypatch.setenv("RAG_EMBEDDER", "hashing")
    monkeypatch.setenv("RAG_ENGINE", "echo")
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["eval", "--docs", str(SEEDS), "--index", str(tmp_path / "ix"), "--qa", str(QA),
                 "--reply-cache", str(tmp_path / "replies.jsonl"), "--json", str(tmp_path / out)])
    assert code == 0
    return json.loads((tmp_path / out).read_text())


def test_second_run_replays_every_reply_and_judges_the_same(tmp_path, monkeypatch, capsys):
    first = _eval(tmp_path, "a.json", monkeypatch)
    second = _eval(tmp_path, "b.json", monkeypatch)
    generated = [a for a in first["answers"] if a["ttft_s"] is not None]
    assert generated and not any(a["replayed"] for a in first["answers"])
    assert all(a["replayed"] for a in second["answers"] if a["ttft_s"] is not None)
    assert second["summary"]["speed"]["fresh_replies"] == len(second["answers"]) - len(generated)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("replayed", "ttft_s", "total_s", "retrieve_ms", "tokens_per_s", "check_s")} for r in rows]  # noqa: E731
    assert strip(first["answers"]) == strip(second["answers"])
    out = capsys.readouterr().out
    assert "trade-off" in out and "support_precision" in out


def test_trade_off_rows_follow_the_judgement(tmp_path, monkeypatch):
    result = _eval(tmp_path, "a.json", monkeypatch)
    rows = {r["variant"]: i for i, r in enumerate(result["summary"]["trade_off"])}
    answers = result["answers"]
    abstained = lambda label: sum(a["curve"][rows[label]][0] for a in answers)  # noqa: E731
    assert abstained("min_coverage=0.8") >= abstained("min_coverage=0.0")  # stricter never answers more
    assert abstained("min_restated=1.0") >= abstained("min_restated=0.0")
    # the row "as run", and the row of the default threshold, agree with the run's own abstentions
    from rag.settings import Settings

    for label in ("as run", f"min_coverage={Settings().min_coverage}"):
        assert [a["curve"][rows[label]][0] for a in answers] == [a["abstained"] for a in answers]


def test_replay_cache_survives_a_cut_last_line_and_refuses_a_corrupt_one(tmp_path):
    import pytest

    from rag.errors import RagError

    path = tmp_path / "r.jsonl"
    g = ReplayCache(EchoGenerator(script="A [1]."), path)
    assert g.generate([{"role": "user", "content": "q1"}]) == "A [1]."
    assert g.generate([{"role": "user", "content": "q2"}]) == "A [1]."
    path.write_text(path.read_text() + '{"key": "cut', encoding="utf-8")  # a run killed mid-write
    g2 = ReplayCache(EchoGenerator(script="B"), path)
    assert g2.generate([{"role": "user", "content": "q1"}]) == "A [1]." and g2.hits == 1
    assert g2.generate([{"role": "user", "content": "q3"}]) == "B"  # recorded on a line of its own
    assert ReplayCache(EchoGenerator(), path).generate([{"role": "user", "content": "q3"}]) == "B"
    path.write_text('garbage\n' + path.read_text(), encoding="utf-8")
    with pytest.raises(RagError, match="not a reply record"):
        ReplayCache(EchoGenerator(), path)
