"""Replay of the reuse decision on the ``reuse_quality.py`` stream, without HTTP.

``bench/reuse_quality.py`` asks every question1 of a pairs file, then every question2, through
the gateway. This replays the same stream against the reuse pipeline's decision logic alone:
exact match on the canonical question, the 8 nearest stored questions by MiniLM cosine
(embeddings from ``bench/signals.py``'s cache, or computed), the lexical guards, then a
decision procedure. A miss stores its question (so later requests can match it); a request
that is labelled (a miss with a candidate above the floor, or a sampled verification) teaches
the procedure whether its candidate had the same meaning, as the gateway learns from comparing
answers. Wrong / all requests counts phase 2, as the gateway benchmark does.

Procedures compared, all fed the same kind of labels:

- ``verifier, cosine scorer`` / ``density scorer``: ``boundgate.reuse.verifier.Verifier`` with
  the gateway's defaults and the given ``Scorer`` (``boundgate.reuse.scoring``), learning
  online from nothing; then the density scorer with looser bound settings;
- ``fixed …``: a fixed threshold on the cosine, or on cos − 0.3·density, labelled nothing
  (reference; the best one at δ is picked on the evaluation stream itself, so these rows are
  *oracles*, not results; 0.3 is what the regression learned on this file).

    python bench/decisions.py --pairs ../shared/data/cache/quora_val.csv
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from boundgate.reuse.embedder import OnnxEmbedder
from boundgate.reuse.guards import compare
from boundgate.reuse.scope import canonical_query
from boundgate.reuse.scoring import CosineScorer, DensityScorer
from boundgate.reuse.verifier import Observation, Verdict, Verifier
from boundgate.settings import ReuseSettings
from reuse_quality import Components, load_pairs
from signals import cached

K = 32  # nearest earlier questions kept per request; the store search takes the first 8 stored
CANDIDATES = 8
DENSITY_K = 8  # neighbours averaged for a question's local density


class Procedure(Protocol):
    floor: float

    def decide(self, entry: int, similarity: float, density: float) -> Verdict: ...
    def add(self, obs: Observation, density: float) -> None: ...
    def note_lookup(self, best: tuple[float, float] | None) -> None: ...


@dataclass
class Fixed:
    threshold: float
    beta: float = 0.0
    floor: float = 0.70

    def decide(self, entry: int, similarity: float, density: float) -> Verdict:
        s = similarity - self.beta * density
        return Verdict.SERVE if s >= self.threshold else Verdict.MISS

    def add(self, obs: Observation, density: float) -> None:
        pass

    def note_lookup(self, best: tuple[float, float] | None) -> None:
        pass


class Gateway:
    """The gateway's verifier (``boundgate.reuse.verifier``) with a given scorer."""

    def __init__(self, verifier: Verifier) -> None:
        self.v = verifier
        self.floor = verifier.floor

    def decide(self, entry: int, similarity: float, density: float) -> Verdict:
        return self.v.decide(entry, similarity, density)

    def add(self, obs: Observation, density: float) -> None:
        self.v.add(Observation(obs.similarity, obs.correct, obs.source, obs.entry, density))

    def note_lookup(self, best: tuple[float, float] | None) -> None:
        if best is None:
            self.v.note_lookup(None)
        else:
            self.v.note_lookup(best[0], best[1])

    @property
    def threshold(self) -> float:
        return self.v.threshold


@dataclass
class Result:
    name: str
    recall: float
    wrong: float
    served: int
    labels: int
    threshold: float | None
    wrong_phase1: int = 0
    extra: dict[str, float] = field(default_factory=dict)


Neighbours = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]


def neighbours(vecs: npt.NDArray[np.float32], earlier: bool = True) -> Neighbours:
    """For each row i, the K most similar other rows (only rows j < i if ``earlier``)."""
    n = len(vecs)
    idx = np.full((n, K), -1, dtype=np.int64)
    sim = np.full((n, K), -np.inf, dtype=np.float32)
    for s in range(0, n, 1024):
        block = vecs[s : s + 1024] @ vecs.T
        rows = np.arange(s, min(n, s + 1024))
        if earlier:
            block[rows[:, None] <= np.arange(n)[None, :]] = -np.inf
        else:
            block[rows - s, rows] = -np.inf
        k = min(K, n - 1)
        part = np.argpartition(-block, k, axis=1)[:, :k]
        vals = np.take_along_axis(block, part, axis=1)
        order = np.argsort(-vals, axis=1)
        idx[rows, :k] = np.take_along_axis(part, order, axis=1)
        sim[rows, :k] = np.take_along_axis(vals, order, axis=1)
    return idx, sim


def replay(
    name: str,
    proc: Procedure,
    around: Neighbours,
    texts: list[str],
    phase2_start: int,
    meaning: list[str],
    is_dup: npt.NDArray[np.bool_],
    nb: tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]],
    threshold: Callable[[], float | None] = lambda: None,
) -> Result:
    idx, sim = nb
    canon = [canonical_query(t) for t in texts]
    stored = np.zeros(len(texts), dtype=bool)
    exact: dict[str, int] = {}
    right_dup = wrong = served = labels = wrong_p1 = 0
    for i, q in enumerate(texts):
        phase2 = i >= phase2_start
        j_exact = exact.get(canon[i])
        if j_exact is not None:  # exact hit: the same question, the same meaning
            if phase2:
                served += 1
                right_dup += int(is_dup[i - phase2_start])
            continue
        best: tuple[int, float] | None = None
        near: list[float] = []
        for j, s in zip(idx[i], sim[i], strict=True):
            if j < 0 or not stored[j]:
                continue
            near.append(float(s))
            if len(near) > CANDIDATES or s < proc.floor or best is not None:
                continue
            if canon[j] == canon[i] or not compare(q, texts[j]).ok:
                continue
            best = (int(j), float(s))
        density = 0.0
        if best is not None:
            # the asked question's and the candidate's mean cosine to their nearest stored
            # questions (the candidate's own excluded)
            r_asked = float(np.mean(near[:DENSITY_K]))
            aj, asim = around[0][best[0]], around[1][best[0]]
            top = [float(x) for y, x in zip(aj, asim, strict=True) if y >= 0 and stored[y]]
            r_cand = float(np.mean(top[:DENSITY_K])) if top else 0.0
            density = (r_asked + r_cand) / 2
        proc.note_lookup(None if best is None else (best[1], density))
        verdict = Verdict.MISS if best is None else proc.decide(best[0], best[1], density)
        if verdict is Verdict.SERVE and best is not None:
            ok = meaning[best[0]] == meaning[i]
            if phase2:
                served += 1
                if ok:
                    right_dup += int(is_dup[i - phase2_start])
                else:
                    wrong += 1
            elif not ok:
                wrong_p1 += 1
            continue
        if verdict in (Verdict.VERIFY, Verdict.OBSERVE) and best is not None:
            labels += 1
            src = "verify" if verdict is Verdict.VERIFY else "observe"
            proc.add(Observation(best[1], meaning[best[0]] == meaning[i], src, best[0]), density)
        stored[i] = True
        exact[canon[i]] = i
    n2 = len(texts) - phase2_start
    return Result(
        name,
        right_dup / max(1, int(is_dup.sum())),
        wrong / n2,
        served,
        labels,
        threshold(),
        wrong_p1,
    )


def default_rows(run: Callable[[str, Procedure], Result], seed: int) -> list[Result]:
    results: list[Result] = []
    for scorer in (CosineScorer(), DensityScorer()):
        g = Gateway(Verifier(ReuseSettings(), rng=random.Random(seed), scorer=scorer))
        r = run(f"verifier, {scorer.name} scorer", g)
        r.extra.update(scorer.describe())
        results.append(r)
    # how much of the gap to the oracle is the bound's caution: looser settings, same labels
    for label, kw in (
        ("min_observations 10", {"min_observations": 10}),
        ("confidence 0.80", {"confidence": 0.80}),
        ("verify_rate 0.20", {"verify_rate": 0.20}),
    ):
        scorer = DensityScorer()
        g = Gateway(Verifier(ReuseSettings(**kw), rng=random.Random(seed), scorer=scorer))
        r = run(f"verifier, density scorer, {label}", g)
        r.extra.update(scorer.describe())
        results.append(r)
    for t in (0.96, 0.97, 0.98, 0.99):
        results.append(run(f"fixed cos ≥ {t:.2f} (oracle reference)", Fixed(t)))
    for t in (0.72, 0.74, 0.76, 0.78, 0.80):
        results.append(run(f"fixed cos − 0.3·density ≥ {t:.2f} (oracle reference)", Fixed(t, 0.3)))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/boundgate-signals"))
    ap.add_argument(
        "--windows",
        default=None,
        help="only compare the verifier's lookup windows for h(t), e.g. '5000;1000;250,1000,5000'",
    )
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    pairs = load_pairs(args.pairs, args.limit, args.seed)
    comp = Components.of(pairs)
    stored_q1 = list(dict.fromkeys(q1 for q1, _, _ in pairs))
    asked = [q2 for _, q2, _ in pairs]
    texts = stored_q1 + asked
    meaning = [comp.find(t) for t in texts]
    is_dup = np.array([d for _, _, d in pairs], dtype=bool)

    emb = OnnxEmbedder(threads=1)
    v = np.vstack(
        [
            cached(args.cache, "minilm", stored_q1, lambda: emb.embed(stored_q1)),
            cached(args.cache, "minilm", asked, lambda: emb.embed(asked)),
        ]
    )
    print("neighbours ...", file=sys.stderr)
    nb = neighbours(v)
    around = neighbours(v, earlier=False)

    def run(name: str, proc: Procedure) -> Result:
        def t() -> float | None:
            value = getattr(proc, "threshold", None)
            return float(value) if value is not None else None

        return replay(
            name,
            proc,
            around,
            texts,
            len(stored_q1),
            meaning,
            is_dup,
            nb,
            threshold=t,
        )

    results: list[Result] = []
    if args.windows:  # only the lookup windows of h(t)
        for spec in args.windows.split(";"):
            windows = [int(w) for w in spec.split(",")]
            rng = random.Random(args.seed)
            v = Verifier(ReuseSettings(lookup_windows=windows), rng=rng, scorer=DensityScorer())
            results.append(run(f"verifier, density scorer, lookup windows {spec}", Gateway(v)))
    else:
        results = default_rows(run, args.seed)
    print(f"\n# Decision procedures on the reuse_quality stream ({args.pairs.name})\n")
    print(
        "| procedure | recall on duplicates | wrong / phase-2 requests | served | labels "
        "| threshold |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        t = "" if r.threshold is None else f"{r.threshold:.3f}"
        extra = " ".join(f"{k}={v:.3f}" for k, v in r.extra.items())
        print(
            f"| {r.name} | {r.recall:.3f} | {r.wrong:.4f} | {r.served} | {r.labels} | {t} {extra}|"
        )


if __name__ == "__main__":
    main()
