"""The verifier's prior: an offline calibration of the pair score, for a fresh gateway.

A fresh gateway has no labels, and without labels the verifier cannot prove any threshold, so
every would-be hit would be recomputed until ``reuse.min_observations`` labels exist: the cold
start that made a new deployment reuse almost nothing. The prior is what the shipped pair
model scored on labelled pairs it was never trained on (``quora_val.csv``; written by
``training/pair_eval.py`` into ``pair_model/calibration.json``): the sorted scores of the
duplicate pairs and of the non-duplicate pairs. For a threshold ``t`` it gives ``n(t)`` pairs
at or above ``t`` and ``e(t)`` non-duplicates among them, i.e. the calibration
P(duplicate | score ≥ t) = 1 − e/n with the confidence its ``n`` carries.

The verifier adds these counts to its own labels, scaled by λ = W / (W + N), where N is the
number of labels it has observed and W is ``reuse.prior_weight``: at the start the prior
counts in full; after W labels it counts half; online labels take over as they accumulate.
Where the gateway's own labels at a threshold contradict the prior (their *lower* confidence
bound already breaks δ), the threshold fails whatever the prior says (``verifier.py``).
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Prior:
    """Sorted scores of labelled duplicate and non-duplicate pairs.

    ``source`` names the data; ``model`` the scorer whose scores these are (a prior applies
    only to the model it was measured on)."""

    duplicates: tuple[float, ...]
    non_duplicates: tuple[float, ...]
    source: str
    model: str

    @property
    def pairs(self) -> int:
        return len(self.duplicates) + len(self.non_duplicates)

    def above(self, t: float) -> tuple[int, int]:
        """(pairs scoring ≥ t, non-duplicates among them)."""
        d = len(self.duplicates) - bisect_left(self.duplicates, t - 1e-12)
        e = len(self.non_duplicates) - bisect_left(self.non_duplicates, t - 1e-12)
        return d + e, e

    def mapped(self, score: Callable[[float], float]) -> Prior:
        """The same pairs on another scale: ``score`` maps a pair probability to what the
        verifier thresholds (it must not decrease)."""
        return Prior(
            tuple(sorted(score(x) for x in self.duplicates)),
            tuple(sorted(score(x) for x in self.non_duplicates)),
            self.source,
            self.model,
        )

    @classmethod
    def load(cls, path: Path, model: str) -> Prior:
        """Read ``calibration.json``. Raises ``ValueError`` on a malformed file."""
        doc = json.loads(path.read_text(encoding="utf-8"))
        try:
            dup = tuple(sorted(float(x) for x in doc["duplicate_scores"]))
            non = tuple(sorted(float(x) for x in doc["non_duplicate_scores"]))
            source = str(doc["source"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a pair-model calibration ({exc})") from None
        return cls(dup, non, source, model)
