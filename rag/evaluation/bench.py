"""`python -m rag bench`: speed and memory on this machine, next to the floors they are bound by.

Every figure is measured in one run: our pipeline next to the raw engine on the same prompt, and
next to a naive pipeline (4 whole chunks of 1,000 characters pasted into the prompt).
"""

from __future__ import annotations

import json
import logging
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import RagError
from ..options import add_common_options, settings_from_args
from ..questions import QUESTIONS_FILE, folder_questions, question_texts

log = logging.getLogger(__name__)

NAIVE_CHUNK, NAIVE_K = 1000, 4
TITLE_QUESTIONS = 4  # questions made from document titles when a folder brings none


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="measure speed and memory", description="Benchmark indexing, retrieval and generation on the documents folder.")
    p.add_argument("--questions", type=Path, help=f"JSONL file of {{\"question\": ...}} to ask (default: {QUESTIONS_FILE} in the "
                   "documents folder, else questions made from the document titles)")
    p.add_argument("--json", dest="json_out", type=Path, help="write the figures here")
    p.add_argument("--scale-chunks", type=int, default=100_000, help="size of the synthetic corpus for the scale test (0 = skip)")
    p.add_argument("--cold-chunks", type=int, default=500, help="corpus size for the cold / warm / after-upload time to "
                   "first token (passage states; 0 = skip)")
    p.add_argument("--repeats", type=int, default=3, help="repeats of each timing (median is reported)")
    p.add_argument("--scale-only", action="store_true", help="only the scale test (no models loaded, no questions asked)")
    add_common_options(p)
    p.set_defaults(func=run_bench)


def run_bench(args) -> int:
    settings = settings_from_args(args)
    out: dict = {} if args.scale_only else bench_seeds(settings, args)
    if args.scale_chunks:
        out.update(bench_scale(args.scale_chunks, settings.docs_dir, settings if settings.store == "milvus" else None))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print_table(out)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json_out}")
    return 0


def bench_seeds(settings, args) -> dict:
    """Index build, retrieval and answers on the documents folder with the configured models."""
    from ..store.embedding import make_embedder

    questions, source = bench_questions(settings.docs_dir, args.questions)
    print_questions(questions, source, settings.docs_dir)
    embedder = make_embedder(settings.embedder, Path(settings.cache_dir))
    embedder.embed(["warm up"])  # model load is not indexing time
    out: dict = {"bench_questions": questions, "questions_from": source}
    with tempfile.TemporaryDirectory() as tmp:
        out.update(bench_index(settings, embedder, Path(tmp), args.repeats))
        pipeline = _pipeline(settings, embedder, Path(tmp) / "index")
        out.update(bench_retrieval(pipeline, questions))
        out.update(bench_answers(pipeline, Path(tmp), questions))
        if getattr(args, "cold_chunks", 0) and pipeline.generator.reuses_passage_states:
            out.update(bench_upload(settings, embedder, Path(tmp), args.cold_chunks, questions, pipeline.generator))
    return out


def bench_upload(settings, embedder, tmp: Path, n_chunks: int, questions: list[str], generator=None) -> dict:
    """Time to first token on a corpus of at least `n_chunks`: cold (no passage state saved), warm (the
    same questions again), and after an upload whose new chunks' states were computed as the page does
    in the background (`Pipeline.warm_states`), for the questions the uploaded document answers.

    The documents folder's last document is the upload; the others and synthetic filler are the corpus.
    A question belongs to the upload when its best passage, over the whole folder, is in that document.
    """
    import shutil

    from ..ingest.documents import list_files, source_name
    from ..pipeline import Pipeline
    from ..retrieval.hybrid import HybridRetriever
    from ..store.index import update_index

    files = list_files(Path(settings.docs_dir))
    if len(files) < 2:
        return {}
    late = files[-1]
    late_name = source_name(Path(settings.docs_dir), late)
    split, _ = update_index(Path(settings.docs_dir), tmp / "split-index", embedder, settings.chunk_size, settings.chunk_overlap)
    about = {q: HybridRetriever(split, embedder).search(q, 1)[0].chunk.source == late_name for q in questions}
    folder = _upload_corpus(settings, files[:-1], tmp / "cold" / "docs", n_chunks)
    pipeline = Pipeline.from_settings(settings.replace(docs_dir=folder, index_dir=tmp / "cold" / "index"),
                                      generator=generator)
    pipeline.warm_up()
    old = [q for q in questions if not about[q]]
    cold = _cold_ttft(pipeline, old)["cold_ttft_s"] if old else None
    _warm_the_rest(pipeline, old, None)
    # warm: their states saved, each asked after another question (so not its own prompt's cached prefix)
    warm = [pipeline.ask(q).timings.ttft_s for q in old[1:] + old[:1]]
    shutil.copy(late, folder / late_name.replace("/", "_"))
    pipeline.update_index()
    _warm_the_rest(pipeline, questions, late_name.replace("/", "_"))
    t0 = time.perf_counter()
    computed = pipeline.warm_states({late_name.replace("/", "_")})
    warm_states_s = time.perf_counter() - t0
    store = getattr(pipeline.generator, "state_store", None)
    misses = store.stats.misses if store is not None else 0
    new = [q for q in questions if about[q]]
    after = [pipeline.ask(q).timings.ttft_s for q in new]
    missed = store.stats.misses - misses if store is not None else 0
    # the same questions warm (asked again, each after another one): the fair comparison, same lengths
    after_warm = [pipeline.ask(q).timings.ttft_s for q in new[1:] + new[:1]]
    med = lambda xs: statistics.median([x for x in xs if x is not None]) if any(x is not None for x in xs) else None  # noqa: E731
    out = {"upload_corpus_chunks": len(pipeline.index.chunks), "upload_cold_ttft_s": cold, "upload_warm_ttft_s": med(warm),
           "upload_after_state_misses": missed,
           "upload_after_ttft_s": med(after), "upload_states_s": warm_states_s, "upload_states_computed": computed,
           "upload_questions": [len(old), len(after)]}
    out["upload_after_warm_ttft_s"] = med(after_warm)
    if out["upload_after_ttft_s"] and out["upload_after_warm_ttft_s"]:
        out["upload_after_vs_warm"] = out["upload_after_ttft_s"] / out["upload_after_warm_ttft_s"]
    return out


def _upload_corpus(settings, files: list[Path], folder: Path, n_chunks: int) -> Path:
    """A documents folder of `files` (the corpus before the upload) and synthetic filler of at least
    `n_chunks` chunks, each paragraph at least a chunk long."""
    import shutil

    from ..ingest.documents import source_name

    folder.mkdir(parents=True)
    for f in files:
        shutil.copy(f, folder / source_name(Path(settings.docs_dir), f).replace("/", "_"))
    rng = random.Random(1)
    sentences = _sentences(Path(settings.docs_dir))
    paragraphs = []
    for i in range(n_chunks):
        text = _synthetic_paragraph(rng, sentences, f"Filler {i}.")
        while len(text) < settings.chunk_size:
            text += " " + _synthetic_paragraph(rng, sentences, "")
        paragraphs.append(text)
    for f in range(0, n_chunks, 100):
        (folder / f"filler{f // 100:03d}.txt").write_text("\n\n".join(paragraphs[f:f + 100]), encoding="utf-8")
    return folder


def bench_questions(docs_dir: Path, path: Path | None = None) -> tuple[list[str], str]:
    """The questions to ask and what they came from: a file, or "document titles".

    `path` if given, else the folder's own questions.jsonl; a folder without one gets questions made
    from its document titles rather than another folder's questions (the seeds' would find nothing).
    """
    from ..ingest.documents import load_folder

    path = path or (docs_dir / QUESTIONS_FILE if folder_questions(docs_dir) else None)
    if path is not None:
        questions = question_texts(path)
        if not questions:
            raise RagError(f"{path} has no questions")
        return questions, str(path)
    docs, _ = load_folder(docs_dir)
    if not docs:
        raise RagError(f"no documents in {docs_dir} to make bench questions from; pass --questions FILE.jsonl")
    return [f"What does the document say about {d.title}?" for d in docs[:TITLE_QUESTIONS]], "document titles"


def print_questions(questions: list[str], source: str, docs_dir: Path) -> None:
    """Say which questions this run measures (they decide the answer figures)."""
    if source == "document titles":
        print(f"bench questions ({len(questions)}, made from the document titles: no {QUESTIONS_FILE} in {docs_dir}; "
              "pass --questions FILE.jsonl to choose):")
    else:
        print(f"bench questions ({len(questions)}, from {source}):")
    for q in questions:
        print(f"  {q}")


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_index(settings, embedder, tmp: Path, repeats: int) -> dict:
    """Full build vs raw encode of the same chunk texts; then an unchanged re-index."""
    from ..ingest.chunking import chunk_document
    from ..ingest.documents import load_folder
    from ..store.index import update_index

    docs, _ = load_folder(settings.docs_dir)
    texts = [c.text for d in docs for c in chunk_document(d, settings.chunk_size, settings.chunk_overlap)]
    encode_s = _median_time(lambda: embedder.embed(texts), repeats)
    counter = iter(range(10_000))

    def build():
        update_index(settings.docs_dir, tmp / f"build-{next(counter)}", embedder, settings.chunk_size, settings.chunk_overlap)

    build_s = _median_time(build, repeats)
    update_index(settings.docs_dir, tmp / "index", embedder, settings.chunk_size, settings.chunk_overlap)
    reindex_s = _median_time(
        lambda: update_index(settings.docs_dir, tmp / "index", embedder, settings.chunk_size, settings.chunk_overlap), repeats)
    return {
        "chunks": len(texts), "index_build_s": build_s, "index_chunks_per_s": len(texts) / build_s,
        "raw_encode_s": encode_s, "raw_encode_chunks_per_s": len(texts) / encode_s,
        "index_vs_encode_ratio": encode_s / build_s, "reindex_unchanged_s": reindex_s,
    }


def _pipeline(settings, embedder, index_dir: Path):
    from ..pipeline import Pipeline

    p = Pipeline(settings.replace(index_dir=index_dir), embedder)
    p.update_index()
    return p


def bench_retrieval(pipeline, questions: list[str], rounds: int = 25) -> dict:
    times = []
    for _ in range(rounds):
        for q in questions:
            t0 = time.perf_counter()
            pipeline.search(q)
            times.append((time.perf_counter() - t0) * 1000)
    return {"retrieve_p50_ms": float(np.percentile(times, 50)), "retrieve_p95_ms": float(np.percentile(times, 95))}


def bench_answers(pipeline, tmp: Path, questions: list[str]) -> dict:
    """Our pipeline, the raw engine on the same prompts, and the naive pipeline, question by question."""

    pipeline.warm_up()
    out: dict = {"engine": pipeline.generator.name, "passage_states": pipeline.generator.reuses_passage_states}
    if pipeline.generator.reuses_passage_states:
        out.update(_cold_ttft(pipeline, questions))
        out.update(_bench_states(pipeline))
    store = getattr(pipeline.generator, "state_store", None)
    hits_before = (store.stats.hits, store.stats.misses) if store is not None else (0, 0)
    ours, raw, naive = [], [], []
    for q in questions:
        a = pipeline.ask(q)
        ours.append({"ttft_s": a.timings.ttft_s, "total_s": a.timings.total_s, "prompt_tokens": a.timings.prompt_tokens,
                     "tokens_per_s": a.timings.tokens_per_s, "check_s": a.timings.check_s,
                     **{f"check_ms_{k}": v for k, v in (a.timings.check_ms or {}).items()}})
        raw.append(_raw_engine(pipeline, q))
    if store is not None:
        hits, misses = store.stats.hits - hits_before[0], store.stats.misses - hits_before[1]
        out["state_hit_rate"] = hits / (hits + misses) if hits + misses else None
    naive_pipeline = _naive(pipeline, tmp)
    for q in questions:
        a = naive_pipeline.ask(q)
        naive.append({"ttft_s": a.timings.ttft_s, "prompt_tokens": a.timings.prompt_tokens})
    med = lambda rows, key: statistics.median([r[key] for r in rows if r.get(key) is not None] or [float("nan")])  # noqa: E731
    out.update({
        "questions": len(questions),
        "ttft_s": med(ours, "ttft_s"), "total_s": med(ours, "total_s"), "prompt_tokens": med(ours, "prompt_tokens"),
        "gen_tokens_per_s": med(ours, "tokens_per_s"), "raw_gen_tokens_per_s": med(raw, "tokens_per_s"),
        "raw_ttft_s": med(raw, "ttft_s"), "check_s": med(ours, "check_s"),
        # each part of the answer check (rules, model check, the decision's signals), median over the questions using it
        "check_ms": {k[len("check_ms_"):]: med(ours, k) for k in sorted({k for r in ours for k in r if k.startswith("check_ms_")})},
        "naive_ttft_s": med(naive, "ttft_s"), "naive_prompt_tokens": med(naive, "prompt_tokens"),
    })
    out["ttft_vs_naive"] = out["ttft_s"] / out["naive_ttft_s"]
    if pipeline.generator.name == "llama_cpp":
        out.update(decode_passes(pipeline, questions[0]))
    return out


def decode_passes(pipeline, question: str, sizes=(1, 2, 3, 4, 5, 6, 8), repeats: int = 15, warm: int = 3) -> dict:
    """What one forward pass over n new tokens costs behind a real prompt, and from that the most any
    drafting scheme (prompt lookup, a draft model) could gain: a step checking k drafted tokens costs a
    pass over k + 1 tokens and yields at most k + 1, so the speed-up is at most (k + 1) * pass(1) / pass(k + 1)."""
    from ..generation.lookup_decoding import LookupDecoder

    messages, _, _ = pipeline.prompt_for(question)
    llm = pipeline.generator.llm
    prompt = llm.tokenize(messages[-1]["content"].encode("utf-8"))  # a real prompt's length and text
    decoder = LookupDecoder(llm)
    decoder.decode(prompt, 1)
    base = llm.n_tokens
    times: dict[int, list[float]] = {n: [] for n in sizes}
    for r in range(warm + repeats):  # sizes interleaved, so a slow moment of the machine hits them all
        for n in sizes:
            t0 = time.perf_counter()
            decoder.decode(prompt[r : r + n], n)
            if r >= warm:
                times[n].append(time.perf_counter() - t0)
            decoder.drop_after(base)
    pass_ms = {n: statistics.median(ts) * 1000 for n, ts in times.items()}
    bound = {k: (k + 1) * pass_ms[1] / pass_ms[k + 1] for k in range(1, max(sizes)) if k + 1 in pass_ms}
    llm.reset()  # the cache no longer holds a prompt of the pipeline's: start clean
    return {"pass_ms": pass_ms, "draft_speedup_bound": max(bound.values()), "draft_speedup_bound_k": max(bound, key=bound.get)}


def _warm_the_rest(pipeline, questions: list[str], upload: str | None) -> None:
    """The corpus before the upload as a user who has asked before (or ran `rag index --states`) has
    it: the states of the other documents' chunks these questions' prompts use are saved. Without this,
    the after-upload figure would count blocks of old documents that the cold measurement emptied."""
    from ..answer.prompting import block_texts, load_prompt

    texts = []
    for q in questions:
        for passage in pipeline.prompt_for(q)[1]:
            if passage.hit.chunk.source != upload:
                texts.append(passage.text)
    head, blocks = block_texts(list(dict.fromkeys(texts)))
    pipeline.generator.precompute_states(load_prompt("system.txt").strip(), head, blocks)


def _cold_ttft(pipeline, questions: list[str]) -> dict:
    """Time to first token on a cold corpus: each question asked with no saved passage state at all
    (as right after an upload, before the background warm-up), the store emptied before each."""
    times = []
    for q in questions:
        store = getattr(pipeline.generator, "state_store", None)
        if store is not None:
            store.clear()
        times.append(pipeline.ask(q).timings.ttft_s)
    store = getattr(pipeline.generator, "state_store", None)
    if store is not None:
        store.clear()
    times = [t for t in times if t is not None]
    return {"cold_ttft_s": statistics.median(times) if times else None}


def _bench_states(pipeline) -> dict:
    """Every chunk's passage state computed and saved (what `rag index --states` does), timed."""
    t0 = time.perf_counter()
    computed = pipeline.precompute_states()
    build_s = time.perf_counter() - t0
    return {"cache_build_s": build_s, "cache_states_computed": computed,
            "cache_mb_per_chunk": pipeline.generator.state_store.mean_state_mb(),
            "cache_build_s_per_chunk": build_s / max(computed, 1)}


def _raw_engine(pipeline, question: str) -> dict:
    """The engine alone on the prompt our pipeline built for `question`: prefilled whole (no passage
    states) and decoded plainly (no prompt lookup), the same cache state otherwise."""
    from ..generation import Grounding, Usage

    messages, passages, blocks = pipeline.prompt_for(question)
    usage, t0, first = Usage(), time.perf_counter(), None
    grounding = Grounding(question, tuple(p.text for p in passages), blocks)
    engine = pipeline.generator.without_passage_states()
    for _ in engine.stream(messages, pipeline.settings.max_new_tokens, 0.0, usage, grounding=grounding):
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    n = usage.completion_tokens
    return {"ttft_s": (first or end) - t0, "tokens_per_s": (n - 1) / (end - first) if first and n > 1 and end > first else None}


def _naive(pipeline, tmp: Path):
    """Same models; whole 1,000-character chunks, 4 of them, pasted into the prompt and prefilled whole."""
    from ..pipeline import Pipeline

    s = pipeline.settings.replace(chunk_size=NAIVE_CHUNK, chunk_overlap=0, top_k=NAIVE_K, passage_chars=NAIVE_CHUNK,
                                  max_passages=NAIVE_K, evidence_tokens_windows=100_000, term_weight=0.0,
                                  max_per_source=0, near_duplicate=0.0, index_dir=tmp / "naive-index")
    p = Pipeline(s, pipeline.embedder, generator=pipeline.generator.without_passage_states())
    p.update_index()
    return p


def bench_scale(n_chunks: int, docs_dir: Path, milvus_settings=None, queries: int = 200) -> dict:
    """A synthetic corpus of `n_chunks` chunks (sentences of the seed documents, shuffled into new
    chunks), embedded with the hashing embedder so the build takes seconds, not an hour: this
    measures the index and retrieval machinery at scale, not embedding quality. With Milvus settings,
    the same corpus is also built and searched on Milvus, in the same run."""
    from ..store.embedding import HashingEmbedder
    from ..retrieval.hybrid import HybridRetriever
    from ..store.index import load_index, update_index

    rng = random.Random(0)
    embedder = HashingEmbedder(384)
    with tempfile.TemporaryDirectory() as tmp:
        folder, sentences = _synthetic_corpus(Path(tmp), n_chunks, docs_dir, rng)
        t0 = time.perf_counter()
        update_index(folder, Path(tmp) / "index", embedder, chunk_size=800, chunk_overlap=0)
        build_s = time.perf_counter() - t0
        index = load_index(Path(tmp) / "index")
        qs = [rng.choice(sentences)[:80] for _ in range(queries)]
        out = {"scale_chunks": len(index.chunks), "scale_index_type": index.vector_index.kind, "scale_build_s": build_s}
        out.update(_scale_search("scale", HybridRetriever(index, embedder), index, qs,
                                 lambda qv: index.vector_index.search(qv, 10)[0]))
        if milvus_settings is not None:
            out.update(_scale_milvus(milvus_settings, folder, Path(tmp), embedder, index, qs))
        return out


def _sentences(docs_dir: Path) -> list[str]:
    """Every sentence of the documents folder (what synthetic filler is made of)."""
    from ..ingest.documents import load_folder
    from ..language.text import sentence_spans

    docs, _ = load_folder(docs_dir)
    return [d.text[s:e] for d in docs for s, e in sentence_spans(d.text)]


def _synthetic_corpus(tmp: Path, n_chunks: int, docs_dir: Path, rng: random.Random) -> tuple[Path, list[str]]:
    sentences = _sentences(docs_dir)
    folder = tmp / "docs"
    folder.mkdir()
    per_file = 1000
    for f in range(max(n_chunks // per_file, 1)):
        chunks = [_synthetic_paragraph(rng, sentences, f"Item {f}-{i}.") for i in range(per_file)]
        (folder / f"doc{f:04d}.txt").write_text("\n\n".join(chunks), encoding="utf-8")
    return folder, sentences


def _scale_search(prefix: str, retriever, exact_index, qs: list[str], dense_top10) -> dict:
    """Hybrid retrieval latency, and recall@10 of the dense search against exact search over the same vectors."""
    retriever.search(qs[0], 4)  # BM25 built (or loaded) on first use
    times, recall_hits = [], 0
    for q in qs:
        t1 = time.perf_counter()
        retriever.search(q, 4)
        times.append((time.perf_counter() - t1) * 1000)
        qv = retriever.embedder.embed_query(q)
        exact = exact_index.vectors @ qv
        tenth = np.partition(exact, -10)[-10]  # ties make id sets ambiguous: compare scores
        recall_hits += int(sum(exact[i] >= tenth - 1e-6 for i in dense_top10(qv)))
    return {
        f"{prefix}_retrieve_p50_ms": float(np.percentile(times, 50)), f"{prefix}_retrieve_p95_ms": float(np.percentile(times, 95)),
        f"{prefix}_recall_at_10_vs_exact": recall_hits / (10 * len(qs)),
    }


def _scale_milvus(settings, folder: Path, tmp: Path, embedder, faiss_index, qs: list[str]) -> dict:
    """The same corpus on Milvus (a temporary Milvus Lite, or `<collection>_bench` on the server named)."""
    from ..store.milvus.update import MilvusConfig, update_milvus_index
    from ..retrieval.hybrid import HybridRetriever

    config = MilvusConfig.from_settings(settings.replace(index_dir=tmp / "milvus", milvus_collection=settings.milvus_collection + "_bench"))
    t0 = time.perf_counter()
    index, _ = update_milvus_index(folder, embedder, 800, 0, config, force=True)
    build_s = time.perf_counter() - t0
    rows = {(c.source, c.start, c.id): i for i, c in enumerate(faiss_index.chunks)}
    out = {"milvus_chunks": index.size, "milvus_index_type": index.manifest["vector_index"], "milvus_keyword": index.keyword_mode,
           "milvus_uri": config.uri if settings.milvus_uri else "Milvus Lite (temporary)", "milvus_build_s": build_s}
    out.update(_scale_search("milvus", HybridRetriever(index, embedder), faiss_index, qs,
                             lambda qv: [rows[k] for k in index.candidates("", qv, 10).dense_ids]))
    if settings.milvus_uri:
        from ..store.milvus import update as milvus_store

        milvus_store._drop(index.client, config)
    else:  # Milvus Lite: what its files take on disk, for the sizing table of docs/scale-out.md
        out["milvus_disk_bytes"] = sum(f.stat().st_size for f in (tmp / "milvus").rglob("*") if f.is_file())
    return out


def _synthetic_paragraph(rng: random.Random, sentences: list[str], tag: str) -> str:
    """420-790 characters: two never fit one 800-character chunk, so one paragraph = one chunk."""
    text = tag
    while len(text) < 420:
        text += " " + rng.choice(sentences)
    return text[:790].rsplit(" ", 1)[0] if len(text) > 790 else text


def print_table(out: dict) -> None:
    rows = [] if "index_build_s" not in out else [
        ("index build (seeds)", f"{out.get('index_build_s', 0):.3f} s, {out.get('index_chunks_per_s', 0):.1f} chunks/s"),
        ("raw encode, same chunks", f"{out.get('raw_encode_s', 0):.3f} s, {out.get('raw_encode_chunks_per_s', 0):.1f} chunks/s (ratio {out.get('index_vs_encode_ratio', 0):.2f})"),
        ("re-index, nothing changed", f"{out.get('reindex_unchanged_s', 0) * 1000:.1f} ms"),
        ("retrieval p50 / p95", f"{out.get('retrieve_p50_ms', 0):.1f} / {out.get('retrieve_p95_ms', 0):.1f} ms"),
        ("prompt tokens: ours / naive", f"{out.get('prompt_tokens', 0):.0f} / {out.get('naive_prompt_tokens', 0):.0f}"),
        ("time to first token: ours / naive", f"{out.get('ttft_s', 0):.2f} / {out.get('naive_ttft_s', 0):.2f} s (ratio {out.get('ttft_vs_naive', 0):.2f})"),
        *([("time to first token: cold / warm", f"{out['cold_ttft_s']:.2f} / {out.get('ttft_s', 0):.2f} s (cold: no passage "
            "state saved yet, as right after an upload)")] if out.get("cold_ttft_s") is not None else []),
        ("generation: ours / raw engine", f"{out.get('gen_tokens_per_s', 0):.1f} / {out.get('raw_gen_tokens_per_s', 0):.1f} tokens/s"),
        ("answer total (median)", f"{out.get('total_s', 0):.2f} s"),
        ("answer check (median)", f"{out.get('check_s', 0):.2f} s: " + ", ".join(
            f"{k} {v:.0f} ms" for k, v in (out.get("check_ms") or {}).items())),
    ]
    if "pass_ms" in out:
        rows += [
            ("one pass over n new tokens", ", ".join(f"{n}: {ms:.0f} ms" for n, ms in out["pass_ms"].items())),
            ("drafting: most it could gain", f"{out['draft_speedup_bound']:.2f} x (k = {out['draft_speedup_bound_k']} drafted tokens, "
             "every one accepted, drafts free)"),
        ]
    if "upload_corpus_chunks" in out:
        f = lambda x: f"{x:.2f}" if x is not None else "-"  # noqa: E731
        n_old, n_new = out["upload_questions"]
        rows += [
            (f"TTFT over {out['upload_corpus_chunks']} chunks", f"cold {f(out['upload_cold_ttft_s'])} s, warm "
             f"{f(out['upload_warm_ttft_s'])} s ({n_old} questions); after an upload and its background states "
             f"{f(out['upload_after_ttft_s'])} s, the same questions warm {f(out.get('upload_after_warm_ttft_s'))} s "
             f"({n_new} questions; ratio {f(out.get('upload_after_vs_warm'))}; {out['upload_after_state_misses']} states missed)"),
            ("upload: background states", f"{out['upload_states_computed']} computed in {out['upload_states_s']:.1f} s"),
        ]
    if "cache_build_s" in out:
        rows += [
            ("passage states: build (all chunks)", f"{out['cache_build_s']:.1f} s ({out['cache_build_s_per_chunk']:.2f} s per chunk computed, "
             f"{out['cache_states_computed']} computed); index build {out.get('index_build_s', 0):.1f} s"),
            ("passage states: size, hit rate", f"{out['cache_mb_per_chunk']:.1f} MB per chunk; hit rate {out.get('state_hit_rate') or 0:.2f}"),
        ]
    if "scale_chunks" in out:
        rows += [
            (f"scale: {out['scale_chunks']} chunks ({out['scale_index_type']})", f"build {out['scale_build_s']:.1f} s ({out['scale_chunks'] / out['scale_build_s']:.0f} chunks/s), retrieval p50 {out['scale_retrieve_p50_ms']:.1f} ms / p95 {out['scale_retrieve_p95_ms']:.1f} ms"),
            ("scale: recall@10 vs exact", f"{out['scale_recall_at_10_vs_exact']:.3f}"),
        ]
    if "milvus_chunks" in out:
        rows += [
            (f"scale on Milvus: {out['milvus_chunks']} chunks ({out['milvus_index_type']}, {out['milvus_uri']})",
             f"build {out['milvus_build_s']:.1f} s ({out['milvus_chunks'] / out['milvus_build_s']:.0f} chunks/s), "
             f"retrieval p50 {out['milvus_retrieve_p50_ms']:.1f} ms / p95 {out['milvus_retrieve_p95_ms']:.1f} ms"),
            ("scale on Milvus: recall@10 vs exact", f"{out['milvus_recall_at_10_vs_exact']:.3f} (keyword search: {out['milvus_keyword']})"),
            *([("scale on Milvus: on disk", f"{out['milvus_disk_bytes'] / 1e6:.0f} MB, {out['milvus_disk_bytes'] / out['milvus_chunks']:.0f} bytes a chunk")]
              if "milvus_disk_bytes" in out else []),
        ]
    rows.append(("peak RSS", f"{out.get('peak_rss_mb', 0):.0f} MB"))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
