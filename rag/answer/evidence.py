"""How much the model reads: passages in rank order while their tokens fit a budget.

A corpus of short snippets gets many passages and one of long chunks gets few, with a floor and a
ceiling on the count. With passage states (llama.cpp), adjacent short passages share one prompt block
(a *pack*): its state is computed once for the pack, so the passages in it attend to one another,
while separate blocks do not (the 1.5B model mixes up facts across many separate blocks; docs/retrieval.md).
Before the budget, passages that repeat an earlier one (`near_duplicate`) or exceed a per-document
cap (`max_per_source`) make room for others.

>>> from ..records import Chunk, Hit, Passage
>>> ps = [Passage(i + 1, Hit(Chunk(f"c{i}", f"d{i}", 0, n, "x" * n), 1.0, i + 1), 0, n, "x" * n)
...       for i, n in enumerate((40, 40, 400, 40))]
>>> cost = lambda text: len(text) // 4
>>> [p.number for p in within_budget(ps, cost, Budget(tokens=125))]
[1, 2, 3]
>>> pack_sizes([cost(p.text) for p in ps], pack_tokens=20)
(2, 1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

from ..records import Passage
from ..language.terms import content_words


@dataclass(frozen=True)
class Budget:
    """What `within_budget` may take (from settings: `Pipeline.budget`)."""

    tokens: int  # the passages' tokens together, as the engine counts them
    min_passages: int = 1  # taken even when over the budget (the context window still caps the prompt)
    max_passages: int = 10
    max_blocks: int = 0  # with passage states: separate blocks at most (a pack is one); 0 = no limit
    pack_tokens: int = 0  # passages of at most this many tokens share a block; 0 = every passage its own
    max_per_source: int = 0  # passages from one document at most; 0 = no cap
    near_duplicate: float = 0.0  # drop a passage when this share of its content words is in an earlier one; 0 = off


def within_budget(passages: Sequence[Passage], cost: Callable[[str], int], budget: Budget) -> list[Passage]:
    """The passages given to the model, in rank order, renumbered 1, 2, ...

    Taken while the running total of `cost(text)` stays within `budget.tokens` (at least
    `min_passages`, at most `max_passages`), and, when `max_blocks` is set, while the blocks they form
    (`pack_sizes`) stay that few. The first passage that does not fit ends the list: a lower-ranked
    short one is not slipped in after it.
    """
    taken: list[Passage] = []
    costs: list[int] = []
    for p in diverse(passages, budget.max_per_source, budget.near_duplicate):
        if len(taken) >= budget.max_passages:
            break
        c = cost(p.text)
        fits = sum(costs) + c <= budget.tokens
        if budget.max_blocks and len(pack_sizes(costs + [c], budget.pack_tokens)) > budget.max_blocks:
            fits = False
        if not fits and len(taken) >= budget.min_passages:
            break
        taken.append(p)
        costs.append(c)
    return [replace(p, number=i) for i, p in enumerate(taken, start=1)]


def pack_sizes(costs: Sequence[int], pack_tokens: int) -> tuple[int, ...]:
    """How many passages each prompt block holds: adjacent passages of at most `pack_tokens` share one."""
    sizes: list[int] = []
    small_run = False
    for c in costs:
        small = 0 < c <= pack_tokens
        if small and small_run:
            sizes[-1] += 1
        else:
            sizes.append(1)
        small_run = small
    return tuple(sizes)


def diverse(passages: Sequence[Passage], max_per_source: int, near_duplicate: float) -> list[Passage]:
    """`passages` without those over the per-document cap or repeating an earlier passage's words."""
    out: list[Passage] = []
    per_source: dict[str, int] = {}
    seen: list[set[str]] = []
    for p in passages:
        source = p.hit.chunk.source
        if max_per_source and per_source.get(source, 0) >= max_per_source:
            continue
        if near_duplicate:
            words = set(content_words(p.text))
            if words and any(len(words & s) >= near_duplicate * len(words) for s in seen):
                continue
            seen.append(words)
        per_source[source] = per_source.get(source, 0) + 1
        out.append(p)
    return out
