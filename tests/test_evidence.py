"""The evidence budget (rag/answer/evidence.py) and the prompt it gives, through the pipeline with the echo engine."""

from __future__ import annotations

from dataclasses import replace

from rag.answer.evidence import Budget, diverse, pack_sizes, within_budget
from rag.records import Chunk, Hit, Passage


def _passages(*texts: str, sources=None) -> list[Passage]:
    sources = sources or [f"d{i}.txt" for i in range(len(texts))]
    return [Passage(i + 1, Hit(Chunk(f"c{i}", src, 0, len(t), t), 1.0, i + 1), 0, len(t), t)
            for i, (t, src) in enumerate(zip(texts, sources))]


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


COST = lambda text: len(text.split())  # noqa: E731  (one token a word)


def test_snippets_fill_the_budget_and_long_chunks_take_few():
    snippets = _passages(*(words(30, f"s{i}x") for i in range(20)))
    chunks = _passages(*(words(300, f"c{i}x") for i in range(5)))
    assert len(within_budget(snippets, COST, Budget(tokens=400, max_passages=12))) == 12  # the ceiling
    assert len(within_budget(snippets, COST, Budget(tokens=200))) == 6
    assert len(within_budget(chunks, COST, Budget(tokens=400))) == 1
    # the floor: one passage even when the first alone is over the budget
    assert [p.number for p in within_budget(chunks, COST, Budget(tokens=100))] == [1]
    assert len(within_budget(chunks, COST, Budget(tokens=100, min_passages=2))) == 2


def test_rank_order_is_kept_and_the_first_misfit_ends_the_list():
    ps = _passages(words(50, "a"), words(300, "b"), words(10, "c"))
    got = within_budget(ps, COST, Budget(tokens=120))
    assert [p.text for p in got] == [ps[0].text]  # the short third is not slipped in after the long second
    assert [p.number for p in within_budget(list(reversed(ps)), COST, Budget(tokens=400))] == [1, 2, 3]


def test_short_neighbours_share_a_block_and_blocks_are_capped():
    assert pack_sizes([50, 40, 300, 30, 20, 10], pack_tokens=160) == (2, 1, 3)
    assert pack_sizes([50, 40], pack_tokens=0) == (1, 1)
    assert pack_sizes([300, 300], pack_tokens=160) == (1, 1)
    ps = _passages(words(300, "a"), words(300, "b"), words(300, "c"))
    assert len(within_budget(ps, COST, Budget(tokens=2000, max_blocks=2, pack_tokens=160))) == 2
    small = _passages(*(words(40, f"s{i}x") for i in range(8)))
    assert len(within_budget(small, COST, Budget(tokens=2000, max_blocks=1, pack_tokens=160))) == 8  # one pack


def test_duplicates_and_one_documents_flood_make_room_for_others():
    same = "The final was won by Denver in Santa Clara on February 7"
    ps = _passages(same, same + " 2016", "Carolina lost the game", sources=["a.txt", "b.txt", "c.txt"])
    assert [p.text for p in diverse(ps, 0, 0.8)] == [same, "Carolina lost the game"]
    assert len(diverse(ps, 0, 0.0)) == 3
    flood = _passages("one", "two", "three", "four", sources=["a.txt", "a.txt", "a.txt", "b.txt"])
    assert [p.text for p in diverse(flood, 2, 0.0)] == ["one", "two", "four"]


def test_pipeline_prompt_follows_the_budget_with_and_without_states(tmp_path):
    """The same settings give `ask` and `prompt_for` the same passages; with states they are packed."""
    from rag.generation.echo import EchoGenerator
    from rag.pipeline import Pipeline
    from rag.settings import Settings

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"s{i:02d}.txt").write_text(f"In {2000 + i} the river festival of Lindau had {100 + i} boats and a parade.")

    class WithStates(EchoGenerator):
        reuses_passage_states = True

    base = Settings(docs_dir=docs, index_dir=tmp_path / "ix", cache_dir=tmp_path / "cache", embedder="hashing", engine="echo",
                    term_weight=1.0, pack_tokens=160, max_passages=12)
    for generator, field in ((EchoGenerator(), "evidence_tokens_windows"), (WithStates(), "evidence_tokens")):
        for budget in (60, 200):
            p = Pipeline.from_settings(base.replace(**{field: budget}), generator=generator)
            _, passages, blocks = p.prompt_for("How many boats did the Lindau festival have in 2005?")
            tokens = [p._passage_tokens(x.text) for x in passages]
            assert sum(tokens) <= budget and sum(tokens) + tokens[0] > budget  # full, and one more would not fit
            assert [x.number for x in passages] == list(range(1, len(passages) + 1))
            assert passages[0].text.startswith("In 2005")  # the question's year counts (term_weight)
            answer = p.ask("How many boats did the Lindau festival have in 2005?")
            assert [x.text for x in answer.passages] == [x.text for x in passages]
            if field == "evidence_tokens":
                assert len(blocks.blocks) == 1  # all short: one pack
            else:
                assert blocks is None


def test_a_budget_below_one_is_a_clear_error():
    import pytest

    from rag.errors import RagError
    from rag.settings import Settings

    with pytest.raises(RagError, match="evidence_tokens must be at least 1"):
        Settings.load(environ={"RAG_EVIDENCE_TOKENS": "0"}, settings_file=None)


def test_background_packs_are_the_blocks_a_prompt_builds(fake_settings):
    """The packs `warm_states` computes ahead are, byte for byte, the first block a prompt builds when two
    short neighbouring chunks of a document are its first two passages (in either order)."""
    from rag.pipeline import Pipeline
    from rag.answer.prompting import build_blocks, whole_chunks
    from rag.records import Hit

    p = Pipeline.from_settings(fake_settings.replace(pack_tokens=100_000))  # every chunk counts as short
    chunks = p.index.chunks
    a, b = next((x, y) for x, y in zip(chunks, chunks[1:]) if x.source == y.source)
    rows = [(0, c.source, c.start, c.text) for c in chunks]
    packs = p._likely_packs(rows)
    for first, second in ((a, b), (b, a)):
        passages = [replace(q, number=i) for i, q in enumerate(whole_chunks([Hit(first, 1.0, 1), Hit(second, 0.9, 2)]), 1)]
        assert build_blocks("Why?", passages, packs=(2,)).blocks[0] in packs
    assert Pipeline.from_settings(fake_settings.replace(pack_tokens=0))._likely_packs(rows) == ()
