"""The decision "either" on one set at every threshold, from confidences predicted without that set.

Given recorded evaluations (`python -m rag eval ... --json`, signals on, the vetoes deciding; files
joined by `+` are one corpus), every corpus is predicted by a calibrator fitted on the others (as
`rag calibrate` validates). For each set it prints the threshold that `max_risk` gives when chosen on
the other sets' held-out curve (what `rag calibrate` reports), then the whole curve: at each threshold,
the share correct, the answers rescued (refused by the rules, shown because their confidence clears
it), how many answers are shown and what share of them is wrong, and the abstention recall. The curve
is a description, not a choice: a threshold read off it has been fitted on the set.

    python eval/either_curve.py tq.json snip.json sb.json seeds.json --risks 0.3 0.4 --target snip
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.answer.risk import threshold_for  # noqa: E402
from rag.evaluation.calibrate import (  # noqa: E402
    SIGNALS, Set, either_figures, heldout_predictions, others_curve, sets_from_eval)


def line(s: Set, predicted, threshold: float) -> str:
    f = either_figures(s, predicted, threshold)
    recall = f["either_abstention_recall"]
    return (f"thr {threshold:6.3f}  correct {f['either_correct']:.3f}  rescued {f['either_rescued']:3d}  "
            f"shown {f['either_shown']:3d}  wrong {f['either_risk']:.3f}  "
            f"abst.recall {'  -  ' if recall is None else f'{recall:.3f}'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("evals", nargs="+", help="eval --json files; a+b joins files of one corpus")
    ap.add_argument("--risks", type=float, nargs="+", default=[0.3], help="max_risk values to choose thresholds at")
    ap.add_argument("--target", action="append", help="the set(s) whose whole curve to print (default: all)")
    ap.add_argument("--points", type=int, default=30, help="thresholds on each curve")
    ap.add_argument("--signals", help="comma-separated signals (default: the shipped calibrator's)")
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--rescue", action="store_true", help="fit, predict and choose thresholds on the rows the rules "
                    "refused only (a rescue calibrator)")
    args = ap.parse_args()
    names = tuple(args.signals.split(",")) if args.signals else SIGNALS
    sets = sets_from_eval(args.evals)
    if args.rescue:
        sets = [s.refused() for s in sets]
    held = heldout_predictions(sets, names, args.l2, 5)
    for s in sets:
        vetoes = sum(a["veto_correct"] for a in s.answers) / s.total
        print(f"{s.name}: {s.total} questions, vetoes correct {vetoes:.3f}")
        curve = others_curve(sets, s, names, args.l2, 5)
        if curve:
            for r in args.risks:
                print(f"  max_risk {r} (threshold from the other sets): {line(s, held[s.name], threshold_for(curve, r))}")
        if args.target and s.name not in args.target:
            continue
        values = sorted({p for p, _ in held[s.name]}, reverse=True)
        step = max(1, len(values) // args.points)
        for t in [1.0 + 1e-9] + values[::step] + [-1.0]:
            print(f"    {line(s, held[s.name], t)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
