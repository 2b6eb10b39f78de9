"""Can any threshold meet an abstention target on one set? Every operating point of the held-out confidences.

Given recorded evaluations (`python -m rag eval ... --json`, with signals; files joined by `+` are one
corpus), each corpus is predicted by a calibrator fitted on the others (as `rag calibrate` validates),
and every threshold on the target set's predictions is tried, for three signal sets: the shipped ones,
those plus the sentence choice, and all of them. It prints how many thresholds meet abstention
precision, recall and answerable correctness at once, the best balanced point, and the best with the
recall target met (docs/decision.md, "What the signals cannot do on squad2-rhine").

    python eval/decision_frontier.py seeds.json sb.json+sbnogold.json snip.json tqtrain.json rh.json --target rh
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.evaluation.calibrate import (  # noqa: E402
    ALL_SIGNALS, SIGNALS, decision_figures, heldout_predictions, sets_from_eval)

CHOICE = ["choice_cited", "choice_top_cited", "choice_answer", "choice_max"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("evals", nargs="+", help="eval --json files; a+b joins files of one corpus")
    ap.add_argument("--target", default="rh", help="the set (file name without .json) to sweep")
    ap.add_argument("--precision", type=float, default=0.75)
    ap.add_argument("--recall", type=float, default=0.75)
    ap.add_argument("--answerable-correct", type=float, default=0.60)
    args = ap.parse_args()
    sets = sets_from_eval(args.evals)
    target = next(s for s in sets if s.name == args.target)
    n_un = sum(not a["answerable"] for a in target.answers)
    print(f"{target.name}: {target.total} questions, {target.total - n_un} answerable, {len(target.rows)} replies "
          f"attachable, {sum(bool(r['label']) for r in target.rows)} right if shown")
    goals = (args.precision, args.recall, args.answerable_correct)
    for tag, names in (("shipped", list(SIGNALS)), ("shipped + sentence choice", list(SIGNALS) + CHOICE),
                       ("all", list(ALL_SIGNALS))):
        held = heldout_predictions(sets, names, 1.0, 5)[target.name]
        meeting, best, best_recall = 0, None, None
        for t in sorted({p for p, _ in held}) + [2.0]:
            f = decision_figures(target, held, t)
            point = (f["abstention_precision"] or 0.0, f["abstention_recall"] or 0.0, f["correct_answerable"] or 0.0)
            meeting += all(x >= g for x, g in zip(point, goals))
            score = min(x / g for x, g in zip(point, goals))
            if best is None or score > best[0]:
                best = (score, point)
            if point[1] >= goals[1] and (best_recall is None or point[0] + point[2] > sum(best_recall[::2])):
                best_recall = point
        line = f"{tag} ({len(names)} signals): thresholds meeting all three {meeting}; best balanced " \
               f"P {best[1][0]:.3f} R {best[1][1]:.3f} answerable correct {best[1][2]:.3f}"
        if best_recall:
            line += f"; with recall met: P {best_recall[0]:.3f} answerable correct {best_recall[2]:.3f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
