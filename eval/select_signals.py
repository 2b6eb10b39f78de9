"""Forward selection of the calibrator's signals on held-out AUC, each corpus predicted by a fit without it.

Given recorded evaluations (`python -m rag eval ... --json`, signals on; files joined by `+` are one
corpus), it adds, one at a time, the signal that most raises the pooled held-out AUC (every row
predicted by a calibrator fitted on the other corpora), and stops when no signal adds `--min-gain`.
Sets named with `--report` are left out of the choice (not fitted on, not scored) and only reported:
their held-out AUC with the chosen signals, each predicted by a fit on all the other corpora.

    python eval/select_signals.py tq.json seeds.json sb.json snip.json --report snip --rescue
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.answer.risk import auc  # noqa: E402
from rag.evaluation.calibrate import ALL_SIGNALS, heldout_predictions, sets_from_eval  # noqa: E402


def pooled_auc(sets, names, l2: float) -> float:
    held = heldout_predictions(sets, names, l2, 5)
    return auc([p for s in sets for p in held[s.name]]) or 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("evals", nargs="+", help="eval --json files; a+b joins files of one corpus")
    ap.add_argument("--report", action="append", default=[], help="set(s) left out of the choice, only reported")
    ap.add_argument("--rescue", action="store_true", help="only the rows the rules refused (a rescue calibrator)")
    ap.add_argument("--min-gain", type=float, default=0.002)
    ap.add_argument("--max-signals", type=int, default=8)
    ap.add_argument("--l2", type=float, default=1.0)
    args = ap.parse_args()
    sets = sets_from_eval(args.evals)
    if args.rescue:
        sets = [s.refused() for s in sets]
    choosing = [s for s in sets if s.name not in args.report]
    candidates = [n for n in ALL_SIGNALS if any(n in r["signals"] for s in choosing for r in s.rows)]
    chosen: list[str] = []
    best = 0.5
    while len(chosen) < args.max_signals:
        scored = [(pooled_auc(choosing, chosen + [n], args.l2), n) for n in candidates if n not in chosen]
        if not scored:
            break
        value, name = max(scored)
        if value < best + args.min_gain:
            break
        chosen.append(name)
        best = value
        print(f"+ {name:<22} pooled held-out AUC {value:.3f}", flush=True)
    print("chosen:", ",".join(chosen))
    held = heldout_predictions(sets, chosen, args.l2, 5)
    for s in sets:
        tag = "reported" if s.name in args.report else "chosen on"
        print(f"  {s.name:<12} ({tag}) rows {len(s.rows):4d}  held-out AUC {auc(held[s.name]) or 0.0:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
