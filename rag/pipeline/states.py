"""Saved passage states computed ahead of questions: at start, for `rag index --states`, after an upload."""

from __future__ import annotations

import logging
import threading
import time

from ..errors import RagError
from ..answer.prompting import quoted, block_texts, load_prompt

log = logging.getLogger(__name__)


class StateWarmup:
    """Saved passage states computed ahead of questions: at start, for `rag index --states`, after an upload.

    One part of `Pipeline` (rag/pipeline/core.py), which holds the settings, models, index and locks it uses.
    """

    def warm_up(self) -> None:
        """Load both models now rather than on the first question."""
        self.embedder.embed_query("warm up")
        system = load_prompt("system.txt").strip()
        self.generator.warm_up(system)
        if self.generator.reuses_passage_states:  # the block prompts' fixed head, evaluated as they will use it
            self.generator.precompute_states(system, block_texts([])[0], [])

    def precompute_states(self) -> int:
        """Compute the engine's saved state of every chunk now (`rag index --states`); return how many were new."""
        generator = self.generator
        if not generator.reuses_passage_states:
            raise RagError(f"engine {generator.name} does not keep passage states (llama_cpp with passage_states=true does)")
        head, blocks = block_texts([c.text for c in self.index.chunks])
        return generator.precompute_states(load_prompt("system.txt").strip(), head, blocks)

    def warm_states(self, sources=None, progress=None, stop: threading.Event | None = None) -> int:
        """Compute the saved states of these documents' chunks (every chunk's when None) now, so the next
        questions do not wait for them; return how many were computed.

        Made for a background thread: each block holds the generation lock only while it is computed, so
        a question arriving meanwhile waits for one block at most, then goes first. Chunks are taken in
        the order they are most likely used: every document's first chunk, then every second one, and so
        on. It stops at the state store's disk cap (saved states are not pushed out for guesses) or when
        `stop` is set; `progress("states", done, total)` hears of each block.
        """
        generator = self.generator
        if not generator.reuses_passage_states:
            return 0
        chunks = self.index.chunks() if callable(self.index.chunks) else self.index.chunks
        position: dict[str, int] = {}
        ranked = []
        for c in chunks:
            if sources is None or c.source in sources:
                position[c.source] = position.get(c.source, -1) + 1
                ranked.append((position[c.source], c.source, c.start, c.text))
        ranked.sort()
        head, blocks = block_texts([text for *_, text in ranked])
        blocks = blocks + self._likely_packs(ranked)
        system = load_prompt("system.txt").strip()
        computed = 0
        for done, block in enumerate(blocks, start=1):
            if stop is not None and stop.is_set():
                break
            while self._asking:  # a question is waiting: it goes first
                time.sleep(0.02)
            with self._generate_lock:
                store = getattr(generator, "state_store", None)
                if store is not None and not store.has_room():
                    log.info("passage states: the disk cap is reached, %d left for first use", len(blocks) - done + 1)
                    break
                computed += generator.precompute_states(system, head, [block])
            if progress is not None:
                progress("states", done, len(blocks))
        return computed

    def _likely_packs(self, ranked) -> tuple[str, ...]:
        """The pack blocks a prompt most likely forms from these chunks: two short chunks next to each other
        in one document, as the first two passages, in either order (a pack's state exists only for its
        passages, so it cannot be built from theirs). `ranked`: (position, source, start, text) rows."""
        pack_tokens = self.settings.pack_tokens
        if not pack_tokens:
            return ()
        by_doc: dict[str, list[tuple[int, str]]] = {}
        for _, source, start, text in ranked:
            by_doc.setdefault(source, []).append((start, text))
        packs = []
        for rows in by_doc.values():
            texts = [t for _, t in sorted(rows)]
            short = [0 < self._passage_tokens(t) <= pack_tokens for t in texts]
            for i in range(len(texts) - 1):
                if short[i] and short[i + 1]:
                    for a, b in ((texts[i], texts[i + 1]), (texts[i + 1], texts[i])):
                        packs.append(quoted(a) + "\n[2]\n" + quoted(b))
        return tuple(packs)
