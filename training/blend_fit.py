"""Fit the blend scorer's cosine map f: a cosine → the pair score of equal precision.

The blend scorer (``reuse.scorer = "blend"``, ``scoring.BlendScorer``) thresholds
s = max(pair, f(cosine)): the pair model's score, or the cosine put on the pair score's scale,
whichever is higher. f is fitted here on ``quora_val.csv``'s labelled pairs (never on
quora_train, which the pair model learned; never on the chatbot development sets, which
evaluate it), as the gateway scores them: both questions of a pair embedded (MiniLM) and
scored by the pair model, and only pairs a lookup would score (cosine at or above the
verifier's floor, 0.70, and no guard veto). Labels: Quora's, with the reviewed ones
(``bench/data/quora_val_label_review.tsv``) counted as duplicates, as for the prior.

For a threshold t on either signal, its precision is the share of duplicates among the pairs
scoring ≥ t; thresholds above which fewer than ``--min-support`` pairs remain are left out (the
top of either curve rests on a handful of pairs). Both precision curves are made
non-decreasing (pool-adjacent-violators, each point weighted by its pairs), and f(c) is the
lowest pair threshold whose precision reaches the cosine's at c; where the cosine is more
precise than the pair score ever is (with that support), f(c) is the highest pair threshold
kept. The knots (cosine, f) on the floor-to-1 grid of 0.005 are written to
``pair_model/blend.json``; the scorer interpolates linearly between them, which keeps f
monotone.

    python training/blend_fit.py --val ../shared/data/cache/quora_val.csv --write

Needs only the serving package (embedder, guards, pair model) and numpy. The embeddings and
pair scores are cached in ``training/.cache/quora_val_signals.npz`` (a few minutes to make).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

Floats = npt.NDArray[np.float64]


def signals(pairs: list[tuple[str, str, int]], cache: Path) -> tuple[Floats, Floats, npt.NDArray]:
    """(pair score, cosine, guards pass) for every pair, cached by the digest of the pairs,
    the pair model, the guards' source and their data (a new model or rule scores afresh)."""
    from boundgate.reuse import guards
    from boundgate.reuse.embedder import OnnxEmbedder
    from boundgate.reuse.guards import compare
    from boundgate.reuse.pair import OnnxPairScorer

    t0 = time.perf_counter()
    scorer = OnnxPairScorer(threads=2)
    h = hashlib.sha256(json.dumps([(a, b) for a, b, _ in pairs]).encode())
    h.update(scorer.name.encode())
    here = Path(guards.__file__).parent
    for src in sorted([*here.glob("*.py"), *(here.parent / "data").glob("*")]):
        h.update(src.read_bytes())
    digest = h.hexdigest()[:16]
    if cache.exists():
        d = np.load(cache)
        if str(d["digest"]) == digest:
            return d["pair"], d["cosine"], d["ok"]
    embedder = OnnxEmbedder(threads=2)
    qs = [(a, b) for a, b, _ in pairs]
    pair = np.concatenate(
        [np.asarray(scorer.score_pairs(qs[i : i + 256]), float) for i in range(0, len(qs), 256)]
    )
    va = np.asarray(embedder.embed([a for a, _ in qs]), float)
    vb = np.asarray(embedder.embed([b for _, b in qs]), float)
    cosine = np.sum(va * vb, axis=1)
    ok = np.array([compare(a, b).ok for a, b in qs])
    cache.parent.mkdir(exist_ok=True)
    np.savez(cache, digest=digest, pair=pair, cosine=cosine, ok=ok)
    print(f"scored {len(qs)} pairs in {time.perf_counter() - t0:.0f} s", flush=True)
    return pair, cosine, ok


def isotonic(y: Floats, w: Floats) -> Floats:
    """Non-decreasing least-squares fit of ``y`` with weights ``w`` (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for yi, wi in zip(y, w, strict=True):
        blocks.append([float(yi), float(wi), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            wt = w1 + w2
            blocks.append([(m1 * w1 + m2 * w2) / wt if wt else (m1 + m2) / 2, wt, c1 + c2])
    return np.concatenate([np.full(int(c), m) for m, _, c in blocks])


def precision_above(x: Floats, y: npt.NDArray, grid: Floats) -> tuple[Floats, Floats]:
    """For each t of ``grid`` (ascending): (share of y among x ≥ t, how many x ≥ t)."""
    order = np.argsort(x)
    xs, ys = x[order], y[order].astype(float)
    tail = np.r_[np.cumsum(ys[::-1])[::-1], 0.0]
    i = np.searchsorted(xs, grid - 1e-12, "left")
    n = len(xs) - i
    return np.where(n > 0, tail[i] / np.maximum(n, 1), np.nan), n.astype(float)


def fit(
    pair: Floats, cosine: Floats, y: npt.NDArray, floor: float, min_support: int
) -> dict[str, object]:
    """The knots of f (see the module docstring) and what they rest on."""
    steps = round((1.0 - floor) / 0.005)
    cos_grid = np.round(floor + np.arange(steps + 1) * 0.005, 6)
    pair_grid = np.round(np.arange(1001) * 0.001, 6)
    pc, nc = precision_above(cosine, y, cos_grid)
    pp, npair = precision_above(pair, y, pair_grid)
    keep_c, keep_p = nc >= min_support, npair >= min_support
    pc_iso = isotonic(pc[keep_c], nc[keep_c])
    pp_iso = isotonic(pp[keep_p], npair[keep_p])
    pgrid = pair_grid[keep_p]
    f = np.empty(len(cos_grid))
    top_c = int(np.flatnonzero(keep_c)[-1])
    for k in range(len(cos_grid)):
        target = pc_iso[min(k, top_c)]  # above the supported range: the last supported precision
        reach = np.flatnonzero(pp_iso >= target - 1e-12)
        f[k] = pgrid[reach[0]] if len(reach) else pgrid[-1]
    f = np.maximum.accumulate(f)
    return {
        "cosine": [float(c) for c in cos_grid],
        "pair": [round(float(v), 6) for v in f],
        "cosine_precision": [round(float(v), 4) for v in pc_iso],
        "cosine_supported_up_to": float(cos_grid[top_c]),
        "pair_supported_up_to": float(pgrid[-1]),
        "pair_precision_at_top": round(float(pp_iso[-1]), 4),
    }


def main() -> None:
    from pairdata import read_pairs, read_review

    from boundgate.reuse.pair import packaged_model_dir

    p = argparse.ArgumentParser()
    p.add_argument("--val", type=Path, default=ROOT / "../shared/data/cache/quora_val.csv")
    p.add_argument("--review", type=Path, default=ROOT / "bench/data/quora_val_label_review.tsv")
    p.add_argument("--floor", type=float, default=0.70)
    p.add_argument("--min-support", type=int, default=100)
    p.add_argument("--model", type=Path, default=packaged_model_dir())
    p.add_argument("--write", action="store_true", help="write pair_model/blend.json")
    args = p.parse_args()
    pairs = read_pairs(args.val)
    reviewed = read_review(args.review) if args.review.exists() else set()
    y = np.array([d or (a, b) in reviewed for a, b, d in pairs], dtype=bool)
    pair, cosine, ok = signals(pairs, ROOT / "training/.cache/quora_val_signals.npz")
    m = ok & (cosine >= args.floor)
    out = fit(pair[m], cosine[m], y[m], args.floor, args.min_support)
    print(f"{int(m.sum())} pairs past the floor and the guards, {int(y[m].sum())} duplicates")
    for c, v in zip(out["cosine"], out["pair"], strict=True):  # type: ignore[call-overload]
        if round(c * 1000) % 25 == 0 or c >= 0.95:
            print(f"  f({c:.3f}) = {v:.3f}")
    if args.write:
        cal = json.loads((args.model / "calibration.json").read_text())
        doc = {
            "source": f"quora_val.csv (MeanCache's split of Quora Question Pairs), "
            f"{int(m.sum())} pairs at cosine >= {args.floor} that the guards pass, labels with "
            f"{len(reviewed)} reviewed as duplicates ({args.review.name}) (training/blend_fit.py)",
            "map": "f(cosine) = the lowest pair score whose precision (share of duplicates among "
            "pairs at or above it) reaches the cosine's; both precision curves made "
            f"non-decreasing (pool adjacent violators), thresholds with >= {args.min_support} "
            "pairs above; linear between knots",
            "model_sha256_12": cal.get("model_sha256_12"),
            "floor": args.floor,
            "min_support": args.min_support,
        } | out
        path = args.model / "blend.json"
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
