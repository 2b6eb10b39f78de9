"""`python -m rag eval`: retrieval, answer, citation, abstention and speed metrics on a JSONL set.

The question format is the one of shared/eval/README.md:
{"id", "question", "answers": [...], "sources": [...], "answerable": bool}.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .citations import SUPPORT_THRESHOLD, strip_markers, support
from .errors import RagError
from .metrics import alce_correct, exact_match, percentile, precision_recall, reciprocal_rank, token_f1
from .text import normalize_answer

RETRIEVAL_DEPTH = 10  # MRR@10


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    sources: frozenset[str]
    answerable: bool


def add_parser(sub, common) -> None:
    p = sub.add_parser("eval", help="measure retrieval, answers, citations, abstention, speed",
                       description="Evaluate the full pipeline on a JSONL question set (see shared/eval/README.md).")
    p.add_argument("--qa", type=Path, required=True, help="JSONL questions with answers and sources")
    p.add_argument("--limit", type=int, help="answer a random sample of N questions (retrieval uses all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    p.add_argument("--json", dest="json_out", type=Path, help="write the summary and per-question records here")
    p.add_argument("--retrieval-only", action="store_true", help="skip generation (fast)")
    p.add_argument("--k", type=int, help="passages given to the model (default: 4)")
    common(p)
    p.set_defaults(func=run_eval)


def load_questions(path: Path) -> list[Question]:
    from .cli import read_questions

    out = []
    for row in read_questions(path):
        answerable = bool(row.get("answerable", True))
        out.append(Question(str(row.get("id", len(out))), row["question"], tuple(row.get("answers") or ()),
                            frozenset(row.get("sources") or ()), answerable))
    return out


def default_index_dir(settings, docs: Path) -> Path:
    """An index folder per documents folder, under the cache (eval sets may live on read-only disks)."""
    digest = hashlib.sha256(str(docs.resolve()).encode()).hexdigest()[:10]
    return Path(settings.cache_dir) / "eval-indexes" / f"{docs.name}-{digest}"


def run_eval(args) -> int:
    from .cli import settings_from_args
    from .pipeline import Pipeline

    settings = settings_from_args(args)
    if args.docs is None:
        raise RagError("eval needs --docs DIR")
    if args.index is None:
        settings = settings.replace(index_dir=default_index_dir(settings, args.docs))
    questions = load_questions(args.qa)
    if not questions:
        raise RagError(f"no questions in {args.qa}")
    pipeline = Pipeline.from_settings(settings)
    retrieval = retrieval_records(pipeline, questions)
    sample = questions if not args.limit or args.limit >= len(questions) else random.Random(args.seed).sample(questions, args.limit)
    answers = [] if args.retrieval_only else answer_records(pipeline, sample)
    summary = summarize(retrieval, answers)
    summary["settings"] = {"qa": str(args.qa), "docs": str(args.docs), "limit": args.limit, "seed": args.seed,
                           "top_k": settings.top_k, "chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap,
                           "engine": pipeline.generator.name if answers else None,
                           "generator": settings.generator, "embedder": settings.embedder}
    print_summary(summary)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"summary": summary, "retrieval": retrieval, "answers": answers}, indent=1, ensure_ascii=False))
        print(f"wrote {args.json_out}")
    return 0


def _progress(items, desc: str):
    try:
        from tqdm import tqdm

        return tqdm(items, desc=desc, file=sys.stderr, leave=False)
    except ImportError:
        return items


def retrieval_records(pipeline, questions: list[Question]) -> list[dict]:
    records = []
    for q in _progress(questions, "retrieval"):
        if not q.answerable:
            continue
        hits = pipeline.search(q.question, RETRIEVAL_DEPTH)
        rank, rr = reciprocal_rank([h.chunk.source for h in hits], set(q.sources))
        records.append({"id": q.id, "rank": rank, "rr": rr})
    return records


def answer_records(pipeline, questions: list[Question]) -> list[dict]:
    records = []
    for q in _progress(questions, "answers"):
        a = pipeline.ask(q.question, qid=q.id)
        records.append(score_answer(q, a))
    return records


def score_answer(q: Question, a) -> dict[str, Any]:
    """Everything we measure about one answer, as a JSON-ready record."""
    text = strip_markers(a.answer)
    good_citations = [c for c in a.citations if _good_citation(c, q, text)]
    if q.answerable:
        correct = (not a.abstained) and alce_correct(text, q.answers)
    else:
        correct = a.abstained
    t = a.timings
    gen_s = (t.total_s - t.ttft_s) if t.ttft_s is not None else None
    return {
        "id": q.id, "question": q.question, "answerable": q.answerable, "gold": list(q.answers),
        "answer": a.answer, "short_answer": a.short_answer, "abstained": a.abstained, "abstain_reason": a.abstain_reason,
        "correct": correct,
        "em": exact_match(a.short_answer, q.answers) if q.answerable and not a.abstained else 0.0,
        "f1": token_f1(a.short_answer, q.answers) if q.answerable and not a.abstained else 0.0,
        "words": len(text.split()), "citations": len(a.citations), "good_citations": len(good_citations),
        "retrieve_ms": t.retrieve_ms, "ttft_s": t.ttft_s, "total_s": t.total_s,
        "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
        "tokens_per_s": (t.completion_tokens - 1) / gen_s if gen_s and t.completion_tokens > 1 else None,
        "cited_sources": sorted({c.source for c in a.citations}),
    }


def _good_citation(c, q: Question, answer_text: str) -> bool:
    """From a gold source, and containing a gold answer or supporting the answer."""
    if c.source not in q.sources:
        return False
    span = f" {normalize_answer(c.text)} "
    if any(f" {normalize_answer(g)} " in span for g in q.answers if normalize_answer(g)):
        return True
    return support(answer_text, c.text, q.question) >= SUPPORT_THRESHOLD


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summarize(retrieval: list[dict], answers: list[dict]) -> dict[str, Any]:
    s: dict[str, Any] = {
        "retrieval": {
            "questions": len(retrieval),
            "hit@1": _mean([r["rank"] == 1 for r in retrieval]),
            "hit@5": _mean([r["rank"] is not None and r["rank"] <= 5 for r in retrieval]),
            "mrr@10": _mean([r["rr"] for r in retrieval]),
        }
    }
    if not answers:
        return s
    answerable = [a for a in answers if a["answerable"]]
    total_cites = sum(a["citations"] for a in answers)
    s["answers"] = {
        "questions": len(answers), "answerable": len(answerable),
        "correct": _mean([a["correct"] for a in answers]),
        "correct_answerable": _mean([a["correct"] for a in answerable]),
        "em": _mean([a["em"] for a in answerable]), "f1": _mean([a["f1"] for a in answerable]),
        "median_words": percentile([a["words"] for a in answers if not a["abstained"]], 0.5),
    }
    s["citations"] = {
        "precision": sum(a["good_citations"] for a in answers) / total_cites if total_cites else None,
        "recall": _mean([a["good_citations"] > 0 for a in answerable]),
    }
    p, r = precision_recall([a["abstained"] for a in answers], [not a["answerable"] for a in answers])
    s["abstention"] = {"precision": p, "recall": r, "abstained": sum(a["abstained"] for a in answers)}
    s["speed"] = {
        "retrieve_ms_p50": percentile([a["retrieve_ms"] for a in answers], 0.5),
        "retrieve_ms_p95": percentile([a["retrieve_ms"] for a in answers], 0.95),
        "ttft_s_p50": percentile([a["ttft_s"] for a in answers], 0.5),
        "ttft_s_p95": percentile([a["ttft_s"] for a in answers], 0.95),
        "total_s_p50": percentile([a["total_s"] for a in answers], 0.5),
        "total_s_p95": percentile([a["total_s"] for a in answers], 0.95),
        "tokens_per_s_p50": percentile([a["tokens_per_s"] for a in answers], 0.5),
        "prompt_tokens_p50": percentile([a["prompt_tokens"] for a in answers if a["prompt_tokens"]], 0.5),
    }
    return s


def print_summary(summary: dict) -> None:
    for section, values in summary.items():
        if section == "settings":
            continue
        cells = []
        for k, v in values.items():
            cells.append(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}")
        print(f"{section:<11} " + "  ".join(cells))
