"""Calibrate the pair score as the gateway uses it: on the best of the retrieved candidates.

``pair_eval.py`` scores each validation question against its own partner. A lookup does not
see that pair: it retrieves the stored questions nearest the asked one (MiniLM cosine, at
most ``candidates``, none below the verifier's floor), lets the guards veto, scores up to
``pair_candidates`` survivors with the pair model and keeps the best. The best of several
draws is more often a wrong one than a single draw is, so a calibration of pairs is too
optimistic for lookups (the whole-file run of issue #11 saw 0.69 hit precision where the pair
calibration promised 0.975).

This script replays that lookup on ``quora_val.csv`` (never trained on): the questions are
shuffled (seeded) into stores of ``--store-size`` pairs, as a fresh gateway would hold them;
every question1 of a store is stored, every question2 asked. The asked question's answer is
right when its meaning (duplicate pairs joined transitively, reviewed labels counted as
duplicates) is the stored one's. Each lookup that finds a candidate yields one observation
``(best pair score, right or wrong)``, which is what the verifier's own labels are; these
become ``calibration.json``'s duplicate / non-duplicate scores (the verifier's prior).

With ``--scorer blend`` the lookups are scored as ``reuse.scorer = "blend"`` scores them
(``scoring.BlendScorer``: max(pair, f(cosine)), f from ``pair_model/blend.json``): the best
survivor is the one with the highest blend score, and that score is the observation;
``--write`` then writes ``calibration_blend.json``, the blend's prior, and leaves the pair
model's ``calibration.json`` as it is.

    python training/lookup_calibration.py --val ../shared/data/cache/quora_val.csv
    python training/lookup_calibration.py --val ../shared/data/cache/quora_val.csv --scorer blend

Needs only the serving package (embedder, guards, pair model) and numpy.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))


def replay(
    pairs: list[tuple[str, str, int]],
    store_size: int,
    seed: int,
    *,
    floor: float = 0.70,
    candidates: int = 8,
    pair_candidates: int = 4,
    losses: Counter[str] | None = None,
    duplicates: list[tuple[float, bool]] | None = None,
    same_meaning: Iterable[tuple[str, str]] = (),
    score: Callable[[float, float], float] | None = None,
    model: Path | None = None,
) -> tuple[list[tuple[float, bool, float, str, str, bool]], int, int]:
    """One observation per lookup with a candidate: (best score, right, its cosine, the
    asked question, the candidate, *novel*); the number of semantic lookups (every asked
    question that is not an exact repeat of a stored one), with or without a candidate; and
    how many of those were *novel*: no stored question has the asked one's meaning, so any
    answer served to it is wrong (the rest are repeats, where a right answer exists). The
    verifier's prior uses the split to bound wrong reuses on traffic with another share of
    repeats than this replay's (``prior.py``).

    ``score``: (pair score, cosine) → the score the lookup ranks survivors by and the
    verifier thresholds (default: the pair score).

    ``losses``, when given, counts where each asked *duplicate* (its own partner is stored)
    ends: ``partner below floor`` (cosine < ``floor``), ``partner vetoed by guards``,
    ``partner not scored`` (outside the top ``candidates`` or after ``pair_candidates``
    survivors), ``another candidate scored higher`` (a wrong one), ``best is right``.
    ``duplicates``, when given, receives (best score, right) for each asked duplicate
    (score −1 when no candidate survived), to read recall at a threshold off.
    ``model``: the pair model's directory (default: the packaged one).
    ``same_meaning``: more pairs of questions that ask the same thing (reviewed labels of
    questions from different pairs of the file, which a lookup can meet); joined like
    duplicate pairs."""
    from boundgate.reuse.embedder import OnnxEmbedder
    from boundgate.reuse.guards import compare
    from boundgate.reuse.pair import OnnxPairScorer

    embedder = OnnxEmbedder(threads=2)
    scorer = OnnxPairScorer(model, threads=2)
    from pairdata import Components

    comp = Components.of(pairs)
    for a, b in same_meaning:
        comp.union(a, b)
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    out: list[tuple[float, bool, float, str, str, bool]] = []
    lookups = novel_lookups = 0
    t0 = time.perf_counter()
    for start in range(0, len(order), store_size):
        chunk = [pairs[i] for i in order[start : start + store_size]]
        stored = sorted({a for a, _, _ in chunk})
        vs = embedder.embed(stored)
        asked = [b for _, b, _ in chunk]
        va = embedder.embed(asked)
        sims = va @ vs.T
        exact = set(stored)
        lookups += sum(q not in exact for q in asked)
        meanings = {comp.find(a) for a in stored}
        for qi, q in enumerate(asked):
            if q in exact:
                continue  # an exact hit, not a semantic lookup
            top = np.argsort(-sims[qi])[:candidates]
            survivors: list[tuple[str, float]] = []
            partner, vetoed = chunk[qi][0], False
            for j in top:
                s = float(sims[qi, j])
                if s < floor:
                    break
                if not compare(q, stored[j]).ok:
                    vetoed = vetoed or stored[j] == partner
                    continue
                survivors.append((stored[j], s))
                if len(survivors) >= pair_candidates:
                    break
            is_dup = comp.find(q) == comp.find(partner)
            novel = comp.find(q) not in meanings
            novel_lookups += novel
            result: tuple[float, bool] = (-1.0, False)
            if survivors:
                scores = scorer.score_pairs([(q, c) for c, _ in survivors])
                if score is not None:
                    cosines = [s for _, s in survivors]
                    scores = [score(float(x), s) for x, s in zip(scores, cosines, strict=True)]
                best = int(np.argmax(scores))
                cand, cos = survivors[best]
                right = comp.find(q) == comp.find(cand)
                out.append((float(scores[best]), right, cos, q, cand, novel))
                result = (float(scores[best]), right)
            if is_dup and duplicates is not None:
                duplicates.append(result)
            if is_dup and losses is not None:
                if result[1]:
                    losses["best is right"] += 1
                elif float(sims[qi, stored.index(partner)]) < floor:
                    losses["partner below floor"] += 1
                elif vetoed:
                    losses["partner vetoed by guards"] += 1
                elif all(c != partner for c, _ in survivors):
                    losses["partner not scored"] += 1
                else:
                    losses["another candidate scored higher"] += 1
        done = min(start + store_size, len(order))
        print(f"  {done}/{len(order)} asked, {time.perf_counter() - t0:.0f} s", flush=True)
    return out, lookups, novel_lookups


Obs = tuple[float, bool, float, str, str, bool]


def summary(obs: list[Obs]) -> dict[str, object]:
    """Hit precision among lookups whose best candidate scores at or above each threshold."""
    s = np.array([o[0] for o in obs])
    ok = np.array([o[1] for o in obs])
    rows = {}
    for t in (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99):
        m = s >= t
        precision = float(ok[m].mean()) if m.any() else None
        rows[str(t)] = {"lookups": int(m.sum()), "precision": precision}
    return {"lookups_with_candidate": len(obs), "by_threshold": rows}


def recall_curve(
    obs: list[Obs],
    dups: list[tuple[float, bool]],
    lookups: int,
    losses: Counter[str],
) -> dict[str, object]:
    """What a fixed threshold on the best score would do on this replay (chosen in hindsight,
    so a ceiling for the verifier, which must learn it): the share of asked duplicates served
    their right answer, and wrong answers over all semantic lookups (vCache's δ), per
    threshold; and where the duplicates were lost (``replay``'s ``losses``)."""
    s = np.array([o[0] for o in obs])
    ok = np.array([o[1] for o in obs])
    ds = np.array([d[0] for d in dups])
    dok = np.array([d[1] for d in dups])
    rows = {}
    for t in (0.8, 0.85, 0.9, 0.93, 0.95, 0.97):
        rows[str(t)] = {
            "recall": round(float(((ds >= t) & dok).sum()) / max(1, len(dups)), 4),
            "wrong_per_lookup": round(float(((s >= t) & ~ok).sum()) / max(1, lookups), 4),
        }
    return {"asked_duplicates": len(dups), "losses": dict(losses), "by_threshold": rows}


def blend_digest(model: Path) -> str:
    """The first 12 hex digits of ``blend.json``'s SHA-256: the map a blend calibration
    was replayed with."""
    import hashlib

    return hashlib.sha256((model / "blend.json").read_bytes()).hexdigest()[:12]


def main() -> None:
    from pairdata import read_pairs, read_review

    from boundgate.reuse.pair import packaged_model_dir

    p = argparse.ArgumentParser()
    p.add_argument("--val", type=Path, default=ROOT / "../shared/data/cache/quora_val.csv")
    p.add_argument("--review", type=Path, default=ROOT / "bench/data/quora_val_label_review.tsv")
    p.add_argument("--store-size", type=int, nargs="+", default=[500, 2000])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", type=Path, default=packaged_model_dir())
    p.add_argument(
        "--scorer",
        choices=["pair", "blend"],
        default="pair",
        help="score lookups as reuse.scorer does: pair (calibration.json) or blend, "
        "max(pair, f(cosine)) (calibration_blend.json)",
    )
    p.add_argument("--write", action="store_true", help="write the scorer's calibration")
    args = p.parse_args()
    score: Callable[[float, float], float] | None = None
    if args.scorer == "blend":
        from boundgate.reuse.scoring import BlendScorer, CosineMap, Evidence

        blend = BlendScorer(CosineMap.load(args.model / "blend.json"))

        def score(pair: float, cosine: float) -> float:
            return blend.score(Evidence(cosine, 0.0, pair))

    pairs = read_pairs(args.val)
    source = "raw labels"
    reviewed: set[tuple[str, str]] = set()
    if args.review.exists():
        reviewed = read_review(args.review)
        pairs = [(a, b, 1 if (a, b) in reviewed else y) for a, b, y in pairs]
        source = f"labels with {len(reviewed)} reviewed as duplicates ({args.review.name})"
    obs: list[Obs] = []
    lookups = novel_lookups = 0
    for size in args.store_size:
        losses: Counter[str] = Counter()
        dups: list[tuple[float, bool]] = []
        part, n, novel = replay(
            pairs,
            size,
            args.seed,
            losses=losses,
            duplicates=dups,
            same_meaning=reviewed,
            score=score,
            model=args.model,
        )
        head = {"store_size": size, "lookups": n, "novel_lookups": novel}
        print(json.dumps(head | summary(part), indent=1))
        print(json.dumps({"store_size": size} | recall_curve(part, dups, n, losses), indent=1))
        obs += part
        lookups += n
        novel_lookups += novel
    cache = ROOT / "training/.cache"
    cache.mkdir(exist_ok=True)
    suffix = "" if args.scorer == "pair" else f"_{args.scorer}"
    (cache / f"lookup_obs{suffix}.json").write_text(json.dumps(obs))
    if args.write:
        path = args.model / f"calibration{suffix}.json"
        cal = json.loads((args.model / "calibration.json").read_text())
        sizes = ", ".join(str(s) for s in args.store_size)
        what = (
            "pair model probability of the same meaning (mean of both orders)"
            if args.scorer == "pair"
            else "blend score, max(pair model probability, f(cosine)) with f of blend.json "
            f"(sha256 {blend_digest(args.model)}),"
        )
        cal |= {
            "source": f"quora_val.csv (MeanCache's split of Quora Question Pairs), {source}; "
            f"lookups replayed on stores of {sizes} pairs (training/lookup_calibration.py "
            f"--scorer {args.scorer})",
            "score": f"{what} of the best guard survivor among the retrieved candidates, "
            "per lookup",
            "duplicate_scores": sorted(round(o[0], 6) for o in obs if o[1]),
            "non_duplicate_scores": sorted(round(o[0], 6) for o in obs if not o[1]),
            "lookups": lookups,
            "novel_lookups": novel_lookups,
            "novel_scores": sorted(round(o[0], 6) for o in obs if o[5]),
        }
        path.write_text(json.dumps(cal, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
