"""`python -m rag calibrate`: fit the answer decision's calibrator, validated on sets it was not fitted on.

From recorded evaluations (`eval --json` files; each one set):

    python -m rag calibrate --from-eval sb.json rhine.json snippets.json seeds.json --out rag/data/calibrator.json

each set's figures come from a fit on the other sets, and the threshold used for a set at `max_risk`
from held-out predictions of those other sets only (nested). From a user's own labelled questions:

    python -m rag calibrate --docs my_docs --qa my_questions.jsonl

answers them (the vetoes deciding, every signal recorded), then validates by k-fold cross-validation.
The file is written to INDEX/calibrator.json unless --out says otherwise; set `calibrator` to its path.
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from ..answer.calibration import Calibrator, fit, read, save
from ..errors import RagError
from ..options import add_common_options, settings_from_args
from ..answer.risk import area, auc, aurc, coverage_at, threshold_for

# Every signal rag/answer/signals.py reads (each one's AUC alone is printed). Vetoes' flags are in: the rules'
# verdicts are signals too.
ALL_SIGNALS = (
    "p_yes", "support", "coverage", "restated", "absent_nouns", "first_supported", "claims_kept", "claims_removed",
    "count_without_number", "unmentioned_words", "type_mismatch", "vetoes_pass",
    "veto_number", "veto_name", "veto_event", "veto_far", "veto_support", "veto_coverage", "veto_absent", "veto_count",
    "lp_mean", "lp_min", "lp_answer", "lp_first", "verbatim", "memory_agrees", "memory_unstated",
    "cos_claim_span", "cos_question_span", "cos_question_claim",
    "best_dense", "keyword_overlap", "cited_rank", "cited_dense", "cited_keyword_share", "cited_margin",
    "asked_terms", "asked_names", "p_answerable", "choice_cited", "choice_top_cited", "choice_answer", "choice_max",
)
# The signals the shipped calibrator combines: chosen by forward selection on held-out AUC (each corpus
# predicted by a fit without it) over the seed questions, Super Bowl (+ --drop-gold), the TimeQA snippets
# and a TimeQA train-split snippet set; squad2-rhine was left out of the choice (docs/decision.md).
SIGNALS = ("p_answerable", "lp_answer", "support", "asked_terms", "veto_number", "cited_margin")


class Set:
    """One evaluation's rows: the attachable replies (signals, label) and the vetoes' records."""

    def __init__(self, name: str, answers: list[dict], group: str | None = None, models: dict | None = None):
        self.name = name
        self.models = models or {}  # the engine, generator and embedder whose signals these are
        self.group = group or name  # sets of one group (one corpus) are left out together
        self.answers = answers
        self.rows = [a for a in answers if a.get("label") is not None]

    @property
    def total(self) -> int:
        return len(self.answers)

    def refused(self) -> "Set":
        """The same questions with only the rows the rules refused: what the decision "either" may rescue."""
        out = Set(self.name, self.answers, self.group, self.models)
        out.rows = [r for r in self.rows if r.get("veto_abstained", r["abstained"])]
        return out


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="fit the answer decision to labelled questions",
                       description="Fit the calibrated answer decision (docs/decision.md) on labelled questions.")
    p.add_argument("--from-eval", nargs="+", help="`eval --json` files to fit on, one set each; A.json+B.json: two sets "
                   "of one corpus (e.g. with --drop-gold), left out together in validation")
    p.add_argument("--qa", type=Path, help="JSONL questions with answers (the eval format), answered now")
    p.add_argument("--limit", type=int, help="answer a random sample of N questions")
    p.add_argument("--out", type=Path, help="calibrator file to write (default: INDEX/calibrator.json)")
    p.add_argument("--signals", help="comma-separated signals to combine (default: the shipped calibrator's)")
    p.add_argument("--l2", type=float, default=1.0, help="L2 penalty on the standardised weights (default 1)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds for a single set (default 5)")
    p.add_argument("--show", type=Path, nargs="?", const=Path("packaged"), help="print a calibrator's weights and exit")
    add_common_options(p)
    p.set_defaults(func=run_calibrate)


def run_calibrate(args) -> int:
    settings = settings_from_args(args)
    if args.show is not None:
        from ..answer.calibration import load_calibrator

        calibrator = load_calibrator(str(args.show))
        if calibrator is None:
            raise RagError("no packaged calibrator is installed")
        print_weights(calibrator)
        return 0
    sets = _sets(args, settings)
    models = [s.models for s in sets if s.models]
    if any(m != models[0] for m in models):
        raise RagError("the sets were answered by different models: " + "; ".join(map(str, models)))
    if not any(s.rows for s in sets):
        raise RagError("no answer to fit on: every reply abstained before the decision (or the records have no signals)")
    names = tuple(args.signals.split(",")) if args.signals else SIGNALS
    unknown = [n for n in names if n not in ALL_SIGNALS]
    if unknown:
        raise RagError(f"unknown signals: {', '.join(unknown)} (known: {', '.join(ALL_SIGNALS)})")
    report = validate(sets, names, args.l2, args.folds, settings.max_risk)
    print_report(report)
    calibrator = final_fit(sets, names, args.l2, args.folds, {
        "sets": {s.name: {"questions": s.total, "rows": len(s.rows)} for s in sets},
        "models": models[0] if models else {}, "l2": args.l2,
        "validation": {k: v for k, v in report.items() if k != "per_set"} | {"per_set": report["per_set"]},
    })
    out = args.out or Path(settings.index_dir) / "calibrator.json"
    sha = save(calibrator, out)
    read(out)  # what was written loads back
    print(f"wrote {out} (sha256 {sha}); use it with calibrator = \"{out}\" (or RAG_CALIBRATOR={out})")
    return 0


def sets_from_eval(specs: Sequence[str]) -> list[Set]:
    """One Set per `eval --json` file; files joined by `+` in one spec are one corpus (one group)."""
    out = []
    for spec in specs:
        paths = [Path(x) for x in spec.split("+")]
        for path in paths:
            try:
                raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
                data = json.loads(raw.decode("utf-8"))
            except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise RagError(f"cannot read {path}: {e}") from None
            settings_used = data.get("summary", {}).get("settings", {})
            models = {k: settings_used.get(k) for k in ("engine", "generator", "embedder")}
            out.append(Set(_stem(path), data.get("answers", []), group=_stem(paths[0]), models=models))
    return out


def _stem(path: Path) -> str:
    """A recorded evaluation's set name: its file name without .json or .json.gz."""
    return Path(path.name.removesuffix(".gz")).stem


def _sets(args, settings) -> list[Set]:
    if args.from_eval:
        return sets_from_eval(args.from_eval)
    if args.qa is None or args.docs is None:
        raise RagError("calibrate needs --from-eval FILES, or --docs DIR and --qa FILE")
    from .evaluate import answer_records, default_index_dir, load_questions, sample_questions
    from ..pipeline import Pipeline

    if args.index is None:
        settings = settings.replace(index_dir=default_index_dir(settings, args.docs))
    pipeline = Pipeline.from_settings(settings.replace(decision="vetoes", signals=True, answerability_check=True))
    questions = sample_questions(load_questions(args.qa), args.limit, 0)
    return [Set(args.qa.stem, answer_records(pipeline, questions), models=pipeline.model_identity)]


def _xy(rows: Sequence[dict]) -> tuple[list[dict], list[bool]]:
    return [r["signals"] for r in rows], [bool(r["label"]) for r in rows]


def heldout_predictions(sets: Sequence[Set], names, l2: float, folds: int) -> dict[str, list[tuple[float, bool]]]:
    """For every set, (confidence, right) of its rows from a fit that left the set out.

    With one set, k-fold cross-validation within it (rows shuffled with a fixed seed).
    """
    if len(sets) == 1:
        rows = sets[0].rows
        order = list(range(len(rows)))
        random.Random(0).shuffle(order)
        fold = {i: n % folds for n, i in enumerate(order)}
        out: list[tuple[float, bool] | None] = [None] * len(rows)
        for k in range(folds):
            test = [i for i in range(len(rows)) if fold[i] == k]
            train = [rows[i] for i in range(len(rows)) if fold[i] != k]
            for i, p in zip(test, _predict(train, [rows[i] for i in test], names, l2)):
                out[i] = p
        return {sets[0].name: out}  # in the rows' order
    if len({s.group for s in sets}) == 1:  # one corpus in several sets: k-fold over them all
        joined = Set("all", [a for s in sets for a in s.answers])
        joined.rows = [r for s in sets for r in s.rows]  # the sets' own rows (all attachable, or only refused)
        preds = heldout_predictions([joined], names, l2, folds)["all"]
        out, at = {}, 0
        for s in sets:
            out[s.name], at = preds[at : at + len(s.rows)], at + len(s.rows)
        return out
    return {s.name: _predict([r for t in sets if t.group != s.group for r in t.rows], s.rows, names, l2) for s in sets}


def _predict(train, test, names, l2) -> list[tuple[float, bool]]:
    if not test:
        return []
    labels = [bool(r["label"]) for r in train]
    if len(set(labels)) < 2:
        rate = sum(labels) / len(labels) if labels else 0.5
        return [(rate, bool(r["label"])) for r in test]
    c = fit(*_xy(train), names, l2)
    return [(c.probability(r["signals"]), bool(r["label"])) for r in test]


def final_fit(sets: Sequence[Set], names, l2: float, folds: int, fitted_on: dict) -> Calibrator:
    """The weights fitted on every row, with the held-out predictions that choose its thresholds."""
    rows = [r for s in sets for r in s.rows]
    held = heldout_predictions(sets, names, l2, folds)
    c = fit(*_xy(rows), names, l2, fitted_on=fitted_on)
    return replace(c, heldout=tuple(p for s in sets for p in held[s.name]))


def vetoes_points(answers: Sequence[dict]) -> list[tuple[float, float]]:
    """The vetoes' (coverage, risk) operating points: eval's trade-off variants with min_model_yes swept."""
    from .evaluate import VARIANTS

    idx = [i for i, (label, _) in enumerate(VARIANTS) if label.startswith("min_model_yes=") or label == "as run"]
    points = []
    for i in idx:
        answered = [a for a in answers if "curve" in a and not a["curve"][i][0]]
        if answered:
            wrong = sum(not a["curve"][i][1] for a in answered)
            points.append((len(answered) / len(answers), wrong / len(answered)))
    return sorted(set(points))


def vetoes_range(answers: Sequence[dict]) -> tuple[list[tuple[float, float]], float, float | None]:
    """The vetoes' operating points and the coverage range they span (where both AURCs are compared)."""
    points = vetoes_points(answers)
    return (points, points[0][0], points[-1][0]) if points else (points, 0.0, None)


def decision_figures(s: Set, predicted: Sequence[tuple[float, bool]], threshold: float) -> dict[str, Any]:
    """A set judged by the calibrated decision at `threshold`, beside the vetoes on the same replies."""
    answered = [(p, y) for p, y in predicted if p >= threshold]
    n_unanswerable = sum(not a["answerable"] for a in s.answers)
    wrong = sum(not y for _, y in answered)
    right = len(answered) - wrong
    # a question is correct when its shown answer is right, or when it is unanswerable and not answered
    unanswerable_answered = sum(1 for (p, y), r in zip(predicted, s.rows) if p >= threshold and not r["answerable"])
    correct = right + (n_unanswerable - unanswerable_answered)
    answerable = s.total - n_unanswerable
    abstained = s.total - len(answered)
    v_answered = [a for a in s.answers if not a.get("veto_abstained", a["abstained"])]
    v_wrong = sum(not a.get("veto_correct", a["correct"]) for a in v_answered)
    v_abst_unans = sum(1 for a in s.answers if a.get("veto_abstained", a["abstained"]) and not a["answerable"])
    v_abst = s.total - len(v_answered)
    points, lo, hi = vetoes_range(s.answers)
    either = either_figures(s, predicted, threshold)
    return {
        "questions": s.total, "threshold": threshold,
        "coverage": len(answered) / s.total, "risk": wrong / len(answered) if answered else 0.0,
        "correct": correct / s.total,
        "correct_answerable": right / answerable if answerable else None,
        "abstention_precision": (n_unanswerable - unanswerable_answered) / abstained if abstained else None,
        "abstention_recall": (n_unanswerable - unanswerable_answered) / n_unanswerable if n_unanswerable else None,
        "vetoes_coverage": len(v_answered) / s.total, "vetoes_risk": v_wrong / len(v_answered) if v_answered else 0.0,
        "vetoes_correct": sum(a.get("veto_correct", a["correct"]) for a in s.answers) / s.total,
        "vetoes_abstention_precision": v_abst_unans / v_abst if v_abst else None,
        "vetoes_abstention_recall": v_abst_unans / n_unanswerable if n_unanswerable else None,
        "auc": auc(predicted),
        "aurc": aurc(predicted, lo, hi, total=s.total), "vetoes_aurc": area(points, lo, hi) if points else None,
        "aurc_range": [lo, hi],
        "coverage_at_5": coverage_at(predicted, 0.05, s.total), "coverage_at_10": coverage_at(predicted, 0.10, s.total),
    } | either


def either_figures(s: Set, predicted: Sequence[tuple[float, bool]], threshold: float) -> dict[str, Any]:
    """The decision "either" at `threshold`: the vetoes' answer where they show one, else the attached
    answer where its confidence clears the threshold, else an abstention (`rag/pipeline/checking.py`)."""
    confidence = {id(r): p for (p, _), r in zip(predicted, s.rows)}
    correct = abstained = abstained_unanswerable = rescued = shown_wrong = 0
    for a in s.answers:
        verdict, right = either_verdict(a, confidence.get(id(a)), threshold)
        correct += right
        if verdict == "abstained":
            abstained += 1
            abstained_unanswerable += not a["answerable"]
        else:
            rescued += verdict == "rescued"
            shown_wrong += not right
    n_unanswerable = sum(not a["answerable"] for a in s.answers)
    shown = s.total - abstained
    return {
        "either_correct": correct / s.total, "either_rescued": rescued,
        "either_shown": shown, "either_risk": shown_wrong / shown if shown else 0.0,
        "either_abstention_precision": abstained_unanswerable / abstained if abstained else None,
        "either_abstention_recall": abstained_unanswerable / n_unanswerable if n_unanswerable else None,
    }


def either_verdict(a: dict, confidence: float | None, threshold: float) -> tuple[str, bool]:
    """One recorded reply under "either": ("rules" | "rescued" | "abstained", whether that is right).

    `confidence` is None for a reply that cannot be rescued (nothing attachable, or no rescue wanted).
    """
    if not a.get("veto_abstained", a["abstained"]):
        return "rules", bool(a.get("veto_correct", a["correct"]))
    if confidence is not None and confidence >= threshold:
        return "rescued", bool(a["label"])
    return "abstained", not a["answerable"]


def decision_summary(answers: Sequence[dict]) -> dict[str, Any]:
    """`eval`'s trade-off as a curve: the calibrated confidences' risk-coverage figures beside the vetoes'."""
    s = Set("run", list(answers))
    if not s.rows:
        return {}
    points, lo, hi = vetoes_range(s.answers)
    out: dict[str, Any] = {"attachable": len(s.rows), "right_if_shown": sum(bool(r["label"]) for r in s.rows),
                           "vetoes_aurc": area(points, lo, hi) if points else None, "aurc_range": f"{lo:.3f}-{hi or 0:.3f}"}
    if all(r.get("confidence") is not None for r in s.rows):
        predicted = [(r["confidence"], bool(r["label"])) for r in s.rows]
        out.update(auc=auc(predicted), aurc=aurc(predicted, lo, hi, total=s.total),
                   coverage_at_5=coverage_at(predicted, 0.05, s.total), coverage_at_10=coverage_at(predicted, 0.10, s.total))
    return out


def correct_at_risk(s: Set, predicted: Sequence[tuple[float, bool]], max_risk: float) -> float:
    """Correct share at the lowest threshold whose risk on this set is at most `max_risk` (an operating point)."""
    n_unanswerable = sum(not a["answerable"] for a in s.answers)
    best, right, wrong, unans = n_unanswerable / s.total, 0, 0, 0
    ranked = sorted(zip(predicted, s.rows), key=lambda t: -t[0][0])
    for (p, y), r in ranked:
        right += y
        wrong += not y
        unans += not r["answerable"]
        if wrong / (right + wrong) <= max_risk + 1e-12:
            best = max(best, (right + n_unanswerable - unans) / s.total)
    return best


def validate(sets: Sequence[Set], names, l2: float, folds: int, max_risk: float) -> dict[str, Any]:
    """Every set judged by a calibrator that never saw it, with a threshold chosen without it."""
    held = heldout_predictions(sets, names, l2, folds)
    per_set = {}
    for s in sets:
        # nested: the threshold from the other sets' held-out rows; with one corpus, its own cross-validated
        # predictions choose it (optimistic: said in the report)
        curve = others_curve(sets, s, names, l2, folds) or held[s.name]
        threshold = threshold_for(curve, max_risk)
        fig = decision_figures(s, held[s.name], threshold)
        fig["correct_at_vetoes_risk"] = correct_at_risk(s, held[s.name], fig["vetoes_risk"])
        per_set[s.name] = fig
    pooled = [p for s in sets for p in held[s.name]]
    return {"max_risk": max_risk, "auc_pooled": auc(pooled), "signal_auc": signal_aucs(sets, ALL_SIGNALS), "per_set": per_set}


def others_curve(sets: Sequence[Set], s: Set, names, l2: float, folds: int) -> list[tuple[float, bool]]:
    """The held-out (confidence, right) rows of every corpus but `s`'s, each predicted by a fit without
    its own corpus: the curve a threshold for `s` is chosen on. Empty when no other corpus has rows."""
    others = [t for t in sets if t.group != s.group]
    if not any(t.rows for t in others):
        return []
    inner = heldout_predictions(others, names, l2, folds)
    return [p for t in others for p in inner[t.name]]


def signal_aucs(sets: Sequence[Set], names) -> dict[str, dict[str, float | None]]:
    """Each signal alone: its AUC for "this answer is right" on each set (below 0.5: higher means wrong)."""
    out = {}
    for n in names:
        out[n] = {s.name: auc([(r["signals"][n], bool(r["label"])) for r in s.rows if n in r["signals"]]) for s in sets}
    return out


def print_report(report: dict) -> None:
    f = lambda v: "  -  " if v is None else f"{v:.3f}"  # noqa: E731
    print(f"pooled held-out AUC {f(report['auc_pooled'])}; max_risk {report['max_risk']}")
    if len(report["per_set"]) == 1:
        print("one set: cross-validated; its threshold is chosen on the same rows' held-out predictions, so "
              "coverage and risk at it are optimistic (add another set to see them on rows it never saw)")
    print("set            n   AUC    thr    cover  risk   correct (vetoes)  ans.correct  abst P / R (vetoes)       "
          "AURC (vetoes)   cov@5% cov@10%  correct@vetoes' risk")
    for name, r in report["per_set"].items():
        print(f"{name:<12} {r['questions']:>4} {f(r['auc'])} {f(r['threshold'])} {f(r['coverage'])} {f(r['risk'])} "
              f"{f(r['correct'])} ({f(r['vetoes_correct'])})  {f(r['correct_answerable'])}      "
              f"{f(r['abstention_precision'])}/{f(r['abstention_recall'])} ({f(r['vetoes_abstention_precision'])}/"
              f"{f(r['vetoes_abstention_recall'])})  {f(r['aurc'])} ({f(r['vetoes_aurc'])})  {f(r['coverage_at_5'])}  "
              f"{f(r['coverage_at_10'])}   {f(r['correct_at_vetoes_risk'])}")
    print('decision "either" (the vetoes\' answer, else the attached one at or above the threshold):')
    for name, r in report["per_set"].items():
        print(f"  {name:<12} correct {f(r['either_correct'])} (vetoes {f(r['vetoes_correct'])}), "
              f"{r['either_rescued']} answers the vetoes refused shown; abstention P / R "
              f"{f(r['either_abstention_precision'])}/{f(r['either_abstention_recall'])}")
    print("signal AUC alone:")
    for n, by_set in report["signal_auc"].items():
        print(f"  {n:<22} " + "  ".join(f"{k}={f(v)}" for k, v in by_set.items()))


def print_weights(c: Calibrator) -> None:
    print(f"calibrator: {len(c.names)} signals, bias {c.bias:+.3f}; fitted on {json.dumps(c.fitted_on.get('sets', {}))}")
    for n, w in sorted(zip(c.names, c.weights), key=lambda t: -abs(t[1])):
        print(f"  {n:<22} {w:+.3f}")
