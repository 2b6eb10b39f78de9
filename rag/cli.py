"""Command line: `python -m rag {index,search,ask,eval,bench,milvus-serve} --help`. Holds no logic of its own."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Sequence

from .errors import RagError
from .options import add_common_options, settings_from_args
from .questions import read_questions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rag", description="Local, cited question answering over a folder of documents.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the index", description="Build the index, or update it: only new or changed documents are embedded.")
    p.add_argument("--rebuild", action="store_true", help="re-embed everything")
    p.add_argument("--states", action="store_true", help="also compute the model's state of every chunk now "
                   "(llama.cpp; otherwise each is computed the first time it is used)")
    add_common_options(p)

    p = sub.add_parser("search", help="retrieval only", description="Show the passages retrieved for a question (no model).")
    p.add_argument("question", nargs="?", help="the question")
    p.add_argument("--k", type=int, help="number of passages (default: 4)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--questions", type=Path, help="JSONL file of {id, question}: with --json, one line of passages per question (retrieval only)")
    _only_option(p)
    add_common_options(p)

    p = sub.add_parser("ask", help="answer a question with citations", description="Answer with a local model, citing the passages used.")
    p.add_argument("question", nargs="?", help="the question")
    p.add_argument("--k", type=int, help="the most passages given to the model (default: 4)")
    p.add_argument("--evidence-tokens", type=int, help="token budget of the passages given to the model "
                   "(default: 800 with passage states, else 560)")
    p.add_argument("--max-new-tokens", type=int, help="answer length limit in tokens (default: 160)")
    p.add_argument("--json", action="store_true", help="print the answer object as JSON")
    p.add_argument("--questions", type=Path, help="JSONL file of {id, question}; one JSON answer per line, in order")
    _only_option(p)
    add_common_options(p)

    p = sub.add_parser("milvus-serve", help="share a Milvus Lite index with other processes",
                       description="Serve the Milvus Lite data file (--milvus-uri, default INDEX/milvus.db) on a port, so that "
                       "several processes (app servers, `rag index`) use it as milvus_uri = http://HOST:PORT. Runs until interrupted.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=19530, help="port (default: 19530)")
    add_common_options(p)

    from .evaluation import bench, calibrate, evaluate  # noqa: F401  (their parsers live beside their code)

    evaluate.add_parser(sub)
    calibrate.add_parser(sub)
    bench.add_parser(sub)
    return parser


def _only_option(p) -> None:
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="search only this document (its name in the folder, or a pattern such as 'reports/*.pdf'); repeat for several")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not args.verbose:
        _quiet_libraries()
    try:
        return args.func(args) if hasattr(args, "func") else COMMANDS[args.command](args)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _quiet_libraries() -> None:
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")


def _pipeline(args, build: bool = True):
    from .pipeline import Pipeline

    pipeline = Pipeline.from_settings(settings_from_args(args), build=build)
    report = pipeline.last_report
    if report is not None:
        for skipped in report.skipped:
            print(f"skipped {skipped.source}: {skipped.reason}", file=sys.stderr)
        for warned in report.warnings:
            print(f"warning {warned.source}: {warned.reason}", file=sys.stderr)
        if report.changed:
            print(f"index: {report.summary()}", file=sys.stderr)
    return pipeline


def cmd_index(args) -> int:
    from .pipeline import Pipeline
    from .store.embedding import make_embedder

    settings = settings_from_args(args)
    pipeline = Pipeline(settings, make_embedder(settings.embedder, Path(settings.cache_dir)))
    with terminal_progress() as progress:
        report = pipeline.update_index(force=args.rebuild, progress=progress)
    for skipped in report.skipped:
        print(f"skipped {skipped.source}: {skipped.reason}")
    for warned in report.warnings:
        print(f"warning {warned.source}: {warned.reason}")
    print(("index up to date: " if not report.changed else "index: ") + report.summary())
    print(pipeline.index.describe())
    if args.states:
        _print_states(pipeline)
    return 0


def _print_states(pipeline) -> None:
    import time

    t0 = time.perf_counter()
    computed = pipeline.precompute_states()
    store = pipeline.generator.state_store
    n = len(pipeline.index.chunks)
    print(f"passage states: {computed} computed, {n - computed} already saved, in {time.perf_counter() - t0:.1f}s; "
          f"{store.mean_state_mb():.1f} MB per chunk on disk in {store.folder}")


@contextmanager
def terminal_progress(stream=None):
    """A progress callback that draws a bar per stage (files read, chunks embedded: count, rate, time
    left) on a terminal; None, and nothing drawn, when the output is not a terminal (pipes, logs, CI)."""
    stream = stream if stream is not None else sys.stderr
    if not stream.isatty():
        yield None
        return
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=f"{'reading' if stage == 'files' else 'embedding'}",
                                     unit=f" {stage}", file=stream, leave=True, dynamic_ncols=True)
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield progress
    finally:
        for bar in bars.values():
            bar.close()


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _batch(rows: list[dict], handle: Callable[[str, str | None], dict]) -> int:
    """One JSON line per row, in order: `handle(question, id)`, or `{id, question, error}` for a bad question."""
    from .errors import QuestionError

    for row in rows:
        qid = None if row.get("id") is None else str(row["id"])
        try:
            _emit(handle(row["question"], qid))
        except QuestionError as e:  # one bad line does not stop the batch
            _emit({"id": qid, "question": row["question"], "error": str(e)})
    return 0


def _answer_batch(pipeline, rows: list[dict], only: Sequence[str] = ()) -> int:
    """`ask --json --questions`: the full answer object per question."""
    return _batch(rows, lambda question, qid: pipeline.ask(question, qid=qid, only=only).to_json())


def _search_batch(pipeline, rows: list[dict], k: int | None, only: Sequence[str] = ()) -> int:
    """`search --json --questions`: retrieval only (the model is never loaded), `{id, question, passages}` per line."""
    from .records import hit_json

    def search(question: str, qid: str | None) -> dict:
        return {"id": qid, "question": question, "passages": [hit_json(h) for h in pipeline.search(question, k, only)]}

    return _batch(rows, search)


def _check_input_first(args) -> list[dict] | None:
    """Refuse a bad question or questions file before spending seconds on the index and models."""
    from .pipeline import clean_question

    if args.questions:
        if not args.json:
            raise RagError("--questions needs --json")
        return list(read_questions(args.questions))
    if args.question is None:
        raise RagError("give a question (or --questions FILE.jsonl)")
    clean_question(args.question, settings_from_args(args).max_question_chars)
    return None


def cmd_search(args) -> int:
    from .records import hit_json

    rows = _check_input_first(args)
    pipeline = _pipeline(args)
    if rows is not None:
        return _search_batch(pipeline, rows, args.k, args.only)
    hits = pipeline.search(args.question, args.k, args.only)
    if args.json:
        _emit({"question": args.question, "passages": [hit_json(h) for h in hits]})
        return 0
    for h in hits:
        dense = f"{h.dense_score:.3f}" if h.dense_score is not None else "-"
        print(f"[{h.rank}] {h.chunk.source} {h.chunk.start}-{h.chunk.end}  score={h.score:.4f} cos={dense} bm25={h.keyword_score or 0:.2f}")
        print("    " + h.chunk.text[:300].replace("\n", " ") + ("…" if len(h.chunk.text) > 300 else ""))
    return 0


def cmd_ask(args) -> int:
    from .pipeline import Done, Reread, Token

    rows = _check_input_first(args)
    pipeline = _pipeline(args)
    if rows is not None:
        return _answer_batch(pipeline, rows, args.only)
    if args.json:
        _emit(pipeline.ask(args.question, only=args.only).to_json())
        return 0
    answer = None
    for event in pipeline.ask_stream(args.question, only=args.only):
        if isinstance(event, Token):
            print(event.text, end="", flush=True, file=sys.stderr)
        elif isinstance(event, Reread):
            print(f"\n[not kept ({event.reason}); reading {len(event.passages)} passages]", file=sys.stderr)
        elif isinstance(event, Done):
            answer = event.answer
    print(file=sys.stderr)
    print_answer(answer)
    return 0


def print_answer(answer) -> None:
    print()
    if answer.abstained:
        print(f"{answer.answer}  ({answer.abstain_reason})")
    else:
        if answer.short_answer:
            print(f"Short answer: {answer.short_answer}")
        print(answer.answer)
        if answer.confidence is not None:
            print(f"  confidence {answer.confidence:.2f} (the calibrated P that this answer is right)")
    for c in answer.citations:
        print(f"  [{c.marker}] {c.source} {c.start}-{c.end}: \"{c.text}\"")
    for u in answer.unsupported:
        print(f"  removed (no passage states it: {u.reason}): \"{u.claim}\"")
    t = answer.timings
    ttft = f"{t.ttft_s:.2f}s" if t.ttft_s is not None else "-"
    print(f"  (retrieval {t.retrieve_ms:.0f} ms, first token {ttft}, total {t.total_s:.2f}s, {t.prompt_tokens} prompt tokens)")


def cmd_milvus_serve(args) -> int:
    from .store.milvus import connect as milvus_conn

    settings = settings_from_args(args)
    uri = milvus_conn.resolve_uri(settings.milvus_uri, settings.index_dir)
    if not milvus_conn.is_lite(uri):
        raise RagError(f"milvus-serve serves a Milvus Lite file; {uri} is already a server")
    print(f"serving {uri} as http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    milvus_conn.serve_lite(uri, args.host, args.port)
    return 0


COMMANDS = {"index": cmd_index, "search": cmd_search, "ask": cmd_ask, "milvus-serve": cmd_milvus_serve}
