"""What the model reads: the search, the documents in scope, the evidence budget and the prompt that fits."""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from typing import Sequence

from ..answer import answer_type
from ..answer.evidence import Budget, pack_sizes, within_budget
from ..errors import GenerationError, QuestionError
from ..answer.prompting import quoted, build_blocks, build_messages, select_passages, whole_chunks
from ..records import Answer, Hit, Passage, Scope
from ..retrieval.hybrid import HybridRetriever
from .turn import QUOTE_FIRST


class PassageChoice:
    """What the model reads: the search, the documents in scope, the evidence budget and the prompt that fits.

    One part of `Pipeline` (rag/pipeline/core.py), which holds the settings, models, index and locks it uses.
    """

    def prompt_for(self, question: str) -> tuple[list[dict], list[Passage], object]:
        """The messages, passages and blocks (or None) `ask` would give the model for `question` alone."""
        question = self.check_question(question)
        _, _, passages = self._retrieve(question, question, None, None)
        return self._fit_prompt(question, passages, [], None)

    def search(self, query: str, k: int | None = None, only: Sequence[str] = ()) -> list[Hit]:
        query = self.check_question(query)
        return self._retriever().search(query, k or self.settings.top_k, self.scope(only))

    def _retriever(self) -> HybridRetriever:
        """A retriever over the current index (cheap: it holds references only)."""
        s = self.settings
        return HybridRetriever(self.index, self.embedder, s.candidates, s.rrf_k, s.fusion, s.dense_weight,
                               s.term_weight, s.term_filter)

    @property
    def evidence_tokens(self) -> int:
        """The evidence budget a prompt gets unless a call says otherwise (the page's default too)."""
        s = self.settings
        return s.evidence_tokens if self.generator.reuses_passage_states else s.evidence_tokens_windows

    def budget(self, evidence_tokens: int | None = None, k: int | None = None) -> Budget:
        """What the prompt may take: the settings' budget, or a call's own tokens and most passages."""
        s, blocks = self.settings, self.generator.reuses_passage_states
        return Budget(tokens=evidence_tokens or self.evidence_tokens, min_passages=s.min_passages,
                      max_passages=k or s.max_passages, max_blocks=s.evidence_blocks if blocks else 0,
                      pack_tokens=s.pack_tokens if blocks else 0, max_per_source=s.max_per_source,
                      near_duplicate=s.near_duplicate)

    def scope(self, only: Sequence[str] = (), exclude: frozenset[str] = frozenset()) -> Scope:
        """The documents a question may use: each name in `only` is a document of the index or a shell
        pattern (`reports/*.pdf`); one that names none is a QuestionError that lists what there is."""
        if isinstance(only, str):
            only = [only]
        names = sorted(self.index.documents)
        chosen: set[str] = set()
        for pattern in only:
            pattern = pattern.strip()
            if not pattern:
                continue
            found = [n for n in names if n == pattern] or fnmatch.filter(names, pattern)
            if not found:
                listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
                raise QuestionError(f"no document matches {pattern!r}; the index holds: {listed or 'nothing'}")
            chosen.update(found)
        return Scope(only=frozenset(chosen), exclude=frozenset(exclude))

    def _retrieve(self, question: str, query: str, k: int | None, evidence_tokens: int | None,
                  scope: Scope | None = None):
        """The index searched (one snapshot for the whole answer), its hits, and the passages for the prompt."""
        retriever = self._retriever()
        index = retriever.index
        queries = [query] if query == question else [question, query]
        whole = self.generator.reuses_passage_states  # whole chunks: their states are computed once, not per question
        budget = self.budget(evidence_tokens, k)
        # Deeper than the ceiling, so that passages dropped as duplicates or over a document's cap leave room.
        depth = budget.max_passages * (2 if budget.max_per_source or budget.near_duplicate else 1)
        hits = retriever.search_many(queries, depth, scope)
        if whole:
            passages = whole_chunks(hits)
        else:
            passages = select_passages(hits, question, index.bm25.idf_of, self.settings.passage_chars, context=query)
        return index, hits, self._located(within_budget(passages, self._passage_tokens, budget))

    def _location(self, source: str, offset: int) -> str:
        """Where in its file an offset of a document is (its location map: page, slide, sheet; "" if none)."""
        from ..ingest.formats import location_at

        return location_at(self.index.documents.get(source, {}).get("locations", ()), offset)

    def _located(self, passages: Sequence[Passage]) -> list[Passage]:
        """Passages with where in their file each begins."""
        return [replace(p, location=self._location(p.hit.chunk.source, p.start)) for p in passages]

    def _cited_locations(self, answer: Answer) -> Answer:
        citations = tuple(replace(c, location=self._location(c.source, c.start)) for c in answer.citations)
        return replace(answer, citations=citations)

    def _passage_tokens(self, text: str) -> int:
        """A passage's tokens in the prompt, as quoted there (the budget's unit)."""
        return self.generator.count_text(quoted(text))

    def _fit_prompt(self, question, passages, history, max_new_tokens):
        """Drop earlier turns, then the weakest passages, then halve the last one until the prompt fits."""
        window, reserved = self.generator.context_window, max_new_tokens or self.settings.max_new_tokens
        budget = window - reserved - 16
        passages, history = list(passages), list(history)
        in_blocks = self.generator.reuses_passage_states
        hint = " ".join(filter(None, (
            QUOTE_FIRST if self.settings.quote_first else "",
            answer_type.hint(question) if self.settings.answer_hint else "",
        )))
        while True:
            pack_tokens = self.settings.pack_tokens if in_blocks else 0  # 0: one block a passage, nothing to count
            packs = pack_sizes([self._passage_tokens(p.text) for p in passages], pack_tokens) if pack_tokens else ()
            blocks = build_blocks(question, passages, history, hint, packs) if in_blocks else None
            messages = blocks.messages() if blocks else build_messages(question, passages, history, hint)
            if self.generator.count_tokens(messages) <= budget:
                return messages, passages, blocks
            if history:
                history.pop(0)
            elif len(passages) > 1:
                passages.pop()
            elif passages and len(passages[0].text) > 200:
                p = passages[0]
                passages = [replace(p, end=p.start + len(p.text) // 2, text=p.text[: len(p.text) // 2])]
            else:
                # Say what does not fit and what to change: the CLI prints this one line.
                raise GenerationError(
                    f"the question does not fit in the model's context window ({window} tokens, {reserved} kept "
                    "for the answer): ask a shorter question, lower max_new_tokens or raise context_window"
                )
