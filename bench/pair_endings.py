"""Does the pair model read the questions or their closing punctuation?

Scores labelled pairs with a pair model under four conditions of the questions' endings, after
the guards and the cosine floor (``reuse.similarity_floor``, 0.70), as a lookup scores them:

- ``as written``: the pairs as the set has them;
- ``all "?"``: a "?" appended to every question that ends without "?", "." or "!";
- ``all bare``: closing "?", "." and "!" stripped from every question;
- ``random``: each side's ending flipped (stripped if it has one, else a "?" appended) with
  probability 1/2, seeded: endings that say nothing about the meaning, as in real traffic,
  where people type a question with or without its mark whatever it asks.

A model that reads the questions scores the four alike. The model shipped before the
nineteenth session (trained without ``training/pair_model.py --style-noise``) did not: with
random endings it let four to five times as many look-alikes past on the held-out chat sets
(bench/RESULTS.md, "The pair model reads the question marks"); the one shipped since was
trained with it ("The style-noise model shipped").

Prints, per set and model, paraphrases reused (share of the set's duplicates whose pair
passes the guards, the floor and the threshold) / look-alikes past (how many non-duplicates
do) at each ``--threshold`` (by default each model's own starting threshold: the verifier's
before any lookup or label, from the model's prior, ``fresh_threshold``). With ``--quora``,
each model's threshold is also taken where it makes the same share of that file's pairs wrong
(raw labels: 0.5 %, 1 %), so models are compared at equal error on the calibration file
rather than at one score.

    PYTHONPATH=src python bench/pair_endings.py --pairs bench/data/chat_heldout.csv \
        --pairs bench/data/chat_heldout2.csv [--model DIR ...] \
        [--quora ../shared/data/cache/quora_val.csv]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))

from pairdata import flipped, read_pairs

from boundgate.reuse.embedder import OnnxEmbedder
from boundgate.reuse.guards import compare
from boundgate.reuse.pair import OnnxPairScorer, packaged_model_dir
from boundgate.reuse.prior import Prior
from boundgate.reuse.scoring import PairModelScorer
from boundgate.reuse.verifier import Verifier
from boundgate.settings import ReuseSettings

FLOOR = 0.70
_ENDED = re.compile(r"[?.!]$")


def conditions(seed: int) -> dict[str, Callable[[str], str]]:
    rng = random.Random(seed)
    return {
        "as written": lambda q: q,
        'all "?"': lambda q: q if _ENDED.search(q.rstrip()) else q.rstrip() + "?",
        "all bare": lambda q: q.rstrip().rstrip("?.!").rstrip(),
        "random": lambda q: flipped(q) if rng.random() < 0.5 else q,
    }


def read(path: Path) -> tuple[list[tuple[str, str]], np.ndarray]:
    rows = read_pairs(path)
    return [(a, b) for a, b, _ in rows], np.array([d == 1 for *_, d in rows])


def scores(scorer: OnnxPairScorer, pairs: list[tuple[str, str]]) -> np.ndarray:
    return np.concatenate(
        [np.asarray(scorer.score_pairs(pairs[i : i + 128])) for i in range(0, len(pairs), 128)]
    )


def eligible(embedder: OnnxEmbedder, pairs: list[tuple[str, str]]) -> np.ndarray:
    """Pairs a lookup would score: the guards pass them (as written) and their cosine is at
    least the floor."""
    a = np.asarray(embedder.embed([p[0] for p in pairs]))
    b = np.asarray(embedder.embed([p[1] for p in pairs]))
    return (np.sum(a * b, axis=1) >= FLOOR) & np.array([compare(x, y).ok for x, y in pairs])


def fresh_threshold(model_dir: Path) -> float:
    """The threshold a fresh verifier starts from with this model: from the model's prior
    (``calibration.json``) and the default ``[reuse]`` settings, before any lookup or label
    (a gateway's lookups then move it by a grid step or so: 0.89 here, 0.895 end to end).
    A model directory without a calibration has none (then pass ``--threshold`` or
    ``--quora``)."""
    prior = Prior.load(model_dir / PairModelScorer.prior_file, PairModelScorer.name)
    return Verifier(ReuseSettings(), scorer=PairModelScorer(), prior=prior).threshold


def equal_error_threshold(s: np.ndarray, ok: np.ndarray, dup: np.ndarray, share: float) -> float:
    """The lowest threshold (0.0025 steps) at which at most ``share`` of all pairs are
    non-duplicates passing."""
    for t in np.arange(0.30, 1.0, 0.0025):
        if ((ok & (s >= t)) & ~dup).sum() / len(dup) <= share:
            return float(t)
    return 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=Path, action="append", required=True, help="labelled CSV")
    ap.add_argument("--model", type=Path, action="append", default=[], help="a model dir")
    ap.add_argument("--threshold", type=float, action="append", default=[])
    ap.add_argument("--quora", type=Path, help="labelled file for equal-error thresholds")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    embedder = OnnxEmbedder(threads=2)
    model_dirs = {"shipped": packaged_model_dir()} | {str(m): m for m in args.model}
    models = {name: OnnxPairScorer(d, threads=2) for name, d in model_dirs.items()}
    thresholds = {
        name: [(f"{t}", t) for t in args.threshold]
        or [
            (f"{fresh_threshold(d):.4f} (fresh verifier)", fresh_threshold(d))
            for d in [model_dirs[name]]
            if (d / PairModelScorer.prior_file).exists()  # a model not calibrated yet: none
        ]
        for name in models
    }
    if args.quora:
        qpairs, qdup = read(args.quora)
        qok = eligible(embedder, qpairs)
        for name, scorer in models.items():
            s = scores(scorer, qpairs)
            for share in (0.005, 0.01):
                t = equal_error_threshold(s, qok, qdup, share)
                recall = ((qok & (s >= t)) & qdup).sum() / qdup.sum()
                label = f"{t:.4f} ({share:.1%} of {args.quora.name} wrong, recall {recall:.3f})"
                thresholds[name].append((label, t))
    for path in args.pairs:
        pairs, dup = read(path)
        ok = eligible(embedder, pairs)
        print(f"\n{path.name}: {int(dup.sum())} paraphrases, {int((~dup).sum())} look-alikes")
        print("| model | threshold | " + " | ".join(conditions(0)) + " |")
        print("|---|---|" + "---:|" * len(conditions(0)))
        for name, scorer in models.items():
            by_condition = {
                c: scores(scorer, [(f(a), f(b)) for a, b in pairs])
                for c, f in conditions(args.seed).items()
            }
            for label, t in thresholds[name]:
                cells = [
                    f"{((ok & (s >= t)) & dup).sum() / dup.sum():.3f} / "
                    f"{int(((ok & (s >= t)) & ~dup).sum())}"
                    for s in by_condition.values()
                ]
                print(f"| {name} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
