"""The verifier's prior: an offline calibration of the pair score, for a fresh gateway.

A fresh gateway has no labels, and without labels the verifier cannot prove any threshold, so
every would-be hit would be recomputed until ``reuse.min_observations`` labels exist: the cold
start that made a new deployment reuse almost nothing. The prior is what the shipped pair
model scored on labelled questions it was never trained on (``quora_val.csv``), as the gateway
uses it: the validation questions are replayed through the gateway's lookup
(``training/lookup_calibration.py``, written into ``pair_model/calibration.json``): MiniLM
retrieval, the cosine floor, the guards, the pair model on up to four survivors, the best one
kept, against stores of 500 and 2,000 of their partners. Each lookup's best candidate is one
observation, a *duplicate* when its meaning is the asked question's (duplicate pairs joined
transitively) and a *non-duplicate* otherwise. For a threshold ``t`` the prior gives ``n(t)``
lookups whose best candidate scores ≥ ``t`` and ``e(t)`` wrong ones among them, i.e.
P(right | best score ≥ t) = 1 − e/n with the confidence its ``n`` carries. (A calibration of
each question against its own partner, ``training/pair_eval.py``, was too optimistic: the best
of several retrieved candidates is wrong more often, 0.84–0.90 precision above 0.9 where the
pairs showed 0.97, and that is what the verifier's own labels see.) ``lookups`` counts every
replayed lookup, with a candidate or not, so the calibration also gives H(t), the share of
lookups whose best candidate scores ≥ t on that traffic: the verifier's floor for h(t)
(``verifier.py``).

The verifier adds these counts to its own labels, scaled by λ = W / (W + N), where N is the
number of labels it has observed and W is ``reuse.prior_weight``: at the start the prior
counts in full; after W labels it counts half; online labels take over as they accumulate.
Where the gateway's own labels at a threshold contradict the prior (their *lower* confidence
bound already breaks δ), the threshold fails whatever the prior says; where they are enough to
prove it by themselves (at least ``reuse.min_observations`` at or above it, their *upper*
bound within δ), it passes whatever the prior says (``verifier.py``). The prior decides only
what the gateway's own labels cannot yet decide.

A calibration may also say which replayed lookups were *novel* (``novel_scores``,
``novel_lookups``: no stored question had the asked one's meaning, so any answer served was
wrong). Then the verifier does not take the calibration's precision among its hits to this
traffic: it bounds wrong reuses per lookup by the novel and the repeat lookups' own rates,
mixed at a lower bound of this traffic's share of repeats (label shift, ``Prior.wrong_rates``,
``verifier.py``), so traffic of more repeats than Quora's (a chatbot's paraphrases) is not
held to Quora's precision, and traffic of novel questions only is held to the novel rate.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
# Prior.wrong_rates: (novel lookups scoring ≥ t, repeats served a wrong candidate ≥ t, novel
# lookups, repeat lookups)
WrongRates = tuple[Floats, Floats, float, float]


def count_above(sorted_xs: Floats, grid: Floats) -> Floats:
    """For each ``t`` of ``grid``: how many of ``sorted_xs`` are ≥ t (scores within 1e-12
    below t count as at t)."""
    return np.asarray(len(sorted_xs) - np.searchsorted(sorted_xs, grid - 1e-12, "left"), float)


@dataclass(frozen=True)
class Prior:
    """Sorted scores of labelled duplicate and non-duplicate pairs.

    ``source`` names the data; ``model`` the scorer whose scores these are (a prior applies
    only to the model it was measured on)."""

    duplicates: tuple[float, ...]
    non_duplicates: tuple[float, ...]
    source: str
    model: str
    lookups: int | None = None  # lookups replayed, with a candidate or not (None: pairs only)
    # the best scores of the *novel* replayed lookups (no stored question had the asked one's
    # meaning, so any answer served was wrong), and how many novel lookups there were, with a
    # candidate or not (None: a calibration without the split)
    novel: tuple[float, ...] | None = None
    novel_lookups: int | None = None

    @property
    def pairs(self) -> int:
        return len(self.duplicates) + len(self.non_duplicates)

    @functools.cached_property
    def _arrays(self) -> tuple[Floats, Floats]:
        return np.asarray(self.duplicates, float), np.asarray(self.non_duplicates, float)

    def counts(self, grid: Floats) -> tuple[Floats, Floats]:
        """For each threshold ``t`` of ``grid``: (pairs scoring ≥ t, non-duplicates among
        them), as float arrays (not to be modified: the last grid's are kept, since one
        recompute of the verifier asks for them three times)."""
        key = grid.tobytes()
        last = self._last_counts
        entry = last[0] if last else None  # one read: another thread may replace it
        if entry is not None and entry[0] == key:
            return entry[1]
        dup, non = self._arrays
        e = count_above(non, grid)
        result = count_above(dup, grid) + e, e
        last[:] = [(key, result)]
        return result

    @functools.cached_property
    def _last_counts(self) -> list[tuple[bytes, tuple[Floats, Floats]]]:
        """The last ``counts`` asked for, by its grid's bytes (one entry, replaced whole)."""
        return []

    def hit_shares(self, grid: Floats) -> Floats | None:
        """H(t) for each ``t`` of ``grid``: the share of the replayed lookups whose best
        candidate scored ≥ t (None when the calibration is of pairs, not lookups)."""
        if not self.lookups:
            return None
        return np.minimum(1.0, self.counts(grid)[0] / self.lookups)

    def wrong_rates(self, grid: Floats) -> WrongRates | None:
        """The calibration's wrong reuses by kind of lookup, for each ``t`` of ``grid``:
        (novel lookups scoring ≥ t, repeats whose best candidate was a wrong one scoring ≥ t,
        novel lookups, repeat lookups); the rates F_N(t), F_R(t) are the first two over the
        last two. None when the calibration has no split (``novel`` is None)."""
        if self.novel is None or self.novel_lookups is None or not self.lookups:
            return None
        e_novel = count_above(np.asarray(self.novel, float), grid)
        e_all = self.counts(grid)[1]
        repeats = float(self.lookups - self.novel_lookups)
        return e_novel, np.maximum(e_all - e_novel, 0.0), float(self.novel_lookups), repeats

    def above(self, t: float) -> tuple[int, int]:
        """(pairs scoring ≥ t, non-duplicates among them): ``counts`` at one threshold."""
        n, e = self.counts(np.array([t]))
        return int(n[0]), int(e[0])

    def hit_share(self, t: float) -> float | None:
        """H(t) at one threshold (``hit_shares``)."""
        shares = self.hit_shares(np.array([t]))
        return None if shares is None else float(shares[0])

    def mapped(self, score: Callable[[float], float]) -> Prior:
        """The same pairs on another scale: ``score`` maps a pair probability to what the
        verifier thresholds (it must not decrease)."""
        return Prior(
            tuple(sorted(score(x) for x in self.duplicates)),
            tuple(sorted(score(x) for x in self.non_duplicates)),
            self.source,
            self.model,
            self.lookups,
            None if self.novel is None else tuple(sorted(score(x) for x in self.novel)),
            self.novel_lookups,
        )

    @classmethod
    def load(cls, path: Path, model: str) -> Prior:
        """Read ``calibration.json``. Raises ``ValueError`` on a malformed file."""
        doc = json.loads(path.read_text(encoding="utf-8"))
        try:
            dup = tuple(sorted(float(x) for x in doc["duplicate_scores"]))
            non = tuple(sorted(float(x) for x in doc["non_duplicate_scores"]))
            source = str(doc["source"])
            lookups = int(doc["lookups"]) if "lookups" in doc else None
            novel = (
                tuple(sorted(float(x) for x in doc["novel_scores"]))
                if "novel_scores" in doc
                else None
            )
            novel_lookups = int(doc["novel_lookups"]) if "novel_lookups" in doc else None
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a pair-model calibration ({exc})") from None
        if lookups is not None and lookups < len(dup) + len(non):
            raise ValueError(f"{path}: fewer lookups ({lookups}) than observations")
        if (novel is None) != (novel_lookups is None):
            raise ValueError(f"{path}: novel_scores and novel_lookups come together")
        if novel is not None and novel_lookups is not None:
            if lookups is None or not len(novel) <= novel_lookups <= lookups:
                raise ValueError(f"{path}: novel lookups do not fit the lookups")
            if len(novel) > len(non):
                raise ValueError(f"{path}: more novel scores than non-duplicate scores")
        return cls(dup, non, source, model, lookups, novel, novel_lookups)
