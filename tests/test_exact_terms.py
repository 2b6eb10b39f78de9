"""The question's own years and quarters in the ranking (rag/retrieval/exact_terms.py, HybridRetriever.term_weight)."""

from __future__ import annotations

import pytest

from rag.store.embedding import HashingEmbedder
from rag.retrieval.exact_terms import asked_terms, quarters_in, term_score, years_in
from rag.retrieval.hybrid import HybridRetriever

from test_index import build


def test_years_are_read_as_years_not_as_amounts_or_parts_of_numbers():
    assert years_in("In 2021 revenue was $2,015 million, up 1.2015% on 12015 units; 1999-2000.") == {2021, 1999, 2000}
    assert years_in("Super Bowl 50 was played on February 7, 2016.") == {2016}


def test_ranges_name_every_year_in_them():
    assert asked_terms("Who coached Atletico Madrid from 2006 to 2009?").years == {2006, 2007, 2008, 2009}
    assert asked_terms("GMMTV had what owning it from Aug 2002 to 2007?").years == set(range(2002, 2008))
    assert asked_terms("Who ruled between 1990 and 1992?").years == {1990, 1991, 1992}
    assert asked_terms("Which club did he join in 1998-2001?").years == {1998, 1999, 2000, 2001}
    # A very long span is two years, not a century of matches.
    assert asked_terms("What happened from 1800 to 2000?").years == {1800, 2000}


def test_quarters_in_either_spelling():
    assert quarters_in("Q3 revenue rose; the third quarter was strong; 4th-quarter sales fell") == {3, 4}
    assert asked_terms("What was Apple's revenue in Q1 2023?") .quarters == {1}


def test_a_candidate_gains_with_the_question_s_value_and_loses_with_another_of_the_same_kind():
    asked = asked_terms("What was the revenue in the first quarter of 2023?")
    assert term_score(asked, "First-quarter 2023 revenue was $5 billion.") == 1.0
    assert term_score(asked, "First-quarter 2022 revenue was $4 billion.") == 0.0  # quarter right, year wrong
    assert term_score(asked, "Third-quarter 2022 revenue was $4 billion.") == -1.0
    assert term_score(asked, "Revenue grew.") == 0.0
    assert term_score(asked_terms("What did the UK fund?"), "In 2023 the UK funded it.") == 0.0  # no year asked
    assert not asked_terms("What did the UK fund?")


@pytest.fixture
def seasons(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    # The same subject in three seasons; only the year tells them apart.
    for year, team in ((2019, "Leeds"), (2021, "Hull"), (2023, "York")):
        (docs / f"season_{year}.txt").write_text(f"In the {year} season the club's head coach was the manager of {team}.\n")
    return docs


def test_term_weight_ranks_the_snippet_of_the_asked_year_first(seasons, tmp_path):
    embedder = HashingEmbedder(256)
    index, _ = build(seasons, tmp_path / "ix", embedder)
    # Ask for the season the fused ranking puts last, by a range: its year is not a word of the
    # question, so BM25 and the embedder cannot match it; only the range names it.
    last = HybridRetriever(index, embedder).search("Who was the club's head coach from 2000 to 2002?", 3)[-1].chunk.source
    year = int(last.split("_")[1][:4])
    question = f"Who was the club's head coach from {year - 1} to {year + 1}?"
    plain = HybridRetriever(index, embedder).search(question, 3)
    dated = HybridRetriever(index, embedder, term_weight=1.0).search(question, 3)
    assert plain[0].chunk.source != last
    assert dated[0].chunk.source == last
    assert [h.rank for h in dated] == [1, 2, 3]
    assert sorted(h.chunk.source for h in plain) == sorted(h.chunk.source for h in dated)
    # Off (the default), a question without a year, or RRF: the ranking is the fused one, unchanged.
    assert [h.chunk.id for h in HybridRetriever(index, embedder, term_weight=0.0).search(question, 3)] == [h.chunk.id for h in plain]
    undated = "Who was the club's head coach?"
    assert ([h.chunk.id for h in HybridRetriever(index, embedder, term_weight=1.0).search(undated, 3)]
            == [h.chunk.id for h in HybridRetriever(index, embedder).search(undated, 3)])


def test_term_filter_drops_candidates_of_other_years_only_when_one_states_the_asked_year(seasons, tmp_path):
    (seasons / "history.txt").write_text("The club was founded by miners and plays in red.\n")
    embedder = HashingEmbedder(256)
    index, _ = build(seasons, tmp_path / "ix", embedder)

    def sources(q, **kw):
        return sorted(h.chunk.source for h in HybridRetriever(index, embedder, **kw).search(q, 4))

    # 2021 is asked and stated by one season: the two other seasons go, the undated snippet stays.
    assert sources("Who was the club's head coach in 2021?", term_filter=True) == ["history.txt", "season_2021.txt"]
    assert len(sources("Who was the club's head coach in 2021?")) == 4  # off: all four
    # No candidate states 2020: nothing is dropped (the answer may be in one that names no year).
    assert len(sources("Who was the club's head coach in 2020?", term_filter=True)) == 4
    # A span: 2022-2024 holds 2023 only.
    assert sources("Who was the club's head coach from 2022 to 2024?", term_filter=True) == ["history.txt", "season_2023.txt"]
    assert len(sources("Who was the club's head coach?", term_filter=True)) == 4  # no year asked
