"""The sentence choice: the reply constrained to the passages' literal sentences, and its signals."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from rag.generation.base import constrained_shares
from rag.records import Chunk, Citation, Hit, Passage
from rag.answer.signals import choice_options, choice_signals


def _table(seed: int, vocab: int = 7):
    """Logits for every prefix, fixed by the seed: a fake model."""
    cache: dict = {}

    def logits(prefix):
        if prefix not in cache:
            rng = random.Random(hash((seed, prefix)))
            cache[prefix] = [rng.gauss(0.0, 2.0) for _ in range(vocab)]
        return cache[prefix]

    return logits


def _brute_force(options, logits, end):
    """P(option): the product, along its tokens, of its token's softmax among the tokens allowed there."""
    out = []
    for option in options:
        p = 1.0
        for depth in range(len(option) + 1):
            prefix = tuple(option[:depth])
            under = [o for o in options if tuple(o[:depth]) == prefix]
            allowed = {o[depth] if len(o) > depth else end for o in under}
            if len(set(map(tuple, under))) == 1:
                break  # one option left: it takes the whole mass
            mine = option[depth] if len(option) > depth else end
            row = logits(prefix)
            z = sum(math.exp(row[t]) for t in allowed)
            p *= math.exp(row[mine]) / z
        out.append(p)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_constrained_shares_equal_the_brute_force_product(seed):
    rng = random.Random(seed)
    words = [tuple(rng.randrange(5) for _ in range(rng.randint(1, 4))) for _ in range(7)]
    options = list(dict.fromkeys(words))  # distinct sequences; some are prefixes of others
    logits = _table(seed)
    shares = constrained_shares(options, logits, end=6, max_reads=1000)
    assert sum(shares) == pytest.approx(1.0)
    assert shares == pytest.approx(_brute_force(options, logits, 6))


def test_read_cap_splits_the_rest_evenly_and_identical_options_share():
    reads = []

    def logits(prefix):
        reads.append(prefix)
        return _table(1)(prefix)

    options = [(1, 2, 3), (1, 2, 4), (1, 3), (2,), (2,)]
    shares = constrained_shares(options, logits, end=6, max_reads=1)
    assert reads == [()] and sum(shares) == pytest.approx(1.0)
    assert shares[0] == pytest.approx(shares[1]) == pytest.approx(shares[2])  # not read: split evenly
    assert shares[3] == pytest.approx(shares[4])
    full = constrained_shares(options, _table(1), end=6, max_reads=50)
    assert full[3] == pytest.approx(shares[3])  # the first read decides the mass under token 2 exactly


def _passages():
    texts = ("Denver won the game. The score was 24 to 10.", "Carolina lost in 2016. Its coach was Rivera.")
    out = []
    for n, text in enumerate(texts, start=1):
        chunk = Chunk(f"d{n}#0", f"d{n}.txt", 0, len(text), text)
        out.append(Passage(n, Hit(chunk, 1.0, n), 0, len(text), text))
    return out


def test_choice_signals_read_the_cited_sentence_and_the_answer():
    passages = _passages()
    options = choice_options(passages)
    assert [o[3] for o in options] == ["Denver won the game.", "The score was 24 to 10.", "Carolina lost in 2016.",
                                       "Its coach was Rivera."]
    cited = Citation(1, "d1.txt", 21, 44, "The score was 24 to 10.")
    shares = [0.1, 0.6, 0.2, 0.1]
    s = choice_signals(shares, options, passages, cited, "24 to 10")
    assert s == pytest.approx({"choice_cited": 0.6, "choice_top_cited": 1.0, "choice_answer": 0.6, "choice_max": 0.6})
    other = choice_signals([0.7, 0.1, 0.1, 0.1], options, passages, cited, "Rivera")
    assert other == pytest.approx({"choice_cited": 0.1, "choice_top_cited": 0.0, "choice_answer": 0.1, "choice_max": 0.7})
    wrong_source = Citation(1, "d2.txt", 21, 44, "The score was 24 to 10.")
    assert choice_signals(shares, options, passages, wrong_source, "")["choice_cited"] == 0.0
    assert choice_signals(None, options, passages, cited, "x") == {}


@pytest.mark.models
def test_llama_choice_from_passage_states_equals_a_full_prefill_and_replays(tmp_path_factory):
    """With the tiny model: shares sum to one, the same from a saved passage state as from the whole prompt
    (one block: separate blocks' states do not attend to one another, by design), and the cache keeps them."""
    from rag.generation.base import Grounding
    from rag.generation.llama_cpp import LlamaCppGenerator
    from rag.generation.replay import ReplayCache
    from rag.models import resolve
    from rag.answer.prompting import build_blocks, build_choice_blocks

    cache = tmp_path_factory.mktemp("choice")
    gen = LlamaCppGenerator(resolve("packaged:smollm2-135m-instruct", cache), n_ctx=2048, state_dir=cache / "states")
    passages = _passages()[:1]
    question = "Who won the game?"
    blocks = build_choice_blocks(question, build_blocks(question, passages))
    options = [o[3] for o in choice_options(passages)]
    grounding = Grounding(question, tuple(p.text for p in passages), blocks)
    from_states = gen.choice_shares(blocks.messages(), options, grounding)
    gen.llm.reset()
    whole = gen.choice_shares(blocks.messages(), options)
    assert sum(from_states) == pytest.approx(1.0) and len(from_states) == len(options)
    assert from_states == pytest.approx(whole, abs=2e-3)
    replay = ReplayCache(gen, cache / "replies.jsonl")
    assert replay.choice_shares(blocks.messages(), options) == pytest.approx(whole, abs=2e-3)
    again = ReplayCache(gen, cache / "replies.jsonl")
    assert again.choice_shares(blocks.messages(), options) == replay.choice_shares(blocks.messages(), options)
    assert again.hits == 0 and len((cache / "replies.jsonl").read_text().splitlines()) == 1


def test_every_option_has_its_tokens_reachable():
    """No option is lost: every sequence gets some mass however the logits fall."""
    options = [tuple(p) for p in itertools.product(range(3), repeat=2)]
    shares = constrained_shares(options, _table(3, vocab=4), end=3, max_reads=100)
    assert all(s > 0 for s in shares) and sum(shares) == pytest.approx(1.0)
