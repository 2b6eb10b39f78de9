"""The decision with a second, wider reading, replayed over two recorded readings of the same questions.

Given `eval --json` records of a first reading and of a wider one (e.g. 5 and 16 packed snippets, both
recorded with the vetoes deciding and signals on) and a calibrator file, each question is decided as the
pipeline would with `reread_tokens` set: the first reading's decision, and where it abstains the second
reading's. `--decision` is that of both readings ("either": the rules' answer, else an attached one whose
confidence clears the calibrator's threshold for `--max-risk`; "vetoes": the rules alone), or
"vetoes-first" (the rules on the first reading, "either" on the second). Prints the share correct, what
is shown and how often it is wrong, and the abstention recall; with `--first-only` the first reading alone.

    R=eval/records/2026-12-03-pack5
    python eval/reread_replay.py $R/snip.json.gz $R/snip16.json.gz \
        --calibrator eval/records/2026-12-03-reread/calibrator-nosnip.json --max-risk 0.3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.answer.calibration import read  # noqa: E402
from rag.evaluation.calibrate import either_verdict, sets_from_eval  # noqa: E402


def answers(path: str) -> dict[str, dict]:
    return {a["id"]: a for a in sets_from_eval([path])[0].answers}


def decide(row: dict, rescue, threshold: float) -> tuple[bool, bool]:
    """(shown, right) for one recorded reply: the rules' verdict, else the calibrated rescue if `rescue`."""
    confidence = rescue.probability(row["signals"]) if rescue is not None and row.get("label") is not None else None
    verdict, right = either_verdict(row, confidence, threshold)
    return verdict != "abstained", right


def replay(first: dict, second: dict, calibrator, threshold: float, decision: str, first_only: bool) -> dict:
    first_rescue = calibrator if decision == "either" else None
    second_rescue = calibrator if decision in ("either", "vetoes-first") else None
    correct = shown = wrong = unanswerable = kept_out = read_twice = 0
    for qid, a in first.items():
        is_shown, right = decide(a, first_rescue, threshold)
        if not is_shown and not first_only:
            read_twice += 1
            is_shown, right = decide(second[qid], second_rescue, threshold)
        correct += right
        shown += is_shown
        wrong += is_shown and not right
        unanswerable += not a["answerable"]
        kept_out += (not a["answerable"]) and not is_shown
    return {"correct": correct / len(first), "right": correct, "questions": len(first), "shown": shown,
            "wrong_share": wrong / shown if shown else 0.0, "read_twice": read_twice,
            "abstention_recall": kept_out / unanswerable if unanswerable else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first", help="eval --json of the first reading")
    ap.add_argument("second", help="eval --json of the wider reading of the same questions")
    ap.add_argument("--calibrator", required=True, help="calibrator file (rag calibrate --out)")
    ap.add_argument("--max-risk", type=float, nargs="+", default=[0.3])
    ap.add_argument("--decision", choices=("either", "vetoes", "vetoes-first"), default="either")
    ap.add_argument("--first-only", action="store_true", help="the first reading's decision alone")
    args = ap.parse_args()
    first, second = answers(args.first), answers(args.second)
    missing = sorted(set(first) - set(second))
    if missing and not args.first_only:
        print(f"error: {len(missing)} questions of {args.first} are not in {args.second} (e.g. {missing[0]})")
        return 1
    calibrator = read(Path(args.calibrator))
    for risk in args.max_risk:
        threshold = calibrator.threshold(risk)
        f = replay(first, second, calibrator, threshold, args.decision, args.first_only)
        recall = "-" if f["abstention_recall"] is None else f"{f['abstention_recall']:.3f}"
        print(f"max_risk {risk} (threshold {threshold:.3f}), {args.decision}: correct {f['correct']:.3f} "
              f"({f['right']}/{f['questions']}), shown {f['shown']}, wrong {f['wrong_share']:.3f}, "
              f"abstention recall {recall}, read twice {f['read_twice']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
