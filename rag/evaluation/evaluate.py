"""`python -m rag eval`: retrieval, answer, citation, abstention and speed metrics on a JSONL set,
and where each wrong answer was lost (rag/evaluation/losses.py); `--oracle` reads the gold sources whole instead.

The question format is the one of shared/eval/README.md:
{"id", "question", "answers": [...], "sources": [...], "answerable": bool}.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..answer.citations import strip_markers
from ..errors import RagError
from .losses import evidence_given, gold_passages, loss_fields, loss_summary, prompt_passages, reading
from ..options import add_common_options, settings_from_args
from ..questions import read_questions
from .metrics import alce_correct, exact_match, holds_gold, percentile, precision_recall, reciprocal_rank, token_f1

RETRIEVAL_DEPTH = 10  # MRR@10


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    sources: tuple[str, ...]  # in the file's order, which numbers the oracle's passages
    answerable: bool


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="measure retrieval, answers, citations, abstention, speed",
                       description="Evaluate the full pipeline on a JSONL question set (see shared/eval/README.md).")
    p.add_argument("--qa", type=Path, required=True, help="JSONL questions with answers and sources")
    p.add_argument("--limit", type=int, help="answer a random sample of N questions (retrieval uses all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    p.add_argument("--json", dest="json_out", type=Path, help="write the summary and per-question records here")
    p.add_argument("--retrieval-only", action="store_true", help="skip generation (fast)")
    p.add_argument("--k", type=int, help="the most passages given to the model (default: 4)")
    p.add_argument("--evidence-tokens", type=int, help="token budget of the passages given to the model "
                   "(default: 800 with passage states, else 560)")
    p.add_argument("--prompt-only", action="store_true", help="build each answer prompt, generate nothing: "
                   "the evidence figures (gold_in_prompt, answer_in_prompt, passages, tokens) in seconds")
    p.add_argument("--oracle", action="store_true", help="the reader alone: answer each answerable question of the sample "
                   "from its gold source documents whole, no retrieval (unanswerable questions are skipped)")
    p.add_argument("--hidden-states", action="store_true", help="record the model check's hidden states with each "
                   "answer in --json (llama.cpp; what eval/probe_study.py trains a probe on)")
    p.add_argument("--drop-gold", action="store_true", help="near-miss unanswerable questions: ask each answerable "
                   "question with its gold source documents left out of retrieval (answerable only if a gold answer is "
                   "still in the passages given); for fitting and testing the answer decision")
    p.add_argument("--reply-cache", type=Path, help="record the model's replies here and replay them for prompts seen "
                   "before (re-judge the same replies after changing the checks; speed counts fresh replies only)")
    add_common_options(p)
    p.set_defaults(func=run_eval)


def load_questions(path: Path) -> list[Question]:
    out = []
    for row in read_questions(path):
        answerable = bool(row.get("answerable", True))
        out.append(Question(str(row.get("id", len(out))), row["question"], tuple(row.get("answers") or ()),
                            tuple(dict.fromkeys(row.get("sources") or ())), answerable))
    return out


def default_index_dir(settings, docs: Path) -> Path:
    """An index folder per documents folder, under the cache (eval sets may live on read-only disks)."""
    digest = hashlib.sha256(str(docs.resolve()).encode()).hexdigest()[:10]
    return Path(settings.cache_dir) / "eval-indexes" / f"{docs.name}-{digest}"


def run_eval(args) -> int:
    from ..pipeline import Pipeline

    settings, questions = _eval_inputs(args)
    pipeline = Pipeline.from_settings(settings, generator=_reply_cache(settings, args))
    retrieval = None if args.oracle else retrieval_records(pipeline, questions)
    sample = sample_questions(questions, args.limit, args.seed)
    prompts = prompt_records(pipeline, sample) if args.prompt_only else []
    if args.oracle:
        answers = answer_records(pipeline, [q for q in sample if q.answerable], oracle=True)
    elif args.drop_gold:
        answers = answer_records(pipeline, [q for q in sample if q.answerable], drop_gold=True)
    else:
        answers = [] if args.retrieval_only or args.prompt_only else answer_records(pipeline, sample)
    summary = summarize(retrieval, answers)
    if prompts:
        summary["prompt"] = prompt_summary(prompts)
    if args.oracle:
        summary = {"oracle": {"questions": len(answers), "skipped_unanswerable": len(sample) - len(answers)}, **summary}
    summary["settings"] = {"qa": str(args.qa), "docs": str(args.docs), "limit": args.limit, "seed": args.seed, "oracle": args.oracle,
                           "evidence_tokens": pipeline.evidence_tokens if answers or prompts else None,
                           "max_passages": settings.max_passages, "chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap,
                           "engine": pipeline.generator.name if answers else None,
                           "generator": settings.generator, "embedder": settings.embedder}
    print_summary(summary)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"summary": summary, "retrieval": retrieval or [], "answers": answers,
                                             "prompts": prompts}, indent=1, ensure_ascii=False))
        print(f"wrote {args.json_out}")
    return 0


def _eval_inputs(args) -> tuple[Any, list[Question]]:
    """The settings (with an index folder per documents folder) and the questions; user mistakes raise."""
    settings = settings_from_args(args)
    if args.docs is None:
        raise RagError("eval needs --docs DIR")
    if args.drop_gold and (args.oracle or args.retrieval_only or args.prompt_only):
        raise RagError("--drop-gold answers from retrieval without the gold sources; it cannot be combined with "
                       "--oracle, --retrieval-only or --prompt-only")
    if args.oracle and (args.retrieval_only or args.prompt_only):
        raise RagError("--oracle reads answers without retrieval; it cannot be combined with --retrieval-only or --prompt-only")
    if args.index is None:
        settings = settings.replace(index_dir=default_index_dir(settings, args.docs))
    # every reply's signals are recorded, for `rag calibrate`, the answerability check's among them
    settings = settings.replace(signals=True, answerability_check=True)
    if args.hidden_states:  # and the model check's hidden states, for a probe (eval/probe_study.py)
        settings = settings.replace(record_states=True)
    questions = load_questions(args.qa)
    if not questions:
        raise RagError(f"no questions in {args.qa}")
    return settings, questions


def _reply_cache(settings, args):
    """The generator wrapped in a reply cache when --reply-cache is given (None: the pipeline's own)."""
    if not args.reply_cache or args.retrieval_only:
        return None
    from ..generation import make_generator
    from ..generation.replay import ReplayCache

    return ReplayCache(make_generator(settings), args.reply_cache)


def sample_questions(questions: list[Question], limit: int | None, seed: int) -> list[Question]:
    """The questions answered: all, or a seeded sample of `limit` (the same with and without --oracle)."""
    if not limit or limit >= len(questions):
        return questions
    return random.Random(seed).sample(questions, limit)


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


def prompt_records(pipeline, questions: list[Question]) -> list[dict]:
    """The evidence each answerable question's prompt would carry (`--prompt-only`: no generation)."""
    records = []
    for q in _progress([q for q in questions if q.answerable], "prompts"):
        messages, passages, blocks = pipeline.prompt_for(q.question)
        gold_in_prompt, answer_in_prompt = evidence_given(passages, q.answers, q.sources)
        records.append({
            "id": q.id, "passages": len(passages), "blocks": len(blocks.blocks) if blocks else len(passages),
            "gold_in_prompt": gold_in_prompt, "answer_in_prompt": answer_in_prompt,
            "evidence_tokens": sum(pipeline.generator.count_text(p.text) for p in passages),
            "prompt_tokens": pipeline.generator.count_tokens(messages),
        })
    return records


def prompt_summary(records: list[dict]) -> dict[str, Any]:
    return {
        "questions": len(records),
        "gold_in_prompt": _mean([r["gold_in_prompt"] for r in records]),
        "answer_in_prompt": _mean([r["answer_in_prompt"] for r in records]),
        "passages_p50": percentile([r["passages"] for r in records], 0.5),
        "passages_max": max(r["passages"] for r in records),
        "blocks_p50": percentile([r["blocks"] for r in records], 0.5),
        "evidence_tokens_p50": percentile([r["evidence_tokens"] for r in records], 0.5),
        "prompt_tokens_p50": percentile([r["prompt_tokens"] for r in records], 0.5),
    }


# The abstention trade-off: each answer is judged again with one setting changed from the run's own
# (the first row is the run's settings). Settings of the judge (rag/answer/judge.py) and of the answer policy.
VARIANTS: tuple[tuple[str, object], ...] = (
    ("as run", None),
    *((f"min_coverage={v}", ("min_coverage", v)) for v in (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)),
    *((f"min_restated={v}", ("min_restated", v)) for v in (0.0, 0.5, 0.7, 0.85, 1.0)),
    *((f"min_support={v}", ("min_support", v)) for v in (0.5, 0.67, 0.8)),
    *((f"min_model_yes={v}", ("min_model_yes", v)) for v in (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)),
    *((f"check_answer_type={v}", ("check_type", v)) for v in (False, True)),
    *((f"require_all_nouns={v}", ("all_nouns", v)) for v in (False, True)),
    *((f"max_unmentioned_words={v}", ("max_unmentioned", v)) for v in (-1, 0, 1)),
    *((f"asked_near={v}", ("asked_near", v)) for v in ("window", "chunk", "off")),
    *((f"when_event={v}", ("when_event", v)) for v in (True, False)),
    *((f"max_restated_absent={v}", ("max_restated_absent", v)) for v in (-1, 0, 1, 2)),
)


def answer_records(pipeline, questions: list[Question], oracle: bool = False, drop_gold: bool = False) -> list[dict]:
    """Answer and score each question: from retrieval, or with `oracle` from its gold sources whole, or
    with `drop_gold` from retrieval without its gold sources (unanswerable unless the passages still hold an answer)."""
    records = []
    for q in _progress(questions, "oracle answers" if oracle else "answers"):
        if oracle:
            passages = gold_passages(q.sources, pipeline.document_text, pipeline.index.documents.get)
            a = pipeline.ask_with_passages(q.question, passages, qid=q.id)
        elif drop_gold:
            a = pipeline.ask(q.question, qid=f"{q.id}-nogold", exclude=frozenset(q.sources))
            still = any(holds_gold(p.text, q.answers) for p in a.passages)
            q = replace(q, id=f"{q.id}-nogold", answerable=still)
        else:
            a = pipeline.ask(q.question, qid=q.id)
        record = score_answer(q, a)
        record["replayed"] = bool(getattr(pipeline.generator, "last_replayed", False)) and a.timings.ttft_s is not None
        record["curve"] = trade_off(pipeline, q, a)
        records.append(record)
    return records


def trade_off(pipeline, q: Question, a) -> list[list]:
    """[abstained, correct] of this reply judged under every variant of VARIANTS, in order."""
    from ..answer.answering import Policy, finish

    base = Policy.from_settings(pipeline.settings)
    out = []
    for _, change in VARIANTS:
        if change is None or (a.timings.ttft_s is None and a.abstained):  # as run, or abstained before the model
            b = a
        else:
            b = finish(q.question, a.raw_answer, a.passages, a.timings, a.search_query, a.id,
                       pipeline.index.bm25.idf_of, _vary(base, *change), a.model_check)
        out.append([b.abstained, _correct(q, b)])
    return out


def _vary(policy, name: str, value):
    if hasattr(policy.thresholds, name):
        return replace(policy, thresholds=replace(policy.thresholds, **{name: value}))
    return replace(policy, **{name: value})


def _correct(q: Question, a) -> bool:
    return _right(q, a.abstained, a.answer)


def _right(q: Question, abstained: bool, answer: str) -> bool:
    """An answerable question is right when answered with a gold answer; an unanswerable one when abstained."""
    if q.answerable:
        return (not abstained) and alce_correct(strip_markers(answer), q.answers)
    return abstained


def score_answer(q: Question, a) -> dict[str, Any]:
    """Everything we measure about one answer, as a JSON-ready record."""
    text = strip_markers(a.answer)
    good_citations = [c for c in a.citations if c.supported and c.source in q.sources]
    correct = _correct(q, a)
    t = a.timings
    return {
        "id": q.id, "question": q.question, "answerable": q.answerable, "gold": list(q.answers),
        "answer": a.answer, "short_answer": a.short_answer, "abstained": a.abstained, "abstain_reason": a.abstain_reason,
        "correct": correct,
        "em": exact_match(a.short_answer, q.answers) if q.answerable and not a.abstained else 0.0,
        "f1": token_f1(a.short_answer, q.answers) if q.answerable and not a.abstained else 0.0,
        "words": len(text.split()), "citations": len(a.citations), "good_citations": len(good_citations),
        "citations_with_gold": sum(holds_gold(c.text, q.answers) for c in a.citations),
        "unsupported": [{"claim": u.claim, "reason": u.reason} for u in a.unsupported],
        "raw_answer": a.raw_answer, "model_check": a.model_check, "check_s": t.check_s,
        **decision_fields(q, a),
        "retrieve_ms": t.retrieve_ms, "ttft_s": t.ttft_s, "total_s": t.total_s,
        "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens,
        "tokens_per_s": t.tokens_per_s, "readings": a.readings,
        "cited_sources": sorted({c.source for c in a.citations}),
        "prompt_passages": [{"source": p.hit.chunk.source, "start": p.start, "end": p.end} for p in prompt_passages(a)],
        **loss_fields(reading(a, q.answers, q.sources, correct) if q.answerable else None),
    }


def decision_fields(q: Question, a) -> dict[str, Any]:
    """The calibrated decision's record of one reply: its signals, its confidence, the label a calibrator
    is fitted to (whether showing the attached answer is right), and what the vetoes did with it."""
    from ..answer.answering import NOT_FOUND

    veto_abstained = a.veto_answer == NOT_FOUND or (not a.veto_answer and a.abstained)
    veto_correct = _right(q, veto_abstained, a.veto_answer)
    # an attachable answer: showing it is right when the question is answerable and it holds a gold answer
    label = bool(q.answerable and _right(q, False, a.attached_answer)) if a.signals else None
    out = {"signals": a.signals or {}, "confidence": a.confidence, "label": label, "veto_reason": a.veto_reason,
           "veto_abstained": veto_abstained, "veto_correct": veto_correct}
    if a.check_state:
        out["check_state"] = a.check_state
    return out


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summarize(retrieval: list[dict] | None, answers: list[dict]) -> dict[str, Any]:
    """The figures `eval` prints: retrieval (unless None: the oracle retrieves nothing); answers, their
    losses, citations, abstention and speed when answered."""
    s: dict[str, Any] = {}
    if retrieval is not None:
        s["retrieval"] = {
            "questions": len(retrieval),
            "hit@1": _mean([r["rank"] == 1 for r in retrieval]),
            "hit@5": _mean([r["rank"] is not None and r["rank"] <= 5 for r in retrieval]),
            "mrr@10": _mean([r["rr"] for r in retrieval]),
        }
    if not answers:
        return s
    answerable = [a for a in answers if a["answerable"]]
    s["answers"] = {
        "questions": len(answers), "answerable": len(answerable),
        "correct": _mean([a["correct"] for a in answers]),
        "correct_answerable": _mean([a["correct"] for a in answerable]),
        "em": _mean([a["em"] for a in answerable]), "f1": _mean([a["f1"] for a in answerable]),
        "median_words": percentile([a["words"] for a in answers if not a["abstained"]], 0.5),
        # of the answerable questions: the reply before the check correct, a gold source given, a gold answer given
        "raw_correct": _mean([a.get("raw_correct") for a in answerable]),
        "gold_in_prompt": _mean([a.get("gold_in_prompt") for a in answerable]),
        "answer_in_prompt": _mean([a.get("answer_in_prompt") for a in answerable]),
        "read_twice": sum(a.get("readings", 1) > 1 for a in answers),  # setting reread_tokens: the wider reading
    }
    s["losses"] = loss_summary(answers)
    s["citations"] = _citation_summary(answers)
    p, r = precision_recall([a["abstained"] for a in answers], [not a["answerable"] for a in answers])
    s["abstention"] = {"precision": p, "recall": r, "abstained": sum(a["abstained"] for a in answers)}
    checked = [a for a in answers if a.get("model_check") is not None]
    s["model_check"] = {"checked": len(checked), "check_s_p50": percentile([a["check_s"] for a in checked], 0.5)}
    s["trade_off"] = trade_off_summary(answers)
    from .calibrate import decision_summary

    decision = decision_summary(answers)
    if decision:
        s["decision"] = decision
    s["speed"] = _speed_summary(answers)
    return s


def _citation_summary(answers: list[dict]) -> dict[str, Any]:
    answerable = [a for a in answers if a["answerable"]]
    answered = [a for a in answerable if not a["abstained"]]
    total_cites, answered_cites = sum(a["citations"] for a in answers), sum(a["citations"] for a in answered)
    return {
        "precision": sum(a["good_citations"] for a in answers) / total_cites if total_cites else None,
        "recall": _mean([a["good_citations"] > 0 for a in answerable]),
        # of the sentences cited for answered answerable questions, the share that contain a gold answer
        "support_precision": sum(a["citations_with_gold"] for a in answered) / answered_cites if answered_cites else None,
    }


def _speed_summary(answers: list[dict]) -> dict[str, Any]:
    fresh = [a for a in answers if not a.get("replayed")]  # replayed replies took no generation time
    return {
        "fresh_replies": len(fresh),
        "retrieve_ms_p50": percentile([a["retrieve_ms"] for a in answers], 0.5),
        "retrieve_ms_p95": percentile([a["retrieve_ms"] for a in answers], 0.95),
        "ttft_s_p50": percentile([a["ttft_s"] for a in fresh], 0.5),
        "ttft_s_p95": percentile([a["ttft_s"] for a in fresh], 0.95),
        "total_s_p50": percentile([a["total_s"] for a in fresh], 0.5),
        "total_s_p95": percentile([a["total_s"] for a in fresh], 0.95),
        "tokens_per_s_p50": percentile([a["tokens_per_s"] for a in fresh], 0.5),
        "prompt_tokens_p50": percentile([a["prompt_tokens"] for a in answers if a["prompt_tokens"]], 0.5),
    }


def trade_off_summary(answers: list[dict]) -> list[dict]:
    """Abstention precision/recall and correctness under every variant of the recorded curves."""
    rows = []
    if not answers or "curve" not in answers[0]:
        return rows
    for i, (label, _) in enumerate(VARIANTS):
        abstained = [a["curve"][i][0] for a in answers]
        p, r = precision_recall(abstained, [not a["answerable"] for a in answers])
        rows.append({"variant": label, "abstention_precision": p, "abstention_recall": r,
                     "correct": _mean([a["curve"][i][1] for a in answers]),
                     "correct_answerable": _mean([a["curve"][i][1] for a in answers if a["answerable"]])})
    return rows


def print_summary(summary: dict) -> None:
    for section, values in summary.items():
        if section == "settings":
            continue
        if section == "trade_off":
            print("trade-off   variant                    abstention P / R   correct (answerable)")
            for r in values:
                f = lambda v: "  -  " if v is None else f"{v:.3f}"  # noqa: E731
                print(f"            {r['variant']:<26} {f(r['abstention_precision'])} / {f(r['abstention_recall'])}"
                      f"   {f(r['correct'])} ({f(r['correct_answerable'])})")
            continue
        cells = []
        for k, v in values.items():
            cells.append(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}")
        print(f"{section:<11} " + "  ".join(cells))
