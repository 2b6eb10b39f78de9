"""A linear probe on the generator's hidden state: how the model's internal state at the model check's
prompt ("Does the passage state the answer?") rates the answer, as one number the calibrator weighs.

The hidden state is the final layer's (after its norm) at the prompt's last token, read from the same
computation that gives P(yes) (`Generator.yes_probability(hidden=...)`): the probe costs one token's
decode and a dot product. Models whose internal state "knows" when a statement is false carry more in
that vector than in the Yes/No logits alone (Azaria and Mitchell, 2023); whether ours does is measured
in docs/decision.md.

The probe is a ridge-penalised logistic regression on the standardised state, fitted by `rag calibrate`
on recorded eval rows (`check_state`), and kept in a small file like the calibrator: its weights, the
models it was trained for, and a sha256 of all of it (a changed file is refused).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Sequence

from .errors import ModelError

FORMAT = "rag-probe/1"
PACKAGED_SHA256 = ""  # set when a probe is packaged (rag/data/probe.json)


@dataclass(frozen=True)
class Probe:
    """score(h) = bias + weights . (h - mean) / scale: a logit, higher when the answer is more likely right."""

    mean: "object"  # numpy float32 arrays of the hidden size
    scale: "object"
    weights: "object"
    bias: float
    fitted_on: dict = field(default_factory=dict)

    def score(self, state) -> float:
        import numpy as np

        x = (np.asarray(state, dtype=np.float64) - self.mean) / self.scale
        if x.shape != self.weights.shape:
            raise ModelError(f"the probe reads hidden states of size {self.weights.shape[0]}, not {x.shape[0]}")
        return float(self.bias + x @ self.weights)


def fit_probe(states: Sequence, labels: Sequence[bool], l2: float, fitted_on: dict | None = None) -> Probe:
    """Logistic regression with an L2 penalty on standardised states, by Newton's method on the dual-sized
    problem (the hidden size can exceed the rows: the solve is over the rows' kernel then)."""
    import numpy as np

    x = np.asarray(states, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    y = np.asarray(labels, dtype=np.float64)
    n, d = z.shape
    w, b = np.zeros(d), 0.0
    for _ in range(30):
        p = 1.0 / (1.0 + np.exp(-(z @ w + b)))
        r = p * (1 - p) + 1e-9
        # Newton step for [b, w] with penalty l2 * |w|^2 / 2; (d+1)x(d+1) system
        z1 = np.hstack([np.ones((n, 1)), z])
        hess = z1.T @ (z1 * r[:, None])
        hess[1:, 1:] += l2 * np.eye(d)
        grad = z1.T @ (p - y)
        grad[1:] += l2 * w
        step = np.linalg.solve(hess + 1e-9 * np.eye(d + 1), grad)
        b -= step[0]
        w -= step[1:]
        if np.abs(step).max() < 1e-7:
            break
    return Probe(mean.astype(np.float32), scale.astype(np.float32), w.astype(np.float32), float(b), dict(fitted_on or {}))


def _pack(array) -> str:
    import numpy as np

    return base64.b64encode(np.asarray(array, dtype="<f4").tobytes()).decode("ascii")


def _unpack(text: str):
    import numpy as np

    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float64)


def to_json(probe: Probe) -> dict:
    body = {"format": FORMAT, "mean": _pack(probe.mean), "scale": _pack(probe.scale), "weights": _pack(probe.weights),
            "bias": probe.bias, "fitted_on": probe.fitted_on}
    return {**body, "sha256": digest(body)}


def digest(body: dict) -> str:
    content = {k: v for k, v in body.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save(probe: Probe, path: Path) -> str:
    """Write the file (a temporary file, then a rename); return its sha256."""
    data = to_json(probe)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
    tmp.replace(path)
    return data["sha256"]


def packaged_path() -> Path:
    return Path(str(files("rag").joinpath("data", "probe.json")))


def load_probe(spec: str) -> Probe | None:
    """The probe a setting names: "packaged" (None when none is packaged), a file path, or "none"."""
    if spec in ("none", ""):
        return None
    path = packaged_path() if spec == "packaged" else Path(spec)
    if spec == "packaged" and not path.is_file():
        return None
    return read(path, PACKAGED_SHA256 if spec == "packaged" else None)


def read(path: Path, expected_sha256: str | None = None) -> Probe:
    """A probe file, checked: its format, its own sha256, and the expected one when given."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read probe {path}: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path} is not a probe file ({FORMAT})")
    sha = digest(data)
    if data.get("sha256") != sha or (expected_sha256 and sha != expected_sha256):
        raise ModelError(f"probe {path} was changed after it was written (sha256 {sha[:12]}… does not match): "
                         "reinstall the package or run `python -m rag calibrate` again")
    try:
        mean, scale, weights = (_unpack(data[k]) for k in ("mean", "scale", "weights"))
        if not (mean.shape == scale.shape == weights.shape):
            raise ValueError("its vectors differ in length")
        return Probe(mean, scale, weights, float(data["bias"]), dict(data.get("fitted_on", {})))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"probe {path} is incomplete: {e}") from None
