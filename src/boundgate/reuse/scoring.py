"""Scorers: what the verifier thresholds, computed from a candidate's evidence.

The verifier learns a threshold on a score and keeps the error bound on it (``verifier.py``);
a ``Scorer`` says what that score is. Four exist:

- ``CosineScorer``: the cosine similarity of the two questions, as it is.
- ``PairModelScorer`` (the default): the probability of the same meaning from the
  cross-encoder that reads both questions together (``pair.py``).
- ``DensityScorer``: the cosine minus β times the *local density*, the mean
  cosine of the asked question and of the candidate to their nearest stored questions. A high
  cosine between questions that sit in a crowded neighbourhood ("how do I learn Python?" among
  a hundred "how do I learn X?") is weaker evidence of the same meaning than the same cosine
  between questions with no close neighbours; this is the hubness correction of CSLS
  (Lample et al., 2018) and of margin scoring in bitext mining (Artetxe & Schwenk, 2019).
  β is not a constant: it is learned online from the gateway's own labels by a two-feature
  logistic regression, P(same meaning) = σ(a·cos + b·density + c), as β = −b/a clipped to
  [0, 1]. Traffic on which density says nothing gets β ≈ 0, i.e. the plain cosine. The score
  stays in cosine units, so thresholds, the similarity floor and the initial threshold keep
  their meaning.
- ``BlendScorer``: max(pair, f(cosine)), the pair model's score or the cosine put on its scale,
  whichever is higher. f maps a cosine to the pair score of equal precision on Quora's
  validation pairs (``training/blend_fit.py``, shipped as ``pair_model/blend.json``): a
  near-identical pair that the pair model, trained on Quora's wording, scores low is still
  served where the cosine alone is as precise as the threshold asks. One score, so the
  verifier keeps δ on it as on any other; its prior is its own replayed calibration
  (``pair_model/calibration_blend.json``).

Measured offline (``bench/signals.py``, ``bench/decisions.py``, ``bench/RESULTS.md``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Evidence:
    """What is known about a candidate when it is scored."""

    similarity: float  # cosine of the asked and the stored question
    density: float = 0.0  # mean cosine of both to their nearest stored questions (0: unknown)
    pair: float | None = None  # the pair model's probability of the same meaning (None: unscored)


class Scorer(ABC):
    """Evidence → score (higher = more likely the same meaning). ``fit`` may learn from labels."""

    name: str
    uses_density: bool = False
    uses_pair: bool = False  # needs the pair model's score of each candidate
    # the calibration beside the pair model that is this scorer's prior (``prior.py``), if any
    prior_file: str | None = None

    @abstractmethod
    def score(self, e: Evidence) -> float: ...

    def fit(self, labelled: Sequence[tuple[Evidence, bool]]) -> bool:
        """Learn from ``(evidence, correct)`` labels; True if scores changed."""
        return False

    def describe(self) -> dict[str, float]:
        return {}

    def from_prior(self, score: float) -> float:
        """A score of this scorer's prior on the scale the verifier thresholds. The pair
        model's calibration holds pair probabilities: a scorer that reads them scores them as
        evidence with that pair score alone."""
        return self.score(Evidence(0.0, 0.0, score))


class CosineScorer(Scorer):
    name = "cosine"

    def score(self, e: Evidence) -> float:
        return e.similarity


class DensityScorer(Scorer):
    """cos − β·density, β learned by logistic regression (see the module docstring)."""

    name = "density"
    uses_density = True

    def __init__(self, *, min_class: int = 30, min_change: float = 0.01) -> None:
        self.beta = 0.0
        self.min_class = min_class  # labels of each outcome before β is learned at all
        self.min_change = min_change  # smaller moves of β are not worth re-scoring for

    def score(self, e: Evidence) -> float:
        return e.similarity - self.beta * e.density

    def fit(self, labelled: Sequence[tuple[Evidence, bool]]) -> bool:
        # labels stored before density was recorded (density 0: unknown) say nothing about β
        labelled = [(e, c) for e, c in labelled if e.density > 0]
        y = np.array([c for _, c in labelled], dtype=bool)
        if int(y.sum()) < self.min_class or int((~y).sum()) < self.min_class:
            return False
        x = np.array([[e.similarity, e.density] for e, _ in labelled], dtype=np.float64)
        w = logistic(x, y)
        beta = float(np.clip(-w[1] / w[0], 0.0, 1.0)) if w[0] > 0 else 0.0
        if abs(beta - self.beta) < self.min_change:
            return False
        self.beta = beta
        return True

    def describe(self) -> dict[str, float]:
        return {"beta": self.beta}


def logistic(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.bool_], l2: float = 1e-3, iters: int = 50
) -> npt.NDArray[np.float64]:
    """Logistic regression weights (features then bias) by Newton's method, light L2."""
    xb = np.hstack([np.asarray(x, dtype=np.float64), np.ones((len(x), 1))])
    # standardise for a well-conditioned Newton step; map back at the end
    mu = xb[:, :-1].mean(axis=0)
    sd = xb[:, :-1].std(axis=0) + 1e-9
    xs = xb.copy()
    xs[:, :-1] = (xb[:, :-1] - mu) / sd
    w = np.zeros(xs.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(xs @ w)))
        g = xs.T @ (p - y) + l2 * w
        h = (xs * (p * (1 - p))[:, None]).T @ xs + l2 * np.eye(len(w))
        step = np.linalg.solve(h, g)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    coef = w[:-1] / sd
    bias = w[-1] - float((w[:-1] * mu / sd).sum())
    return np.asarray(np.append(coef, bias), dtype=np.float64)


class PairModelScorer(Scorer):
    """The pair model's probability that the two questions mean the same (``pair.py``).

    Scores are in [0, 1], like the cosine, so thresholds, the floor grid and the initial
    threshold keep working; evidence recorded before the pair model was on (``pair`` None)
    scores 0 and so never counts above a threshold."""

    name = "pair"
    uses_pair = True
    prior_file = "calibration.json"

    def score(self, e: Evidence) -> float:
        return 0.0 if e.pair is None else e.pair


@dataclass(frozen=True)
class CosineMap:
    """f: a cosine → the pair score of equal precision, linear between knots (non-decreasing
    knots make a non-decreasing f; below the first knot f is the first value, above the last
    the last)."""

    cosine: tuple[float, ...]
    pair: tuple[float, ...]

    def __post_init__(self) -> None:
        c, p = np.asarray(self.cosine, float), np.asarray(self.pair, float)
        if len(c) < 2 or len(c) != len(p):
            raise ValueError("a cosine map needs two or more knots, as many values as cosines")
        if np.any(np.diff(c) <= 0) or np.any(np.diff(p) < 0):
            raise ValueError("a cosine map's knots must rise and its values must not fall")
        if p[0] < 0 or p[-1] > 1:
            raise ValueError("a cosine map's values are pair scores, in [0, 1]")

    def __call__(self, cosine: float) -> float:
        return float(np.interp(cosine, self.cosine, self.pair))

    @classmethod
    def load(cls, path: Path) -> CosineMap:
        """Read ``blend.json`` (``training/blend_fit.py``). Raises ``ValueError`` when
        malformed."""
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls(tuple(map(float, doc["cosine"])), tuple(map(float, doc["pair"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a cosine map ({exc})") from None


def packaged_cosine_map() -> CosineMap:
    """The cosine map shipped beside the pair model (``pair_model/blend.json``)."""
    from .pair import packaged_model_dir

    return CosineMap.load(packaged_model_dir() / "blend.json")


class BlendScorer(Scorer):
    """max(pair, f(cosine)) (see the module docstring): the pair model's score, or the cosine
    on the pair score's scale where that is higher. Evidence without a pair score is scored by
    the cosine alone. ``cosine_map``: f (default: the shipped one)."""

    name = "blend"
    uses_pair = True
    prior_file = "calibration_blend.json"

    def __init__(self, cosine_map: CosineMap | None = None) -> None:
        self.f = cosine_map if cosine_map is not None else packaged_cosine_map()

    def score(self, e: Evidence) -> float:
        return max(0.0 if e.pair is None else e.pair, self.f(e.similarity))

    def from_prior(self, score: float) -> float:
        """The blend's own calibration holds blend scores: they are on its scale already."""
        return score


SCORERS: dict[str, type[Scorer]] = {
    "cosine": CosineScorer,
    "density": DensityScorer,
    "pair": PairModelScorer,
    "blend": BlendScorer,
}
