"""The pipeline: documents -> index -> retrieval -> passages -> prompt -> model -> checked answer.

`Pipeline.from_settings` is the one place that picks concrete backends. The CLI and the UI only call
`index`, `search`, `ask` and `ask_stream`
(evaluation also `ask_with_passages`).

>>> from rag.settings import Settings
>>> p = Pipeline.from_settings(Settings(embedder="hashing", engine="echo", index_dir=Path(tempfile.mkdtemp())))
>>> p.ask("What did the UK fund?").citations[0].source
'000_cfdc63a43af77a2b.txt'
"""

from __future__ import annotations

import fnmatch
import logging
import re
import tempfile  # noqa: F401  (used by the docstring example)
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

from .answer import answer_type
from .answer.answering import (NOT_FOUND, Policy, abstain_early, finish, first_supported_claim, retrieval_evidence,
                               with_model_check)
from .store.embedding import Embedder, make_embedder
from .answer.evidence import Budget, pack_sizes, within_budget
from .ingest.documents import load_file
from .errors import DocumentError, GenerationError, QuestionError, RagError
from .generation import Generator, Grounding, Usage, make_generator
from .language.terms import content_words
from .answer.citations import claim_text, find_markers
from .answer.prompting import (quoted, block_texts, build_answerable_blocks, build_blocks, build_choice_blocks, build_messages,
                               build_verify_blocks, load_prompt, render, select_passages, whole_chunks)
from .records import Answer, Hit, Passage, Scope, Timings
from .retrieval.hybrid import HybridRetriever
from .settings import Settings
from .store.index import Index, UpdateReport, load_index, settings_signature, update_index

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ANAPHORA = re.compile(r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|him|there|the same|then)\b", re.I)


@dataclass(frozen=True)
class Retrieved:
    """Stream event: passages are ready (shown before the first token)."""

    passages: tuple[Passage, ...]
    search_query: str


@dataclass(frozen=True)
class Token:
    """Stream event: a piece of the model's reply."""

    text: str


@dataclass(frozen=True)
class Done:
    """Stream event: the final, checked answer."""

    answer: Answer


@dataclass(frozen=True)
class _Turn:
    """One question as it reaches the reader: what was asked, after what, searched as what, since when."""

    question: str
    history: list
    query: str  # the standalone query retrieval used
    qid: str | None
    t0: float  # perf_counter() when the question arrived
    retrieve_ms: float
    best_dense: float | None = None  # the retrieval floor's figures (None: passages given, not retrieved)
    keyword_overlap: float | None = None
    blocks: object = None  # the answer prompt as head, passage blocks and tail (with passage states)


# The instruction's extra line with the setting `quote_first` (checked by answering.quote_problem).
QUOTE_FIRST = ('Write two lines: first "Quote:" and the one sentence of the passages that states the answer, '
               'copied word for word in double quotation marks; then "Answer:" and the answer.')


# The memory test: the question alone, answered in a few words (rag/answer/signals.py, memory_signals).
MEMORY_SYSTEM = "You answer questions from general knowledge, in a few words."
MEMORY_TOKENS = 16


class Pipeline:
    """Owns the index and the models; safe to share between threads (generation is serialised)."""

    def __init__(self, settings: Settings, embedder: Embedder, index: Index | None = None, generator: Generator | None = None):
        """Usually built by `from_settings`; without an index, call `update_index()` before asking."""
        self.settings = settings
        self.embedder = embedder
        self.index = index
        self._generator = generator
        self._generate_lock = threading.Lock()
        self._asking = 0  # questions waiting for the generation lock (background work waits for them)
        self._count_lock = threading.Lock()
        self._index_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self.last_report: UpdateReport | None = None
        self._doc_cache: dict[tuple[str, str], str] = {}

    @classmethod
    def from_settings(cls, settings: Settings, build: bool = True, generator: Generator | None = None) -> "Pipeline":
        """Pick the backends; load the index, building or updating it from the documents if `build`."""
        embedder = make_embedder(settings.embedder, Path(settings.cache_dir))
        pipeline = cls(settings, embedder, generator=generator)
        if build:
            pipeline.update_index()
        elif settings.store == "milvus":
            from .store.milvus.update import MilvusConfig, open_milvus_index

            config = MilvusConfig.from_settings(settings)
            pipeline.index = open_milvus_index(config, embedder, settings.chunk_size, settings.chunk_overlap)
        else:
            pipeline.index = load_index(settings.index_dir, settings_signature(embedder, settings.chunk_size, settings.chunk_overlap))
        return pipeline

    # ---- index
    def update_index(self, force: bool = False, progress=None) -> UpdateReport:
        """Sync the index with the documents folder (only new/changed documents are embedded);
        `progress(stage, done, total)` hears of each file read and chunk batch embedded."""
        with self._index_lock:
            index, report = self._update_store(force, progress)
            self.index = index  # one reference swap: readers see the old or the new index, whole
            if report.changed:
                self._prune_states(index)
        self.last_report = report
        return report

    def _prune_states(self, index: Index) -> None:
        """Saved passage states of chunks this index no longer holds are deleted (the others stay exact)."""
        from .generation.state_store import prune_states

        folder = Path(self.settings.index_dir) / "states"
        if not folder.is_dir():  # no states kept: do not list a large (Milvus) index's chunks for nothing
            return
        removed = prune_states(folder, set(block_texts([c.text for c in index.chunks])[1]))
        if removed:
            log.info("passage states removed=%d (their chunks left the index)", removed)

    def _update_store(self, force: bool, progress=None):
        """The store the settings name: FAISS files in index_dir (default) or a Milvus collection."""
        s = self.settings
        if s.store == "milvus":
            from .store.milvus.update import MilvusConfig, update_milvus_index

            return update_milvus_index(s.docs_dir, self.embedder, s.chunk_size, s.chunk_overlap, MilvusConfig.from_settings(s),
                                       exact_max=s.exact_search_max, max_file_mb=s.max_file_mb, force=force,
                                       progress=progress)
        if s.store != "faiss":
            raise RagError(f"unknown store {s.store!r} (faiss, milvus)")
        return update_index(s.docs_dir, s.index_dir, self.embedder, s.chunk_size, s.chunk_overlap,
                            exact_max=s.exact_search_max, max_file_mb=s.max_file_mb, force=force, progress=progress)

    def document_text(self, source: str) -> str | None:
        """The text of an indexed document (None if it is gone or changed since indexing)."""
        entry = self.index.documents.get(source)
        if entry is None:
            return None
        key = (source, entry["sha256"])
        if key not in self._doc_cache:
            path = self._doc_path(source)
            if path is None:
                return None
            try:
                doc = load_file(path, source, self.settings.max_file_mb)
            except DocumentError:
                return None
            if doc.sha256 != entry["sha256"]:
                return None
            if len(self._doc_cache) > 64:
                self._doc_cache.clear()
            self._doc_cache[key] = doc.text
        return self._doc_cache[key]

    def remove_document(self, source: str) -> UpdateReport:
        """Delete a document file from the documents folder and drop it from the index."""
        path = self._doc_path(source)
        if path is None or not path.is_file():
            raise DocumentError(f"no such document: {source}")
        path.unlink()
        return self.update_index()

    def _doc_path(self, source: str) -> Path | None:
        """The file of `source` inside the documents folder; None if the name would lead outside it."""
        docs = self.settings.docs_dir.resolve()
        path = (docs / source).resolve()
        return path if docs in path.parents else None

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            with self._model_lock:  # two first questions at once must not load the model twice
                if self._generator is None:
                    self._generator = make_generator(self.settings)
        return self._generator

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

    def prompt_for(self, question: str) -> tuple[list[dict], list[Passage], object]:
        """The messages, passages and blocks (or None) `ask` would give the model for `question` alone."""
        question = self.check_question(question)
        _, _, passages = self._retrieve(question, question, None, None)
        return self._fit_prompt(question, passages, [], None)

    # ---- retrieval
    def search(self, query: str, k: int | None = None, only: Sequence[str] = ()) -> list[Hit]:
        query = self.check_question(query)
        return self._retriever().search(query, k or self.settings.top_k, self.scope(only))

    def _retriever(self) -> HybridRetriever:
        """A retriever over the current index (cheap: it holds references only)."""
        s = self.settings
        return HybridRetriever(self.index, self.embedder, s.candidates, s.rrf_k, s.fusion, s.dense_weight, s.term_weight)

    def check_question(self, question: str) -> str:
        """Clean a question or raise QuestionError with a message for the user."""
        return clean_question(question, self.settings.max_question_chars)

    def standalone_query(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """A retrieval query for a follow-up: the question plus the words of the last turn it leans on.

        Cheap on purpose (no model call): a follow-up that refers back ("it", "they", few content
        words) borrows the previous question's and answer's content words.
        """
        if not history:
            return question
        if not _ANAPHORA.search(question) and len(content_words(question)) >= 4:
            return question
        prev_q, prev_a = history[-1]
        own = set(content_words(question))
        borrowed = [w for w in dict.fromkeys(content_words(prev_q) + content_words(_strip_refs(prev_a))) if w not in own]
        return f"{question} ({' '.join(borrowed[:12])})" if borrowed else question

    # ---- answering
    def ask(self, question: str, history: Sequence[tuple[str, str]] = (), qid: str | None = None, **options) -> Answer:
        """Answer one question. Example: `pipeline.ask("What did the UK fund?").answer`."""
        return _final(self.ask_stream(question, history, qid, **options))

    def ask_stream(
        self, question: str, history: Sequence[tuple[str, str]] = (), qid: str | None = None,
        k: int | None = None, max_new_tokens: int | None = None, stop_event: threading.Event | None = None,
        evidence_tokens: int | None = None, exclude: frozenset[str] = frozenset(), only: Sequence[str] = (),
    ) -> Iterator[Retrieved | Token | Done]:
        """Yield Retrieved, then Token pieces, then Done with the checked answer.

        `evidence_tokens` and `k` override the settings' evidence budget and most passages (the page's slider);
        `only` restricts the question to these documents (names or shell patterns, `scope`); `exclude`
        names documents retrieval leaves out (eval's --drop-gold: the question with its answer gone).
        """
        t0 = time.perf_counter()
        question = self.check_question(question)
        scope = self.scope(only, exclude)
        history = list(history)[-self.settings.history_turns :] if self.settings.history_turns else []
        query = self.standalone_query(question, history)
        index, hits, passages = self._retrieve(question, query, k, evidence_tokens, scope)
        retrieve_ms = (time.perf_counter() - t0) * 1000
        yield Retrieved(tuple(passages), query)
        dense, overlap = retrieval_evidence(query, hits, index.bm25.idf_of)
        if not passages or (dense < self.settings.min_dense_score and overlap < self.settings.min_keyword_overlap):
            timings = Timings(retrieve_ms=retrieve_ms, total_s=time.perf_counter() - t0)
            reason = f"no relevant passage found (best cosine {dense:.2f}, keyword overlap {overlap:.2f})"
            yield Done(abstain_early(question, passages, timings, query, qid, reason))
            return
        turn = _Turn(question, history, query, qid, t0, retrieve_ms, dense, overlap)
        yield from self._read(turn, passages, index.bm25.idf_of, max_new_tokens, stop_event)

    def ask_with_passages(self, question: str, passages: Sequence[Passage], qid: str | None = None,
                          max_new_tokens: int | None = None) -> Answer:
        """Answer from the given passages instead of retrieved ones: the reader and the answer check alone.

        No retrieval and no retrieval floor (the passages are given, e.g. an evaluation's gold sources
        whole); the prompt, generation, model check and `finish` are those of `ask`, so citations keep
        exact offsets into the passages' documents. Numbers the passages 1, 2, ... in the order given.
        """
        t0 = time.perf_counter()
        question = self.check_question(question)
        passages = self._located([replace(p, number=i) for i, p in enumerate(passages, start=1)])
        turn = _Turn(question, [], question, qid, t0, 0.0)
        return _final(self._read(turn, passages, self.index.bm25.idf_of, max_new_tokens, None))

    def _read(self, turn: "_Turn", passages: Sequence[Passage], idf, max_new_tokens: int | None,
              stop_event) -> Iterator[Token | Done]:
        """Everything after the passages are chosen: fit the prompt, stream the reply, check it, finish."""
        question, history, query, qid, t0 = turn.question, turn.history, turn.query, turn.qid, turn.t0
        messages, passages, blocks = self._fit_prompt(question, passages, history, max_new_tokens)
        turn = replace(turn, blocks=blocks)
        usage, pieces, ttft = Usage(), [], None
        grounding = Grounding(question, tuple(p.text for p in passages), blocks)
        with self._count_lock:
            self._asking += 1
        try:
            self._generate_lock.acquire()
        finally:
            with self._count_lock:
                self._asking -= 1
        with _Held(self._generate_lock):
            for piece in self.generator.stream(
                messages, max_new_tokens or self.settings.max_new_tokens, self.settings.temperature, usage, stop_event,
                grounding,
            ):
                if ttft is None:
                    ttft = time.perf_counter() - t0
                pieces.append(piece)
                yield Token(piece)
            raw = "".join(pieces)
            policy = Policy.from_settings(self.settings)
            t_check = time.perf_counter()
            costs = _Costs()
            ruled = costs.timed("rules", finish, question, raw, passages, Timings(), query, qid, idf, policy)
            state: list | None = [] if self.settings.record_states else None  # the model check's hidden states
            model_yes = costs.timed("model_check", self._model_check, question, ruled, passages, stop_event, state)
            vetoed = with_model_check(ruled, model_yes, policy)
            answer = self._decide(turn, vetoed, raw, passages, idf, policy, usage, stop_event, costs, ruled, state)
            check_s = time.perf_counter() - t_check
        timings = Timings(
            retrieve_ms=turn.retrieve_ms, ttft_s=ttft, total_s=time.perf_counter() - t0,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, check_s=check_s,
            check_ms={k: round(v, 1) for k, v in costs.ms.items()},
        )
        yield Done(replace(self._cited_locations(answer), timings=timings))

    def _decide(self, turn: "_Turn", vetoed: Answer, raw: str, passages, idf, policy: Policy, usage: Usage,
                stop_event, costs: "_Costs", ruled: Answer | None = None, state: list | None = None) -> Answer:
        """The calibrated decision on a reply: its attachable claims, their signals, P(right), the threshold.

        `vetoed` is the rules' own verdict (every rule a veto); it is what is shown when the setting
        `decision` is "vetoes" or no calibrator is loaded, and its reason is one of the signals.
        """
        kept = dict(veto_reason=vetoed.abstain_reason, veto_answer=vetoed.answer)
        if not self.settings.signals and self.calibrator is None:  # nobody reads the signals: none are computed
            return replace(vetoed, **kept)
        loose = costs.timed("attach", finish, turn.question, raw, passages, Timings(), turn.query, turn.qid, idf, policy,
                            attach=True)
        if loose.abstained:  # nothing can be attached: a veto by construction
            return replace(vetoed, signals={}, **kept)
        signals, vector = self._signals(turn, vetoed, loose, raw, passages, usage, stop_event, costs, ruled or vetoed,
                                        state)
        kept["attached_answer"] = loose.answer
        if vector is not None:  # recorded for a probe (eval --hidden-states; eval/probe_study.py)
            from .generation.replay import pack_vector

            kept["check_state"] = pack_vector(vector)
        calibrator = self.calibrator
        if calibrator is None:
            return replace(vetoed, signals=signals, **kept)
        confidence = costs.timed("calibrator", calibrator.probability, signals)
        if self.settings.decision == "vetoes":  # the rules decide; the answer still carries its confidence
            return replace(vetoed, signals=signals, confidence=confidence, **kept)
        threshold = calibrator.threshold(self.settings.max_risk)
        decided = replace(loose, signals=signals, confidence=confidence, model_check=vetoed.model_check, **kept)
        if confidence >= threshold:
            return decided
        against = calibrator.weighed_against(signals)
        reason = (f"confidence {confidence:.2f} is below {threshold:.2f}, the threshold for at most "
                  f"{self.settings.max_risk:.0%} wrong answers; weighed most against it: {against}")
        return replace(decided, answer=NOT_FOUND, abstained=True, citations=(), short_answer="", abstain_reason=reason)

    def _signals(self, turn: "_Turn", vetoed: Answer, loose: Answer, raw: str, passages, usage: Usage,
                 stop_event, costs: "_Costs", ruled: Answer, state: list | None = None):
        """Every signal of `rag.answer.signals` for the attached answer `loose` (`ruled`: the rules' answer before
        the model check's verdict, whose P(yes) and hidden `state` are reused when it is the same claim),
        and the model check's hidden state for that claim (None when it was not read)."""
        from .answer.signals import (embedding_signals, memory_signals, merged, question_term_signals, reply_signals,
                                     retrieval_signals, veto_signals)

        first = first_supported_claim(loose.answer)
        if not ruled.abstained and first_supported_claim(ruled.answer) == first:
            p_yes = vetoed.model_check  # the rules' own claim and passage: asked once
        else:
            state = [] if state is not None else None
            p_yes = costs.timed("p_yes_attached", self._model_check, turn.question, loose, passages, stop_event, state)
        markers = [n for m in find_markers(first) for n in m.numbers]
        number = markers[0] if markers else None  # the passage the first claim cites
        cited = next((c for c in loose.citations if c.marker == number), None)
        span = cited.text if cited else ""
        memory = costs.timed("memory", self._memory_reply, turn.question, stop_event) if self.settings.memory_check else None
        answerable = costs.timed("p_answerable", self._answerability, turn.question, number, passages, stop_event) \
            if self._asks_answerability else None
        choice = costs.timed("sentence_choice", self._sentence_choice, turn, passages, cited, loose.short_answer,
                             stop_event) if self._asks("sentence_choice", "choice_") else {}
        cosines = costs.timed("embeddings", embedding_signals, self.embedder, turn.question, claim_text(first), span) \
            if span else {}
        return merged(
            loose.signals or {}, veto_signals(vetoed.abstain_reason), {"p_yes": p_yes},
            {"p_answerable": answerable} if answerable is not None else {}, choice,
            reply_signals(usage.token_logprobs, raw, loose.short_answer),
            memory_signals(memory, loose.short_answer, span), cosines,
            retrieval_signals(passages, number, turn.best_dense, turn.keyword_overlap),
            question_term_signals(turn.question, next((p for p in passages if p.number == number), None)),
        ), (state[0] if state else None)

    @property
    def _asks_answerability(self) -> bool:
        """The answerability check runs when asked for (eval records it) or when the calibrator weighs it."""
        return self._asks("answerability_check", "p_answerable")

    def _asks(self, setting: str, signal: str) -> bool:
        """Whether an optional check runs: its setting is on, or the calibrator weighs a signal it gives."""
        calibrator = self.calibrator
        return getattr(self.settings, setting) or (
            calibrator is not None and any(n.startswith(signal) for n in calibrator.names))

    def _sentence_choice(self, turn: "_Turn", passages, cited, short: str, stop_event) -> dict[str, float]:
        """The model's constrained choice of the passages' sentence that answers (`signals.choice_signals`)."""
        from .answer.signals import choice_options, choice_signals

        options = choice_options(passages)
        if not options or (stop_event is not None and stop_event.is_set()):
            return {}
        answer_blocks = turn.blocks if turn.blocks is not None else build_blocks(turn.question, passages)
        blocks = build_choice_blocks(turn.question, answer_blocks)
        grounding = Grounding(turn.question, tuple(p.text for p in passages),
                              blocks if self.generator.reuses_passage_states else None)
        shares = self.generator.choice_shares(blocks.messages(), [o[3] for o in options], grounding)
        return choice_signals(shares, options, passages, cited, short)

    def _answerability(self, question: str, number: int | None, passages, stop_event) -> float | None:
        """The model's P(yes) that passage `number` answers the question (no claim in the prompt)."""
        passage = next((p for p in passages if p.number == number), None)
        if passage is None or (stop_event is not None and stop_event.is_set()):
            return None
        blocks = build_answerable_blocks(question, passage.text)
        grounding = Grounding(question, (passage.text,), blocks if self.generator.reuses_passage_states else None)
        return self.generator.yes_probability(blocks.messages(), grounding)

    def _memory_reply(self, question: str, stop_event) -> str | None:
        """The model's answer to the question with no passages at all (a short prompt of its own)."""
        if stop_event is not None and stop_event.is_set():
            return None
        messages = [{"role": "system", "content": MEMORY_SYSTEM},
                    {"role": "user", "content": render(load_prompt("memory.txt"), question=question)}]
        return "".join(self.generator.stream(messages, MEMORY_TOKENS, 0.0, Usage(), stop_event, Grounding(question)))

    @property
    def model_identity(self) -> dict:
        """The models whose signals a calibrator reads: the engine, the generator and the embedder."""
        return {"engine": self.generator.name, "generator": self.settings.generator, "embedder": self.settings.embedder}

    @property
    def calibrator(self):
        """The answer decision's calibrator (setting `calibrator`), loaded once; None when there is none.

        A calibrator fitted on other models' signals means nothing for these: then the vetoes decide,
        with a warning (`python -m rag calibrate` fits one for these models).
        """
        if not hasattr(self, "_calibrator"):
            from .answer.calibration import load_calibrator

            calibrator = load_calibrator(self.settings.calibrator)
            fitted = (calibrator.fitted_on.get("models") or {}) if calibrator is not None else {}
            if fitted and fitted != self.model_identity:
                log.warning("calibrator %s was fitted for %s, not %s: the answer rules decide as vetoes "
                            "(python -m rag calibrate fits one for these models)", self.settings.calibrator, fitted,
                            self.model_identity)
                calibrator = None
            self._calibrator = calibrator
        return self._calibrator

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
        from .ingest.formats import location_at

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

    def _model_check(self, question: str, ruled: Answer, passages: Sequence[Passage], stop_event,
                     state: list | None = None) -> float | None:
        """The model's P(Yes) that the passage cited for the answer states it (the rules judged the rest).

        Asked of the answer the rules keep (its first sentence) and the one passage it cites, in a prompt
        of its own (`prompts/verify_blocks.txt`); with passage states that passage's saved state is
        reused, so only the claim and the instruction are computed.
        """
        if not self.settings.model_check or ruled.abstained:
            return None
        if stop_event is not None and stop_event.is_set():
            return None
        first = first_supported_claim(ruled.answer)
        markers = [n for m in find_markers(first) for n in m.numbers]  # the passage this sentence cites
        passage = next((p for p in passages if markers and p.number == markers[0]), None)
        if passage is None:
            return None
        blocks = build_verify_blocks(claim_text(first), passage.text)
        grounding = Grounding(question, (passage.text,), blocks if self.generator.reuses_passage_states else None)
        # `hidden` only when wanted: engines written before it (a subclass of ours) still work
        extra = {"hidden": state} if state is not None else {}
        return self.generator.yes_probability(blocks.messages(), grounding, **extra)

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


class _Held:
    """Releases a lock acquired beforehand when the block ends (the question counted itself first)."""

    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        return self.lock

    def __exit__(self, *exc):
        self.lock.release()


class _Costs:
    """Milliseconds spent in each part of the answer check (`Timings.check_ms`; `bench` prints them)."""

    def __init__(self):
        self.ms: dict[str, float] = {}

    def timed(self, name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - t0) * 1000


def _final(events: Iterator[Retrieved | Token | Done]) -> Answer:
    """The answer of the Done event that ends a stream."""
    answer = None
    for event in events:
        if isinstance(event, Done):
            answer = event.answer
    assert answer is not None
    return answer


def clean_question(question: str, max_chars: int) -> str:
    """Control characters removed and whitespace trimmed; empty or too long is a QuestionError."""
    if not isinstance(question, str):
        raise QuestionError("the question must be text")
    question = _CONTROL.sub(" ", question).strip()
    if not question:
        raise QuestionError("the question is empty")
    if len(question) > max_chars:
        raise QuestionError(f"the question is {len(question)} characters long; the limit is {max_chars}")
    return question


def _strip_refs(text: str) -> str:
    return re.sub(r"\[\d+\]", "", text)

