"""Does a linear probe on the generator's hidden states tell right answers from wrong ones better than
the signals the calibrator already has? (docs/decision.md, "The hidden-state probe")

Input: eval JSON files recorded with `--hidden-states` (each answer's `check_state`: the outputs of the
layers at 1/4, 1/2 and 3/4 of the depth and of the final norm, at the model check's last token).
Arguments are corpora; files joined with `+` are one corpus (a set and its --drop-gold variant).

For each layer, and every held-out corpus, a probe (standardised state, L2-penalised logistic
regression; scikit-learn, which sentence-transformers installs) is fitted on the other corpora and
scored on it: its AUC beside P(yes)'s. Then the calibrator's signals with and without the probe's score,
each corpus predicted by a fit that left it out; the probe's score for the training rows is itself
out-of-corpus (nested), so the combination never sees a probe fitted on the rows it weighs.

    python eval/probe_study.py seeds.json sb.json+sbnogold.json snip.json rh.json
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.evaluation.calibrate import SIGNALS  # noqa: E402
from rag.answer.calibration import fit  # noqa: E402
from rag.generation.llama_cpp import PROBE_FRACTIONS  # noqa: E402
from rag.generation.replay import unpack_vector  # noqa: E402
from rag.answer.risk import auc  # noqa: E402

PENALTIES = (1e-4, 1e-3, 1e-2)  # scikit-learn's C: the inverse of the L2 weight


def load(specs: list[str]) -> list[dict]:
    rows = []
    for spec in specs:
        paths = spec.split("+")
        for path in paths:
            for a in json.loads(Path(path).read_text())["answers"]:
                if a.get("label") is None or not a.get("check_state"):
                    continue
                rows.append({"corpus": Path(paths[0]).stem, "state": unpack_vector(a["check_state"]),
                             "label": bool(a["label"]), "signals": a["signals"]})
    return rows


def probe_scores(train: list[dict], test: list[dict], layer: slice, c: float) -> list[float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.stack([r["state"][layer] for r in train])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, [r["label"] for r in train])
    return model.decision_function(np.stack([r["state"][layer] for r in test])).tolist() if test else []


def held_out(rows, corpora, predict) -> list[float | None]:
    """Per corpus, the AUC of `predict(train, test)` with the corpus held out."""
    out = []
    for c in corpora:
        test = [r for r in rows if r["corpus"] == c]
        scores = predict([r for r in rows if r["corpus"] != c], test)
        out.append(auc([(s, r["label"]) for s, r in zip(scores, test)]))
    return out


def combination(rows, corpora, layer: slice | None, c: float) -> list[float | None]:
    """Per corpus, the AUC of the calibrator's signals (plus the probe's score when `layer` is given),
    fitted on the other corpora."""
    names = list(SIGNALS) + (["probe"] if layer is not None else [])
    out = []
    for held in corpora:
        test = [r for r in rows if r["corpus"] == held]
        train, x_train = [], []
        for h in corpora:
            if h == held:
                continue
            part = [r for r in rows if r["corpus"] == h]
            if layer is None:
                x_train += [r["signals"] for r in part]
            else:  # scored by a probe that left this corpus and the held-out one out
                rest = [r for r in rows if r["corpus"] not in (h, held)]
                x_train += [dict(r["signals"], probe=s) for r, s in zip(part, probe_scores(rest, part, layer, c))]
            train += part
        if layer is None:
            x_test = [r["signals"] for r in test]
        else:
            x_test = [dict(r["signals"], probe=s) for r, s in zip(test, probe_scores(train, test, layer, c))]
        calibrator = fit(x_train, [r["label"] for r in train], names, 1.0)
        out.append(auc([(calibrator.probability(x), r["label"]) for x, r in zip(x_test, test)]))
    return out


def main(specs: list[str]) -> int:
    rows = load(specs)
    if not rows:
        print("no answers with check_state: record the sets with `eval --hidden-states --json FILE`")
        return 2
    corpora = list(dict.fromkeys(r["corpus"] for r in rows))
    size = len(rows[0]["state"]) // (len(PROBE_FRACTIONS) + 1)
    layers = {f"layer {f:.2f}": slice(i * size, (i + 1) * size) for i, f in enumerate(PROBE_FRACTIONS)}
    layers["final norm"] = slice(len(PROBE_FRACTIONS) * size, (len(PROBE_FRACTIONS) + 1) * size)
    fmt = lambda xs: " ".join(f"{x:.3f}" if x is not None else "  -  " for x in xs)  # noqa: E731
    sizes = {c: sum(r["corpus"] == c for r in rows) for c in corpora}
    print("corpora: " + ", ".join(f"{c} ({n})" for c, n in sizes.items()))
    print(f"{'AUC, corpus held out':<28} {' '.join(f'{c[:5]:>5}' for c in corpora)}   mean")
    p_yes = [auc([(r["signals"].get("p_yes") or 0.0, r["label"]) for r in rows if r["corpus"] == c]) for c in corpora]
    print(f"{'p_yes alone':<28} {fmt(p_yes)}   {np.mean([x for x in p_yes if x is not None]):.3f}")
    best = (None, None, -1.0)
    for name, layer in layers.items():
        for c in PENALTIES:
            per = held_out(rows, corpora, lambda tr, te: probe_scores(tr, te, layer, c))
            mean = float(np.mean([x for x in per if x is not None]))
            print(f"{'probe ' + name + f' C={c:g}':<28} {fmt(per)}   {mean:.3f}")
            if mean > best[2]:
                best = (name, c, mean)
    name, c, _ = best
    base = combination(rows, corpora, None, c)
    print(f"{'calibrator signals':<28} {fmt(base)}   {np.mean([x for x in base if x is not None]):.3f}")
    plus = combination(rows, corpora, layers[name], c)
    print(f"{'+ probe (' + name + ')':<28} {fmt(plus)}   {np.mean([x for x in plus if x is not None]):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
