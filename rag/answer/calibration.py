"""One calibrated answer decision: a logistic regression over the signals (rag/answer/signals.py) that gives
P(the answer shown is right), its file format, and the threshold for a chosen risk (docs/decision.md).

The model is small on purpose, and inspectable: one weight per signal on standardised values, read
with `python -m rag calibrate --show`. A signal missing from an answer (an engine without logits)
takes its training mean, so it moves nothing. The file holds the weights, the signal names, what it
was fitted on, its held-out predictions (the threshold for any `max_risk` is computed from those, never
from the rows a weight was fitted on) and a sha256 of all of it: a changed file is refused.

>>> c = fit([{"a": 0.0}, {"a": 1.0}, {"a": 0.1}, {"a": 0.9}], [False, True, False, True], ("a",))
>>> c.probability({"a": 1.0}) > 0.5 > c.probability({"a": 0.0})
True
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import ModelError
from .risk import threshold_for

FORMAT = "rag-calibrator/1"
# The packaged calibrator's sha256 (of its canonical content, as `digest` computes it): like the model
# files' hashes in rag/models.py, a packaged file that does not match is refused.
PACKAGED_SHA256 = "e01253f23a411827fd7a84f6fcbf1e4727011626460a52a134bc1efa57533d65"

# What a person reads when a signal weighs most against an answer.
SIGNAL_WORDS = {
    "p_yes": "the model's own check that the cited passage states the answer",
    "p_answerable": "the model's own check that the cited passage answers the question at all",
    "support": "how many of the answer's words the cited sentence has",
    "coverage": "how much of the question the cited sentence speaks of",
    "restated": "the question's words the answer repeats that are not near the cited sentence",
    "vetoes_pass": "the answer rules",
    "memory_unstated": "the model gives this answer without the documents, and the passage does not state it word for word",
    "memory_agrees": "the model gives this answer without the documents too",
    "verbatim": "whether the answer is in the cited sentence word for word",
    "lp_answer": "the model's confidence in the words of its answer",
    "lp_mean": "the model's confidence in its reply",
    "lp_min": "the model's least confident word",
    "cos_question_span": "how close the cited sentence is to the question",
    "cos_claim_span": "how close the cited sentence is to the answer",
    "best_dense": "how close the best passage is to the question",
    "keyword_overlap": "how many of the question's words the passages have",
    "unmentioned_words": "question words that no passage mentions",
    "count_without_number": "a how-many question answered without a number",
    "type_mismatch": "the answer is not the kind of thing the question asks for",
    "absent_nouns": "the answer speaks of things no passage mentions",
    "claims_removed": "sentences of the reply that no passage supports",
}


@dataclass(frozen=True)
class Calibrator:
    """P(right) = sigmoid(bias + sum(weight * (value - mean) / scale)) over `names`."""

    names: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    heldout: tuple[tuple[float, bool], ...] = ()  # (confidence, right) of rows predicted by fits that left them out
    fitted_on: dict = field(default_factory=dict)  # the sets, their rows, the settings and the command

    def logit(self, signals: Mapping[str, float]) -> float:
        z = self.bias
        for name, m, s, w in zip(self.names, self.mean, self.scale, self.weights):
            z += w * (signals.get(name, m) - m) / s
        return z

    def probability(self, signals: Mapping[str, float]) -> float:
        return _sigmoid(self.logit(signals))

    def threshold(self, max_risk: float) -> float:
        """The lowest confidence at which at most `max_risk` of shown answers are wrong (held-out upper bound)."""
        if not self.heldout:
            raise ModelError("the calibrator has no held-out predictions to choose a threshold from: refit it")
        return threshold_for(self.heldout, max_risk)

    def contributions(self, signals: Mapping[str, float]) -> dict[str, float]:
        """Each signal's share of the logit: weight times its standardised value."""
        return {n: w * (signals.get(n, m) - m) / s for n, m, s, w in zip(self.names, self.mean, self.scale, self.weights)}

    def weighed_against(self, signals: Mapping[str, float]) -> str:
        """The signal that pulled this answer's confidence down most, in words."""
        name, value = min(self.contributions(signals).items(), key=lambda kv: kv[1])
        return SIGNAL_WORDS.get(name, name) if value < 0 else "no single signal (all are weak)"

    def to_json(self) -> dict:
        body = {"format": FORMAT, **asdict(self)}
        body["heldout"] = [[round(p, 5), bool(y)] for p, y in self.heldout]
        return {**body, "sha256": digest(body)}


def digest(body: Mapping) -> str:
    """sha256 of a calibrator's content (without its own "sha256"), in a canonical JSON form."""
    content = {k: v for k, v in body.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save(calibrator: Calibrator, path: Path) -> str:
    """Write the file (via a temporary file and a rename: never half a file); return its sha256."""
    data = calibrator.to_json()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return data["sha256"]


def packaged_path() -> Path:
    return Path(str(files("rag").joinpath("data", "calibrator.json")))


def load_calibrator(spec: str) -> Calibrator | None:
    """The calibrator a setting names: "packaged", a file path, or "none" (then the vetoes decide)."""
    if spec in ("none", ""):
        return None
    path = packaged_path() if spec == "packaged" else Path(spec)
    if spec == "packaged" and not path.is_file():
        return None
    return read(path, PACKAGED_SHA256 if spec == "packaged" else None)


def read(path: Path, expected_sha256: str | None = None) -> Calibrator:
    """A calibrator file, checked: its format, its own sha256, and the expected one when given."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read calibrator {path}: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path} is not a calibrator file ({FORMAT})")
    sha = digest(data)
    if data.get("sha256") != sha or (expected_sha256 and sha != expected_sha256):
        raise ModelError(f"calibrator {path} was changed after it was written (sha256 {sha[:12]}… does not match): "
                         "reinstall the package or run `python -m rag calibrate` again")
    try:
        n = len(data["names"])
        if not all(len(data[k]) == n for k in ("mean", "scale", "weights")):
            raise ValueError("the names and weights differ in length")
        return Calibrator(tuple(data["names"]), tuple(map(float, data["mean"])), tuple(map(float, data["scale"])),
                          tuple(map(float, data["weights"])), float(data["bias"]),
                          tuple((float(p), bool(y)) for p, y in data.get("heldout", ())), dict(data.get("fitted_on", {})))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"calibrator {path} is incomplete: {e}") from None


def fit(rows: Sequence[Mapping[str, float]], labels: Sequence[bool], names: Sequence[str], l2: float = 1.0,
        fitted_on: dict | None = None) -> Calibrator:
    """Logistic regression with an L2 penalty `l2` on standardised signals, by Newton's method.

    Missing values take the signal's mean over `rows`; a signal constant over them gets weight 0.
    """
    import numpy as np

    names = tuple(names)
    means, scales = [], []
    for n in names:
        vals = [r[n] for r in rows if n in r]
        m = float(np.mean(vals)) if vals else 0.0
        s = float(np.std(vals)) if vals else 0.0
        means.append(m)
        scales.append(s if s > 1e-9 else 1.0)
    x = np.array([[(r.get(n, m) - m) / s for n, m, s in zip(names, means, scales)] for r in rows], dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    x1 = np.hstack([np.ones((len(rows), 1)), x])
    w = np.zeros(x1.shape[1])
    penalty = np.eye(x1.shape[1]) * l2
    penalty[0, 0] = 0.0  # the bias is not shrunk
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(x1 @ w)))
        grad = x1.T @ (p - y) + penalty @ w
        hess = x1.T @ (x1 * (p * (1 - p))[:, None]) + penalty + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Calibrator(names, tuple(means), tuple(scales), tuple(float(v) for v in w[1:]), float(w[0]),
                      fitted_on=dict(fitted_on or {}))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
