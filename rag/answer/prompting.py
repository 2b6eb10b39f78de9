"""Choose what the model reads and render the prompt from the data files in `prompts/`.

The model gets, for each retrieved chunk, the sentences that best match the question plus their
neighbours (not the whole chunk): a shorter prompt is the main lever on time to first token on CPU.
Every passage is a contiguous span of its document, so a citation of it has exact offsets.

>>> render("Q: $question", question="why?")
'Q: why?'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from importlib.resources import files
from string import Template
from typing import Callable, Sequence

from ..errors import RagError
from ..language.terms import content_words, stem, terms
from ..records import Hit, Passage
from ..language.text import sentence_spans

_QUOTE_RUN = re.compile(r'"{3,}')


def load_prompt(name: str) -> str:
    return files("rag").joinpath("prompts", name).read_text(encoding="utf-8")


def render(template: str, **values: str) -> str:
    """Substitute `$name` placeholders; a missing value is an error, not a blank."""
    try:
        return Template(template).substitute(values)
    except KeyError as e:
        raise RagError(f"prompt variable {e.args[0]} has no value") from None


def select_passages(
    hits: Sequence[Hit], question: str, idf: Callable[[str], float], max_chars: int, context: str = "",
) -> list[Passage]:
    """For each hit, the best-matching window of whole sentences of at most `max_chars`.

    Words of `question` count fully; words only in `context` (a follow-up's borrowed words) count a tenth,
    so "How many people did it train?" still lands on the sentence about training.
    Windows that overlap an earlier one from the same document are dropped (chunks overlap).
    """
    # idf takes words (it stems them itself): a stem stemmed again can be another word's stem.
    weights = {stem(w): 0.1 * idf(w) for w in content_words(context)}
    weights.update({stem(w): idf(w) for w in content_words(question)})
    passages: list[Passage] = []
    taken: list[tuple[str, int, int]] = []
    for hit in hits:
        start, end = _best_window(hit, weights, max_chars)
        if any(src == hit.chunk.source and s < end and start < e for src, s, e in taken):
            continue
        taken.append((hit.chunk.source, start, end))
        text = hit.chunk.text[start - hit.chunk.start : end - hit.chunk.start]
        passages.append(Passage(len(passages) + 1, hit, start, end, text))
    return passages


def _best_window(hit: Hit, weights: dict[str, float], max_chars: int) -> tuple[int, int]:
    """Document offsets of the best sentence grown by neighbours up to max_chars."""
    c = hit.chunk
    spans = [(s + c.start, e + c.start) for s, e in sentence_spans(c.text)]
    if not spans:
        return c.start, c.end
    scores = [sum(weights.get(t, 0.0) for t in set(terms(c.text[s - c.start : e - c.start]))) for s, e in spans]
    best = max(range(len(spans)), key=lambda i: (scores[i], -i))
    lo = hi = best
    # Grow towards the better-scoring neighbour first; the sentence before often names the subject.
    while True:
        options = []
        if lo > 0 and spans[hi][1] - spans[lo - 1][0] <= max_chars:
            options.append((scores[lo - 1] + 0.1, lo - 1, hi))
        if hi + 1 < len(spans) and spans[hi + 1][1] - spans[lo][0] <= max_chars:
            options.append((scores[hi + 1], lo, hi + 1))
        if not options:
            break
        _, lo, hi = max(options)
    start, end = spans[lo][0], spans[hi][1]
    if end - start > max_chars:  # one very long sentence: cut at a word boundary
        cut = c.text.rfind(" ", 0, start - c.start + max_chars)
        end = c.start + cut if cut > start - c.start else start + max_chars
    return start, end


def whole_chunks(hits: Sequence[Hit]) -> list[Passage]:
    """Each hit's chunk whole, as a passage (the unit whose model state an engine can precompute)."""
    passages: list[Passage] = []
    seen: set[str] = set()
    for hit in hits:
        c = hit.chunk
        if c.id not in seen:
            seen.add(c.id)
            passages.append(Passage(len(passages) + 1, hit, c.start, c.end, c.text))
    return passages


def quoted(text: str) -> str:
    # Collapse whole runs: replacing each triple alone would turn five quotes into a closing triple.
    return f'"""\n{_QUOTE_RUN.sub(chr(34), text)}\n"""'


def format_passages(passages: Sequence[Passage]) -> str:
    """Numbered passages, each quoted so the model treats its text as data.

    No titles: they cost prompt tokens (time to first token), and the passage text carries the content.
    A run of three or more quotes in a passage becomes one, so no passage can close its quote early.
    """
    return "\n".join(f"[{p.number}]\n{quoted(p.text)}" for p in passages)


def format_history(history: Sequence[tuple[str, str]]) -> str:
    """Earlier turns, so that follow-up questions can be understood."""
    if not history:
        return ""
    turns = "\n".join(f"- Earlier question: {q}\n  Earlier answer: {a}" for q, a in history)
    return f"\nConversation so far (for context only):\n{turns}\n"


def _hint(hint: str) -> str:
    """Words added to the instruction (settings `quote_first`, `answer_hint`); none by default."""
    return f" {hint.strip()}" if hint.strip() else ""


def build_messages(
    question: str, passages: Sequence[Passage], history: Sequence[tuple[str, str]] = (), hint: str = "",
) -> list[dict]:
    """Chat messages: system rules, then question first, numbered passages, then the instruction."""
    user = render(
        load_prompt("answer.txt"),
        question=question,
        history=format_history(history),
        passages=format_passages(passages),
        hint=_hint(hint),
    )
    return [{"role": "system", "content": load_prompt("system.txt").strip()}, {"role": "user", "content": user.strip()}]


@dataclass(frozen=True)
class PromptBlocks:
    """A prompt cut where the passages are, for engines that reuse each passage's precomputed state.

    The user message is `head`, then each passage as its `markers[i]` followed by `blocks[i]`, then
    `tail`. A block's text depends on its chunk only (never on the question or its rank), so its
    model state can be computed once and placed behind any head; the markers and the tail are the
    small parts evaluated per question.

    >>> from ..records import Chunk, Hit
    >>> b = build_blocks("Why?", whole_chunks([Hit(Chunk("a#0", "a", 0, 5, "Rain."), 1.0, 1)]))
    >>> b.markers, b.head, b.blocks[0].splitlines()[1]
    (('[1]\\n',), 'Passages:\\n', 'Rain.')
    >>> b.messages()[1]["content"] == b.head + b.markers[0] + b.blocks[0] + b.tail
    True
    """

    system: str
    head: str
    markers: tuple[str, ...]
    blocks: tuple[str, ...]
    tail: str

    @property
    def user(self) -> str:
        return self.head + "".join(m + b for m, b in zip(self.markers, self.blocks)) + self.tail

    def messages(self) -> list[dict]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


_CUT = "\x00passages\x00"


def build_blocks(
    question: str, passages: Sequence[Passage], history: Sequence[tuple[str, str]] = (), hint: str = "",
    packs: Sequence[int] = (),
) -> PromptBlocks:
    """The passages-first prompt (`prompts/answer_blocks.txt`) as fixed head, passage blocks and tail.

    `packs` says how many passages each block holds (`rag.answer.evidence.pack_sizes`; default one each). A
    pack's block carries the markers of its later passages inside it, so the user text is the same
    however the passages are packed; only where the prompt is cut (which states are saved) differs.

    >>> from ..records import Chunk, Hit
    >>> ps = whole_chunks([Hit(Chunk(f"a#{i}", "a", 0, 5, t), 1.0, 1) for i, t in enumerate(("Rain.", "Sun."))])
    >>> one, packed = build_blocks("Why?", ps), build_blocks("Why?", ps, packs=(2,))
    >>> packed.user == one.user, len(one.blocks), len(packed.blocks), packed.markers
    (True, 2, 1, ('[1]\\n',))
    """
    user = render(load_prompt("answer_blocks.txt"), question=question, history=format_history(history), passages=_CUT,
                  hint=_hint(hint))
    head, tail = user.strip().split(_CUT)
    markers = [("\n" if i else "") + f"[{p.number}]\n" for i, p in enumerate(passages)]
    sizes = list(packs) if sum(packs) == len(passages) else [1] * len(passages)
    block_markers, blocks, i = [], [], 0
    for size in sizes:
        block_markers.append(markers[i])
        blocks.append("".join((markers[j] if j > i else "") + quoted(passages[j].text) for j in range(i, i + size)))
        i += size
    return PromptBlocks(load_prompt("system.txt").strip(), head, tuple(block_markers), tuple(blocks), tail)


def build_verify_blocks(claim: str, passage_text: str) -> PromptBlocks:
    """Does this passage state this claim? (`prompts/verify_blocks.txt`)

    The same system prompt, head and block as an answer prompt's first passage, so with passage states
    the passage's saved state is reused and only the claim and the instruction are computed. The question
    is left out: the rules check that the claim answers it, and its tokens cost time (measured: with it
    1.17 s a check against 0.85 s, for a separation no better on the whole; docs/answer-check.md, "The model check").

    >>> b = build_verify_blocks("Denver won.", "Denver won the game.")
    >>> b.head == build_blocks("", []).head and b.markers == ("[1]\\n",)
    True
    """
    user = render(load_prompt("verify_blocks.txt"), claim=claim, passages=_CUT)
    head, tail = user.strip().split(_CUT)
    return PromptBlocks(load_prompt("system.txt").strip(), head, ("[1]\n",), (quoted(passage_text),), tail)


def build_answerable_blocks(question: str, passage_text: str) -> PromptBlocks:
    """Does this passage answer this question? (`prompts/answerable_blocks.txt`): the answerability check,
    asked before any claim is looked at, with the same system prompt, head and block as the model check.

    >>> build_answerable_blocks("Who won?", "Denver won the game.").tail.strip().startswith("Question: Who won?")
    True
    """
    user = render(load_prompt("answerable_blocks.txt"), question=question, passages=_CUT)
    head, tail = user.strip().split(_CUT)
    return PromptBlocks(load_prompt("system.txt").strip(), head, ("[1]\n",), (quoted(passage_text),), tail)


def build_choice_blocks(question: str, answer_blocks: PromptBlocks) -> PromptBlocks:
    """Which sentence answers the question? (`prompts/choose_sentence_blocks.txt`): the answer prompt's own
    head and passage blocks with another tail, so with passage states only the tail is computed.

    >>> from ..records import Chunk, Hit
    >>> a = build_blocks("Why?", whole_chunks([Hit(Chunk("a#0", "a", 0, 5, "Rain."), 1.0, 1)]))
    >>> c = build_choice_blocks("Why?", a)
    >>> c.blocks == a.blocks and c.head == a.head, c.tail.strip().splitlines()[0]
    (True, 'Question: Why?')
    """
    user = render(load_prompt("choose_sentence_blocks.txt"), question=question, passages=_CUT)
    head, tail = user.strip().split(_CUT)
    assert head == answer_blocks.head, "the choice prompt must start like the answer prompt"
    return replace(answer_blocks, tail=tail)


def block_texts(chunk_texts: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The fixed head and the blocks for these chunk texts, as `build_blocks` makes them (for precomputing)."""
    return build_blocks("", []).head, tuple(quoted(t) for t in chunk_texts)

