"""The verifier: decides whether a semantic candidate may be served, keeping the error bound.

The promise (``reuse.error_bound`` = δ, defined as vCache defines it): the fraction of lookups
that receive a reused answer that is wrong for them stays at or below δ.

How the decision threshold is learned, online, from labelled observations ``(s, correct)``
where ``s`` is the cosine similarity between the request and the stored question:

- **Free labels.** A candidate below the threshold is a miss: the model runs anyway, and its
  fresh answer is compared with the candidate's stored answer (equal after normalisation, or
  answer embeddings at least ``reuse.answer_similarity`` apart). That labels ``s`` for nothing.
- **Sampled verification.** A share ``reuse.verify_rate`` of would-be hits (systematic,
  with a random start per check: ``_sample``) is recomputed instead of served and labelled
  the same way: this keeps watching the region that is being served. While fewer than
  ``reuse.min_observations`` labels exist at or above the threshold, *every* would-be hit
  is verified: the threshold must earn trust before it serves anything.
- **Tightened inspection.** After a wrong label of a would-be or served hit (sampled
  verification, feedback), every would-be hit is verified until ``reuse.tightened_rights``
  of them in a row are right, the switching rule of acceptance sampling (ISO 2859-1: from
  tightened back to normal inspection after five lots in a row are accepted). A wrong hit
  is evidence that the region being served is not what the curve says; until the bound
  has moved, the next hits are checked rather than served on the old estimate.
- **Feedback.** ``POST /v1/boundgate/feedback`` labels a served hit directly.

What is thresholded is a *score* computed from the evidence by a ``Scorer`` (``scoring.py``):
the cosine itself, or (the default) the cosine corrected for local density with a weight the
scorer learns from these same labels every ``refit_every`` labels. Observations and lookups
keep their raw evidence, so when the scorer changes everything is re-scored and the threshold
recomputed; the similarity floor stays on the raw cosine (it decides what is labelled at all).

For a candidate threshold ``t`` let ``n(t)``, ``e(t)`` be the observations with ``s ≥ t`` and
the wrong ones among them, and ``h(t)`` the share of recent lookups whose best candidate has
``s ≥ t``: the highest such share over the last 100, 250, 1000 and 5000 lookups
(``lookup_windows``), so that when traffic turns to near-repeats the bound tightens within a
few hundred lookups instead of after thousands; with a prior calibrated on lookups
(``prior.py``), h(t) is never taken below that calibration's share H(t), and a window not
full yet counts the lookups it lacks at H(t) (``_window_shares``). Expected wrong
reuses per lookup at ``t`` are ``h(t) · e(t)/n(t)``; the verifier uses the Wilson upper confidence
bound (one-sided, ``reuse.confidence``) for ``e/n`` and picks the lowest ``t`` such that the bound
holds at ``t`` and at every higher ``t`` with enough data (``reuse.min_observations``). Until the
data proves a threshold, ``reuse.initial_threshold`` applies. Per entry, a wrong verdict raises that
entry's own floor above the similarity that
failed, so one bad neighbourhood does not wait for the global curve to notice.

With a prior that splits its replayed lookups into novel and repeat ones (``prior.py``), the
prior vouches for t by its wrong reuses per lookup on this traffic's mix instead,
W(t) = (1 − ρ)·F_N(t) + ρ·F_R(t) at its upper bound, ρ a lower bound on the share of recent
lookups that repeat a stored question (``_repeat_share``, ``_prior_bound``): traffic with more
repeats than the calibration's raises h(t) with right answers, which h(t) · e(t)/n(t) counted
as wrong at the calibration's rate. The gateway's own labels still fail a threshold or prove
one by themselves (``_compute_primary``).

Guards (negation, numbers, dates, units, antonyms, entities; ``guards/``) veto before any of
this, and vetoed candidates are neither served nor counted.
"""

from __future__ import annotations

import math
import random
import threading
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from ..settings import ReuseSettings
from .prior import Floats, Prior, WrongRates, count_above
from .scoring import CosineScorer, Evidence, Scorer


class Verdict(StrEnum):
    SERVE = "serve"
    VERIFY = "verify"  # would be served; recompute it this time and compare
    OBSERVE = "observe"  # below threshold: a miss, but label it from the fresh answer
    MISS = "miss"


def wilson(errors: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (low, high); counts may be weighted
    (fractional), as the prior's are."""
    if n <= 0:
        return 0.0, 1.0
    p = errors / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_arrays(errors: Floats, n: Floats, z: float) -> tuple[Floats, Floats]:
    """``wilson`` element-wise over arrays of counts: (low, high) arrays."""
    safe = np.where(n > 0, n, 1.0)
    p = errors / safe
    denom = 1 + z * z / safe
    centre = (p + z * z / (2 * safe)) / denom
    half = z * np.sqrt(np.maximum(p * (1 - p) / safe + z * z / (4 * safe * safe), 0.0)) / denom
    low = np.where(n > 0, np.maximum(0.0, centre - half), 0.0)
    high = np.where(n > 0, np.minimum(1.0, centre + half), 1.0)
    return low, high


def z_for(confidence: float) -> float:
    """One-sided normal quantile for ``confidence`` (e.g. 0.95 → 1.645)."""
    return NormalDist().inv_cdf(confidence)


# The source of a "wrong" label the shared curve does not learn: a non-admin tenant's
# feedback beyond its daily quota (``labels.py``). It raises its entry's own floor only (the
# entry is in that tenant's scope, so only that tenant is served by it), and counts nowhere
# else: not in n(t) or e(t), the scorer's refit, or ``by_source``.
ENTRY_ONLY = "feedback-noted"


@dataclass(frozen=True)
class Observation:
    similarity: float
    correct: bool
    source: str  # "observe" | "verify" | "feedback" | ENTRY_ONLY
    entry: int | None = None
    density: float = 0.0  # local density of the pair (see scoring.py); 0 when unknown
    pair: float | None = None  # the pair model's score (see pair.py); None when unscored

    @property
    def evidence(self) -> Evidence:
        return Evidence(self.similarity, self.density, self.pair)


@dataclass(frozen=True)
class ErrorEstimate:
    threshold: float
    error_rate: float  # expected wrong reuses per semantic lookup at the threshold
    error_low: float
    error_high: float
    hit_precision: float | None
    observations: int
    observations_above: int
    lookups: int
    prior_weight: float  # λ: what the prior's counts are multiplied by now (0: no prior)
    prior_pairs_above: float  # λ · prior pairs at or above the threshold
    # "prior", "prior+labels", "labels", "initial_threshold" (nothing proven yet) or
    # "none_proven" (the data shows the initial threshold unsafe: the threshold is above the
    # highest that failed, and the estimate is what serving there would give)
    decided_by: str
    # ρ, the lower bound on the share of recent lookups that repeat a stored question, that
    # the prior's wrong reuses were scaled to (None: no prior, or one without the split)
    repeat_share_low: float | None = None


_NONE = -math.inf  # the score of a lookup that found no candidate


class Verifier:
    STEP = 0.005

    def __init__(
        self,
        settings: ReuseSettings,
        *,
        rng: random.Random | None = None,
        scorer: Scorer | None = None,
        refit_every: int = 200,
        prior: Prior | None = None,
        recompute_every_lookups: int = 50,
        alternative: Scorer | None = None,
    ) -> None:
        """``settings``: the ``[reuse]`` section; the verifier reads ``error_bound`` (δ),
        ``initial_threshold``, ``similarity_floor``, ``min_observations``, ``verify_rate``,
        ``prior_verify_rate`` (the sampled-verification rate while the prior alone vouches for
        the threshold in force), ``confidence``, ``lookup_windows`` and ``prior_weight`` from
        it. ``scorer``: what is thresholded (the caller resolves ``reuse.scorer``; default:
        the plain cosine).
        ``prior``: an offline calibration of ``scorer``'s score (``prior.py``), counted with
        weight λ = ``prior_weight`` / (``prior_weight`` + labels seen). ``recompute_every_lookups``:
        the threshold is recomputed after this many lookups as well as after each label, so
        h(t) follows the traffic even while no label arrives.
        ``alternative``: a second scorer (the plain cosine beside the pair model) whose threshold
        is learned from the gateway's own labels alone; whichever of the two proves the larger
        share of lookups within δ is thresholded (see ``_compute``), so traffic on which the
        primary scorer is the weaker signal (another domain than its training data) is not
        held to it."""
        self.delta = settings.error_bound
        self.initial_threshold = settings.initial_threshold
        self.floor = settings.similarity_floor
        self.min_observations = settings.min_observations
        self.verify_rate = settings.verify_rate
        self.confidence = settings.confidence
        self.z = z_for(self.confidence)
        self.rng = rng or random.Random()
        self.scorer = scorer or CosineScorer()
        self.refit_every = refit_every
        self._lock = threading.Lock()
        # every labelled observation's raw evidence, for re-scoring when the scorer changes
        self._labelled: list[tuple[Evidence, bool]] = []
        # observation scores, sorted, and the scores of the wrong ones
        self._sims: list[float] = []
        self._wrong: list[float] = []
        # best-candidate evidence of the most recent semantic lookups (None: no candidate),
        # in arrival order, and their scores in the same order (-inf: no candidate): h(t)
        # describes the traffic of now
        self.lookup_windows = tuple(sorted(settings.lookup_windows))
        self._lookup_order: deque[Evidence | None] = deque(maxlen=self.lookup_windows[-1])
        self._lookup_scores: deque[float] = deque(maxlen=self.lookup_windows[-1])
        self._entry_floor: dict[int, Evidence] = {}  # the best-scoring wrong evidence
        self._threshold = self.initial_threshold
        self._by_source: dict[str, list[int]] = {}
        # the prior's observations on the scorer's scale (the pair model's calibration holds
        # pair probabilities, the blend's its own scores: ``Scorer.from_prior``)
        self.prior = prior.mapped(self.scorer.from_prior) if prior is not None else None
        self.prior_weight = settings.prior_weight
        self.prior_verify_rate = settings.prior_verify_rate
        self.recompute_every_lookups = recompute_every_lookups
        self._lookups_since = 0
        # sampled verification (``_sample``): the credit of would-be hits since the last
        # check, and the point it must reach for the next
        self._credit = 0.0
        # tightened inspection (``tightened_inspection``): right labels of would-be hits in a
        # row still needed before sampling returns to its rate (0: sampling at the rate)
        self.tightened_rights = settings.tightened_rights
        self._tightened = 0
        self._next_check = self.rng.random()
        self._decided_by = "initial_threshold"
        self._rho: float | None = None  # the repeat share's lower bound (_repeat_share)
        # the alternative scorer's labels, lookups and entry floors, on its own scale
        self.alternative = alternative
        self.z_alternative = z_for(1 - (1 - self.confidence) / 2)
        self._alt_sims: list[float] = []
        self._alt_wrong: list[float] = []
        self._alt_lookup_scores: deque[float] = deque(maxlen=self.lookup_windows[-1])
        self._alt_entry_floor: dict[int, float] = {}
        self._alt_active = False
        if self.prior is not None:  # a fresh verifier starts from the prior's threshold
            self._threshold = self._compute()

    # --- learning ---------------------------------------------------------------------------
    def add(self, obs: Observation, *, recompute: bool = True) -> None:
        """Learn a label: into the curve (n(t), e(t)), the scorer's refit and ``by_source``,
        and a wrong one raises its entry's own floor. A label of source ``ENTRY_ONLY``
        raises the floor only (if wrong) and leaves the threshold as it is."""
        ev = obs.evidence
        with self._lock:
            if not obs.correct and obs.entry is not None:
                self._raise_floor(obs.entry, ev)
            if obs.source == ENTRY_ONLY:
                return
            if obs.source in ("verify", "feedback"):  # a would-be or served hit's label
                if not obs.correct:
                    self._tightened = self.tightened_rights
                elif self._tightened:
                    self._tightened -= 1
            self._labelled.append((ev, obs.correct))
            s = self.scorer.score(ev)
            insort(self._sims, s)
            if not obs.correct:
                insort(self._wrong, s)
            if self.alternative is not None:
                a = self.alternative.score(ev)
                insort(self._alt_sims, a)
                if not obs.correct:
                    insort(self._alt_wrong, a)
            counts = self._by_source.setdefault(obs.source, [0, 0])
            counts[0] += 1
            counts[1] += 0 if obs.correct else 1
            refit = self.refit_every > 0 and len(self._labelled) % self.refit_every == 0
            if recompute and refit:
                self._refit()
            if recompute:
                self._threshold = self._compute()

    def _raise_floor(self, entry: int, ev: Evidence) -> None:
        """``entry`` failed at ``ev``: it is not served at that score or below again."""
        prev = self._entry_floor.get(entry)
        if prev is None or self.scorer.score(prev) < self.scorer.score(ev):
            self._entry_floor[entry] = ev
        if self.alternative is not None:
            floor = self._alt_entry_floor.get(entry, -math.inf)
            self._alt_entry_floor[entry] = max(floor, self.alternative.score(ev))

    def _refit(self) -> None:
        """Let the scorer learn from all labels; re-score everything if it changed."""
        if not self.scorer.fit(self._labelled):
            return
        score = self.scorer.score
        self._sims = sorted(score(e) for e, _ in self._labelled)
        self._wrong = sorted(score(e) for e, ok in self._labelled if not ok)
        self._lookup_scores = deque(
            (_NONE if e is None else score(e) for e in self._lookup_order),
            maxlen=self.lookup_windows[-1],
        )

    def note_lookup(
        self, best_similarity: float | None, density: float = 0.0, pair: float | None = None
    ) -> None:
        ev = None if best_similarity is None else Evidence(best_similarity, density, pair)
        with self._lock:
            self._lookup_order.append(ev)
            self._lookup_scores.append(_NONE if ev is None else self.scorer.score(ev))
            if self.alternative is not None:
                self._alt_lookup_scores.append(_NONE if ev is None else self.alternative.score(ev))
            self._lookups_since += 1
            # A lookup at or above the threshold raises h(t) there: recompute at once, so the
            # bound holds at the threshold in force after every lookup (about 0.5 ms with full
            # windows). Lookups below it only lower h(t) there; they are taken in every
            # ``recompute_every_lookups`` (and after the 10th and 25th, while h moves most).
            every = self.recompute_every_lookups
            latest = self._alt_lookup_scores if self._alt_active else self._lookup_scores
            above = latest[-1] >= self._threshold
            if above or (
                every and (self._lookups_since >= every or len(self._lookup_scores) in (10, 25))
            ):
                self._threshold = self._compute()

    def _lam(self) -> float:
        """λ, the weight of each prior pair now: the prior counts as at most ``prior_weight``
        pairs in all (its calibration data is not this gateway's traffic, so its confidence is
        capped), and halves again with every ``prior_weight`` labels of the gateway's own."""
        if self.prior is None or not self.prior.pairs:
            return 0.0
        cap = min(1.0, self.prior_weight / self.prior.pairs)
        return cap * self.prior_weight / (self.prior_weight + len(self._labelled))

    def _counts(self, t: float, lam: float) -> tuple[float, float, int, int]:
        """(n, e) pooled with the prior, and (n, e) of the gateway's own labels, at t."""
        n_on = self._above(self._sims, t)
        e_on = self._above(self._wrong, t)
        if self.prior is None or lam == 0.0:
            return n_on, e_on, n_on, e_on
        n_p, e_p = self.prior.above(t)
        return n_on + lam * n_p, e_on + lam * e_p, n_on, e_on

    def _active_counts(self, t: float) -> tuple[float, float, int, int]:
        """``_counts`` for the scorer in force: the alternative has no prior."""
        if self._alt_active:
            n = self._above(self._alt_sims, t)
            e = self._above(self._alt_wrong, t)
            return n, e, n, e
        return self._counts(t, self._lam())

    def forget_entry(self, entry: int) -> None:
        with self._lock:
            self._entry_floor.pop(entry, None)
            self._alt_entry_floor.pop(entry, None)

    def recompute(self) -> None:
        """Refit the scorer on every label (as at start-up) and recompute the threshold."""
        with self._lock:
            self._refit()
            self._threshold = self._compute()

    def _above(self, xs: list[float], t: float) -> int:
        return len(xs) - bisect_left(xs, t - 1e-12)

    def _hit_shares(self, grid: Floats, windows: list[tuple[Floats, int]] | None = None) -> Floats:
        """h(t) for each ``t`` of ``grid``: the share of recent lookups whose best candidate
        scores ≥ t, the highest over the windows, so a surge of near-repeats counts at once,
        not after thousands of lookups have diluted it. With a prior calibrated on lookups,
        h(t) is never taken below the calibration's own share H(t): traffic that has so far
        been all novel (h near 0) cannot pull the threshold down to where the first
        near-repeats would be served wrongly. H(t) decides only where the gateway's own traffic
        is sparser above t than the calibration's, i.e. where hits are rare anyway.
        ``windows``: ``_windows(grid)``, when the caller has it already."""
        prior_h = self.prior.hit_shares(grid) if self.prior is not None else None
        if not self._lookup_scores:
            return prior_h if prior_h is not None else np.ones(len(grid))
        own = np.zeros(len(grid))
        for above, size in self._windows(grid, prior_h) if windows is None else windows:
            own = np.maximum(own, above / size)
        return own if prior_h is None else np.maximum(own, prior_h)

    def _windows(self, grid: Floats, fill: Floats | None = None) -> list[tuple[Floats, int]]:
        """``_window_counts`` of the recent lookups on ``grid``, padded at the prior's H(t)
        (if any; ``fill``: that H(t) on ``grid``, when the caller has it already): what h(t)
        and ρ are both computed from."""
        recent = np.fromiter(self._lookup_scores, float)
        if fill is None and self.prior is not None:
            fill = self.prior.hit_shares(grid)
        return list(self._window_counts(recent, grid, fill))

    def _compute(self) -> float:
        """The threshold in force, and on which scorer: the primary's (``_compute_primary``),
        unless the alternative proves a threshold on the gateway's own labels at which a
        larger share of recent lookups would be served. The alternative must prove it at half
        the miss probability (one-sided confidence 1 − (1 − c)/2), so that choosing the
        better of two tests keeps the chance of a wrong bound within the primary's; and its
        hits must be right at least 1 − 10δ of the time (upper bound), so it never relies on
        hits being rare, which is what lets a novel stream prove any threshold."""
        self._lookups_since = 0
        t = self._compute_primary()
        self._alt_active = False
        if self.alternative is None:
            return t
        alt = self._compute_alternative()
        if alt is None:
            return t
        recent = np.fromiter(self._lookup_scores, float)
        alt_recent = np.fromiter(self._alt_lookup_scores, float)
        share = np.count_nonzero(recent >= t) / len(recent)
        alt_share = np.count_nonzero(alt_recent >= alt) / len(alt_recent)
        if alt_share > share:
            self._alt_active = True
            self._decided_by = "labels"
            return alt
        return t

    def _compute_alternative(self) -> float | None:
        """The lowest threshold on the alternative scorer that the gateway's own labels prove
        (see ``_compute``), or None while none is proven or fewer lookups than the smallest
        window have been seen."""
        assert self.alternative is not None
        recent = np.fromiter(self._alt_lookup_scores, float)
        if len(recent) < self.lookup_windows[0]:
            return None
        steps = round((1.0 - self.floor) / self.STEP)
        grid = np.round(self.floor + np.arange(steps, -1, -1) * self.STEP, 6)  # high to low
        n = count_above(np.asarray(self._alt_sims, float), grid)
        high = wilson_arrays(
            count_above(np.asarray(self._alt_wrong, float), grid), n, self.z_alternative
        )[1]
        h = self._window_shares(recent, grid)
        # not yet precise enough to rely on (whatever h(t) is): skipped, as too few labels are
        considered = (n >= self.min_observations) & (high <= 10 * self.delta)
        passed = h * high <= self.delta
        return self._lowest_proven(grid, considered, passed)

    def _window_shares(self, recent: Floats, grid: Floats, fill: Floats | None = None) -> Floats:
        """For each ``t`` of ``grid``: the highest share, over the lookup windows, of the
        ``recent`` lookups (oldest first) whose score is ≥ t.

        ``fill`` (the prior's H(t)): a window that is not full yet counts the lookups it
        lacks at that share. Without it, a fresh gateway's first few lookups were a window of
        their own: three near-repeats in the first ten made h(t) 0.3 where the calibration's
        is 0.02, and the threshold rose to 0.99 after a handful of requests (a new user's
        trial, 2026-12-02). The padding is a prior of one window's size: it is outweighed
        lookup by lookup and gone once the window is full, and the gateway's own labels
        overrule the prior as before wherever they show δ broken."""
        shares = np.zeros(len(grid))
        for above, size in self._window_counts(recent, grid, fill):
            shares = np.maximum(shares, above / size)
        return shares

    def _window_counts(
        self, recent: Floats, grid: Floats, fill: Floats | None = None
    ) -> Iterator[tuple[Floats, int]]:
        """Per lookup window: (lookups scoring ≥ t for each ``t`` of ``grid``, the window's
        size), a window not full yet padded at ``fill`` (``_window_shares``); empty windows
        without ``fill`` are left out."""
        for w in self.lookup_windows:
            window = np.sort(recent[-w:])
            above = count_above(window, grid)
            if fill is not None and len(window) < w:
                yield above + (w - len(window)) * fill, w
            elif len(window):
                yield above, len(window)

    def _repeat_share(
        self, grid: Floats, lam: float, rates: WrongRates | None, windows: list[tuple[Floats, int]]
    ) -> float | None:
        """ρ: a lower confidence bound on the share of recent lookups that are *repeats* (a
        stored question has their meaning), the lowest over the lookup windows; None without
        a prior that splits its lookups into novel and repeat (``Prior.wrong_rates``).

        A novel lookup scores ≥ u with probability F_N(u), a repeat with some T_R(u) ≤ 1, so
        h(u) ≤ (1 − p_R)·F_N(u) + p_R and p_R ≥ (h(u) − F_N(u)) / (1 − F_N(u)) for every u:
        the black-box shift estimate of Lipton, Wang & Smola (2018, "Detecting and correcting
        for label shift with black box predictors") with T_R(u) bounded by 1, so a repeat that
        scores higher on this traffic than on the calibration's can only make ρ lower. h(u)
        is taken at its Wilson lower bound per window, F_N(u) at the prior's upper bound (its
        counts weighted by λ), and the best u of the grid is kept. The one assumption: this
        traffic's novel lookups find a look-alike scoring ≥ u no more often than the
        calibration's did (quora_val, whose non-duplicate pairs were collected as likely
        duplicates, so its look-alikes are close ones); where they do, the gateway's own
        labels overrule the prior (``_compute_primary``). ``rates``: the prior's
        ``wrong_rates(grid)`` (None: no split, or λ = 0); ``windows``: ``_windows(grid)``."""
        if rates is None or lam <= 0:
            return None
        e_novel, _, novel, _ = rates
        f_novel = wilson_arrays(lam * e_novel, np.full(len(grid), lam * novel), self.z)[1]
        rho = 1.0
        for above, size in windows:
            h_low = wilson_arrays(above, np.full(len(grid), float(size)), self.z)[0]
            bound = (h_low - f_novel) / np.maximum(1.0 - f_novel, 1e-12)
            rho = min(rho, float(np.clip(np.max(bound), 0.0, 1.0)))
        return rho

    def _prior_bound(
        self, grid: Floats, lam: float, rates: WrongRates | None
    ) -> tuple[Floats, Floats, Floats] | None:
        """The prior's wrong reuses per lookup at each ``t`` of ``grid`` on this traffic's mix
        of novel and repeat lookups, (point, Wilson low, Wilson high):
        W(t) = (1 − ρ)·F_N(t) + ρ·F_R(t), the most W can be for a repeat share of at least ρ
        (``_repeat_share``; F_R(t) alone where repeats are served wrongly more often than
        novel lookups are). F_N and F_R are rates per *lookup*, so their confidence comes from
        the calibration's lookups (λ-weighted, as all its counts are), not from its few hits
        above a high t. ``rates``: the prior's ``wrong_rates(grid)``; None without the split
        (``Prior.wrong_rates``), or λ = 0.

        Traffic with more repeats than the calibration's raises h(t) with right answers; the
        former estimate, h(t) × the calibration's wrong share among its hits, counted them as
        wrong at the calibration's rate (a chatbot stream of paraphrases put the threshold at
        0.995), and held traffic of novel lookups only to the calibration's wrong reuses per
        lookup, which its repeats dilute."""
        if rates is None or lam <= 0 or self._rho is None:
            return None
        e_novel, e_repeat, novel, repeats = rates
        rho = self._rho

        def mixed(f_novel: Floats, f_repeat: Floats) -> Floats:
            return np.where(f_repeat > f_novel, f_repeat, (1 - rho) * f_novel + rho * f_repeat)

        n_novel = np.full(len(grid), lam * novel)
        n_repeat = np.full(len(grid), lam * repeats)
        novel_low, novel_high = wilson_arrays(lam * e_novel, n_novel, self.z)
        repeat_low, repeat_high = wilson_arrays(lam * e_repeat, n_repeat, self.z)
        point = mixed(e_novel / max(novel, 1.0), e_repeat / max(repeats, 1.0))
        return point, mixed(novel_low, repeat_low), mixed(novel_high, repeat_high)

    def _wrong_rates(self, grid: Floats, lam: float) -> WrongRates | None:
        """The prior's ``wrong_rates(grid)``, or None without a split prior or with λ = 0."""
        return self.prior.wrong_rates(grid) if self.prior is not None and lam > 0 else None

    @staticmethod
    def _lowest_proven(
        grid: Floats, considered: npt.NDArray[np.bool_], passed: npt.NDArray[np.bool_]
    ) -> float | None:
        """Walking ``grid`` from its highest threshold down, over the ``considered`` ones: the
        last that ``passed`` before the first that did not (None if the first one failed or
        none is considered)."""
        idx = np.flatnonzero(considered)
        if not len(idx):
            return None
        failures = np.flatnonzero(~passed[idx])
        upto = idx if not len(failures) else idx[: failures[0]]
        return float(grid[upto[-1]]) if len(upto) else None

    def _compute_primary(self) -> float:
        """The lowest threshold, on the grid of ``STEP`` from the floor (or the lowest
        observed score) up to 1, such that the bound holds there and at every higher
        threshold with at least ``min_observations`` observations (the prior's included);
        all thresholds are tested at once (numpy), as one pass from the top down would."""
        lam = self._lam()
        # scores may sit below the floor (the density correction lowers them): start the grid
        # at the lowest observed score, on the same 0.005 lattice
        low = self.floor
        if self._sims and self._sims[0] < low:
            low = self.floor - math.ceil((self.floor - self._sims[0]) / self.STEP) * self.STEP
        steps = round((1.0 - low) / self.STEP)
        grid = np.round(low + np.arange(steps, -1, -1) * self.STEP, 6)  # high to low
        n_on = count_above(np.asarray(self._sims, float), grid)
        e_on = count_above(np.asarray(self._wrong, float), grid)
        n, e = n_on, e_on
        windows = self._windows(grid)
        h = self._hit_shares(grid, windows)
        rates = self._wrong_rates(grid, lam)
        self._rho = self._repeat_share(grid, lam, rates, windows)
        if self.prior is not None and lam != 0.0:
            n_p, e_p = self.prior.counts(grid)
            n, e = n_on + lam * n_p, e_on + lam * e_p
        bound = self._prior_bound(grid, lam, rates)
        if bound is None:  # the prior's precision among its hits, pooled with the labels
            ok = h * wilson_arrays(e, n, self.z)[1] <= self.delta
        else:  # its wrong reuses per lookup on this traffic's mix (never above h(t))
            ok = np.minimum(bound[2], h) <= self.delta
        own = np.zeros(len(grid), dtype=bool)
        if lam > 0:
            low_on, high_on = wilson_arrays(e_on, n_on, self.z)
            # the gateway's own labels overrule the prior where they show δ broken: their
            # lower confidence bound (cautious for few labels) already exceeds it ...
            ok &= (n_on <= 0) | (h * low_on <= self.delta)
            # ... and prove a threshold by themselves where they are enough to: the prior is
            # for the cold start, and on traffic unlike its calibration data (all paraphrases,
            # another domain) its pessimism would otherwise outlive thousands of own labels
            own = ~ok & (n_on >= self.min_observations) & (h * high_on <= self.delta)
        considered = n >= self.min_observations
        passed = ok | own
        best = self._lowest_proven(grid, considered, passed)
        if best is not None:
            at = int(np.flatnonzero(grid == best)[0])
            if lam == 0.0 or own[at]:
                self._decided_by = "labels"
            else:
                self._decided_by = "prior" if n_on[at] == 0 else "prior+labels"
            return best
        self._decided_by = "initial_threshold"
        idx = np.flatnonzero(considered & ~passed)
        failed_at = float(grid[idx[0]]) if len(idx) else None
        if failed_at is not None and failed_at >= self.initial_threshold:
            # the data shows even the initial threshold unsafe: above the highest that failed
            self._decided_by = "none_proven"
            return min(1.0 + self.STEP, failed_at + self.STEP)
        return self.initial_threshold

    # --- deciding ---------------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def active_scorer(self) -> Scorer:
        """The scorer whose threshold is in force (see ``_compute``)."""
        if self._alt_active and self.alternative is not None:
            return self.alternative
        return self.scorer

    def threshold_for(self, entry: int) -> float:
        t = self._threshold
        if self._alt_active:
            alt_failed = self._alt_entry_floor.get(entry)
            return t if alt_failed is None else max(t, alt_failed + self.STEP)
        failed = self._entry_floor.get(entry)
        return t if failed is None else max(t, self.scorer.score(failed) + self.STEP)

    def score(self, similarity: float, density: float = 0.0, pair: float | None = None) -> float:
        return self.active_scorer.score(Evidence(similarity, density, pair))

    def decide(
        self,
        entry: int,
        similarity: float,
        density: float = 0.0,
        pair: float | None = None,
        *,
        labels: bool = True,
    ) -> Verdict:
        """What to do with a candidate of ``entry`` at this evidence. ``labels``: the
        request's model labels observations with its answers (``answer_labels.py``); when
        it does not, a would-be hit on a threshold the data (the prior's included) proves is
        served unverified, one on an unproven threshold is a miss, and a candidate below the
        threshold is a miss, not observed: recomputing to compare answers that carry no
        information would spend energy on noise."""
        t = self.threshold_for(entry)
        if self.score(similarity, density, pair) >= t:
            # Earn trust first: until enough labels (the prior's included) exist at or above
            # the threshold, every would-be hit is verified (recomputed and compared); and
            # again after a wrong one, until enough are right in a row (tightened inspection).
            n, _, n_on, _ = self._active_counts(t)
            if not labels:
                return Verdict.SERVE if n >= self.min_observations else Verdict.MISS
            if n < self.min_observations or self._tightened:
                return Verdict.VERIFY
            rate = self.verify_rate
            if self.prior is not None and n_on < self.min_observations:
                rate = max(rate, self.prior_verify_rate)  # the prior alone vouches for t
            return Verdict.VERIFY if self._sample(rate) else Verdict.SERVE
        if similarity >= self.floor and labels:
            return Verdict.OBSERVE
        return Verdict.MISS

    @property
    def tightened_inspection(self) -> int:
        """Right labels of would-be hits in a row still needed before sampled verification
        returns to its rate; 0 while it runs at its rate (see the module docstring)."""
        return self._tightened

    def seed(self, seed: int) -> None:
        """Seed sampled verification's draws (benchmarks and tests that replay one stream
        twice): the generator and the point the next check must reach, drawn from it as at
        construction (seeding the generator alone left that first point unseeded)."""
        with self._lock:
            self.rng.seed(seed)
            self._next_check = self.rng.random()

    def _sample(self, rate: float) -> bool:
        """Whether to verify this would-be hit, at ``rate`` (0–1): systematic sampling with
        a random start per draw, not one coin per hit. Each hit adds ``rate`` to a credit;
        a hit is verified when the credit reaches a point drawn uniformly in [0, 1), which
        is then spent. The share verified is ``rate`` as with coins, but the gap between two
        checks is never more than 2 / rate − 1 hits (9 at 20 %), where independent coins
        left 25 hits unchecked in a row one time in 260 (0.8^25): on traffic the prior
        misjudges, those were 25 wrong answers before the first wrong label could raise the
        threshold (``bench/prior_verify_rate.py``). The start is random, so which hit is
        checked cannot be predicted from the count of hits."""
        with self._lock:
            self._credit += rate
            if self._credit < self._next_check:
                return False
            self._credit -= 1.0
            self._next_check = self.rng.random()
            return True

    # --- reporting --------------------------------------------------------------------------
    def estimate(self) -> ErrorEstimate:
        with self._lock:
            t = self._threshold
            lam = self._lam()
            n, e, n_on, _ = self._active_counts(t)
            if self._alt_active:
                recent = np.fromiter(self._alt_lookup_scores, float)
                h = float(self._window_shares(recent, np.array([t]))[0])
                low, high = wilson(e, n, self.z_alternative)
            else:
                h = float(self._hit_shares(np.array([t]))[0])
                low, high = wilson(e, n, self.z)
            rate = h * (e / n) if n else 0.0
            precision = (1 - e / n) if n else None
            bound = None
            if not self._alt_active and self._decided_by in ("prior", "prior+labels"):
                one = np.array([t])
                bound = self._prior_bound(one, lam, self._wrong_rates(one, lam))
            if bound is not None:  # what the prior vouched with: wrong reuses per lookup
                rate, low, high = (min(h, float(x[0])) for x in bound)
                low, high = low / h if h else 0.0, high / h if h else 0.0
                precision = 1 - rate / h if h else None
            return ErrorEstimate(
                threshold=t,
                error_rate=rate,
                error_low=h * low,
                error_high=h * high,
                hit_precision=precision,
                observations=len(self._sims),
                observations_above=n_on,
                lookups=len(self._lookup_scores),
                prior_weight=lam,
                prior_pairs_above=n - n_on,
                decided_by=self._decided_by,
                repeat_share_low=None if self._alt_active or lam == 0 else self._rho,
            )

    def by_source(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {k: {"total": v[0], "wrong": v[1]} for k, v in self._by_source.items()}
