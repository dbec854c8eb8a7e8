"""Whether a model's answers may label the verifier's observations.

The verifier learns from labels made by comparing a fresh answer with a stored one
(``Labelling.same_answer``): a would-be hit sampled for verification, or a miss beside its
nearest stored question. That label means "the two questions ask the same" only if the model
answers two wordings of one question alike and two different questions differently. A small
model does neither reliably: SmolLM2-135M's greedy answers to 150 development paraphrases and
150 look-alikes were labelled "same" 16 and 16 times at ``answer_similarity`` 0.9
(``bench/answer_labels.py``, bench/RESULTS.md "The verifier's labels when the local model
writes the answers"). Such labels are noise: they would count nine in ten right reuses as
wrong and stop semantic reuse, while telling nothing about the wrong ones.

So each model's ``answer_labels`` setting (``models.<name>.answer_labels``) is resolved here:

- ``on``: its answers label (sampled verification, misses observed, verified paraphrases
  confirmed as question variants);
- ``off``: its lookups are neither verified nor observed: a would-be hit the threshold allows
  is served, and the threshold rests on the pair model's shipped calibration (the prior, a
  bound on wrong reuse per lookup from human-labelled question pairs) and on feedback;
- ``auto`` (the default): off when package data measures the model's answers uninformative
  (``data/answer_labels.json``, by model version, written by ``bench/answer_labels.py
  --write-data``): paraphrases labelled "same" not significantly more often than look-alikes
  (one-sided two-proportion z-test at ``reuse.confidence``), at the measured
  ``answer_similarity`` nearest the configured one; else on (a model not measured keeps the
  labels: the failure they risk is reusing too little, not wrong reuse).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from .verifier import z_for

Setting = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class LabelSource:
    """What a model's answers do for the verifier: ``in_force`` (they label) and why, in
    words (the setting, or the measurement ``auto`` read)."""

    in_force: bool
    reason: str


@dataclass(frozen=True)
class Measurement:
    """Counts of pairs labelled "same" by answer comparison, at one ``answer_similarity``:
    ``paraphrases_same`` of ``paraphrases``, ``lookalikes_same`` of ``lookalikes``."""

    answer_similarity: float
    paraphrases_same: int
    paraphrases: int
    lookalikes_same: int
    lookalikes: int
    date: str

    def z(self) -> float:
        """The two-proportion z statistic (pooled), paraphrases' share minus look-alikes'
        over its standard error; 0 when undefined (no pairs, or all or none "same")."""
        n1, n2 = self.paraphrases, self.lookalikes
        if n1 <= 0 or n2 <= 0:
            return 0.0
        p1, p2 = self.paraphrases_same / n1, self.lookalikes_same / n2
        pooled = (self.paraphrases_same + self.lookalikes_same) / (n1 + n2)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        return (p1 - p2) / se if se > 0 else 0.0


@cache
def _measured() -> dict[str, Any]:
    path = resources.files("boundgate.reuse").joinpath("data/answer_labels.json")
    models: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["models"]
    return models


def measurement(version: str, answer_similarity: float) -> Measurement | None:
    """The shipped measurement of model ``version`` (``Backend.version``) at the measured
    answer similarity nearest ``answer_similarity``; None when the model was not measured."""
    entry = _measured().get(version)
    if entry is None:
        return None
    by_sim = {float(k): v for k, v in entry["labelled_same_by_answer_similarity"].items()}
    nearest = min(by_sim, key=lambda s: abs(s - answer_similarity))
    same, diff = by_sim[nearest]
    return Measurement(
        nearest,
        int(same),
        int(entry["pairs"]["paraphrases"]),
        int(diff),
        int(entry["pairs"]["lookalikes"]),
        str(entry["date"]),
    )


def resolve(setting: Setting, measured: Measurement | None, confidence: float) -> LabelSource:
    """Resolve a model's ``answer_labels`` setting (see the module docstring), given its
    shipped ``measurement`` (None: not measured) and ``reuse.confidence``."""
    if setting == "on":
        return LabelSource(True, "answer_labels = on")
    if setting == "off":
        return LabelSource(False, "answer_labels = off")
    m = measured
    if m is None:
        return LabelSource(True, "auto: not measured, its answers label")
    said = (
        f"{m.paraphrases_same} of {m.paraphrases} paraphrases and {m.lookalikes_same} of "
        f"{m.lookalikes} look-alikes labelled the same at answer_similarity "
        f"{m.answer_similarity:g} (bench/answer_labels.py, {m.date})"
    )
    if m.z() >= z_for(confidence):
        return LabelSource(True, f"auto: measured informative: {said}")
    return LabelSource(False, f"auto: measured uninformative: {said}")
