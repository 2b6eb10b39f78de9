"""Do two readings of the same questions agree more often where the reply is right?

Given two recorded evaluations of one question set with different prompts (`eval --json`, signals on;
e.g. 5 and 16 packed snippets), each attachable reply of the first gets `agreement`: the share of
content words the two raw replies have in common (Jaccard over words outside the question and a short
stop list, citation markers dropped). The script prints that signal's AUC alone for "the first reading's
reply is right", and the held-out AUC (k-fold within the set, the same folds for both) of the shipped
calibrator's signals without and with it. A self-consistency signal earns its second generation only
if the second figure rises.

    python eval/reading_agreement.py eval/records/2026-12-03-pack5/snip.json.gz eval/records/2026-12-03-pack5/snip16.json.gz
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rag.answer.risk import auc  # noqa: E402
from rag.evaluation.calibrate import SIGNALS, heldout_predictions, sets_from_eval  # noqa: E402

_STOP = frozenset(
    "a an the of in to from was is were be been by as at and or for with on that this which who what whom "
    "passage passages source sources document documents described according stated mentioned per do does "
    "not say".split())
_WORD = re.compile(r"\w+")
_MARKER = re.compile(r"\[\d+\]")


def content_words(reply: str, question: str) -> set[str]:
    """The reply's words that are neither the question's nor stop words (citation markers removed)."""
    asked = set(_WORD.findall(question.lower()))
    return {w for w in _WORD.findall(_MARKER.sub(" ", reply.lower())) if w not in _STOP and w not in asked}


def agreement(first: str, second: str, question: str) -> float:
    """Jaccard overlap of two replies' content words; 0 when either has none."""
    a, b = content_words(first, question), content_words(second, question)
    return len(a & b) / len(a | b) if a and b else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("first", help="eval --json of the reading whose replies are judged")
    ap.add_argument("second", help="eval --json of another reading of the same questions")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    first, second = sets_from_eval([args.first, args.second])
    other = {a["id"]: a for a in second.answers}
    missing = [r["id"] for r in first.rows if r["id"] not in other]
    if missing:
        print(f"error: {len(missing)} questions of {args.first} are not in {args.second} (e.g. {missing[0]})")
        return 1
    for r in first.rows:
        r["signals"] = dict(r["signals"], agreement=agreement(
            r["raw_answer"], other[r["id"]]["raw_answer"], r["question"]))
    alone = auc([(r["signals"]["agreement"], bool(r["label"])) for r in first.rows])
    print(f"{first.name}: {len(first.rows)} attachable replies, {sum(bool(r['label']) for r in first.rows)} right")
    print(f"  agreement alone: AUC {alone:.3f}")
    print(f"  recorded confidence alone: AUC {auc([(r['confidence'], bool(r['label'])) for r in first.rows]):.3f}")
    for names in (SIGNALS, SIGNALS + ("agreement",)):
        held = heldout_predictions([first], names, 1.0, args.folds)[first.name]
        print(f"  {args.folds}-fold held-out AUC, {'+'.join(names)}: {auc(held):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
