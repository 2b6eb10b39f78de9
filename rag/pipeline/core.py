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

import tempfile  # noqa: F401  (used by the docstring example)
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Sequence

from ..answer.answering import Policy, abstain_early, finish, retrieval_evidence, with_model_check
from ..store.embedding import Embedder, make_embedder
from ..generation import Generator, Grounding, Usage, make_generator
from ..language.terms import content_words
from ..records import Answer, Passage, Timings
from ..settings import Settings
from ..store.index import Index, UpdateReport, load_index, settings_signature
from .turn import _ANAPHORA, Reread, Retrieved, Token, Done, _Turn, _Held, _Costs, _final, clean_question, _strip_refs
from .upkeep import IndexUpkeep
from .states import StateWarmup
from .passages import PassageChoice
from .signals import SignalReading
from .checking import AnswerChecking
from .rereading import WiderReading


class Pipeline(IndexUpkeep, StateWarmup, PassageChoice, SignalReading, AnswerChecking, WiderReading):
    """Owns the index and the models; safe to share between threads (generation is serialised).

    Its parts, one class a concern: IndexUpkeep, StateWarmup, PassageChoice, SignalReading, AnswerChecking, WiderReading.
    """

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
            from ..store.milvus.update import MilvusConfig, open_milvus_index

            config = MilvusConfig.from_settings(settings)
            pipeline.index = open_milvus_index(config, embedder, settings.chunk_size, settings.chunk_overlap)
        else:
            pipeline.index = load_index(settings.index_dir, settings_signature(embedder, settings.chunk_size, settings.chunk_overlap))
        return pipeline

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            with self._model_lock:  # two first questions at once must not load the model twice
                if self._generator is None:
                    self._generator = make_generator(self.settings)
        return self._generator

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

    def ask(self, question: str, history: Sequence[tuple[str, str]] = (), qid: str | None = None, **options) -> Answer:
        """Answer one question. Example: `pipeline.ask("What did the UK fund?").answer`."""
        return _final(self.ask_stream(question, history, qid, **options))

    def ask_stream(
        self, question: str, history: Sequence[tuple[str, str]] = (), qid: str | None = None,
        k: int | None = None, max_new_tokens: int | None = None, stop_event: threading.Event | None = None,
        evidence_tokens: int | None = None, exclude: frozenset[str] = frozenset(), only: Sequence[str] = (),
    ) -> Iterator[Retrieved | Token | Reread | Done]:
        """Yield Retrieved, then Token pieces (with `reread_tokens` set and the reply refused: Reread, Token
        pieces of a second, wider reading), then Done with the checked answer.

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
        yield from self._read_widening(turn, passages, index.bm25.idf_of, k, evidence_tokens, scope, max_new_tokens, stop_event)

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
