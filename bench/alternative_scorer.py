"""The verifier with and without the alternative (cosine) scorer, on one replayed stream.

Each question of a file is looked up once against a store of the other side of every pair, as
the gateway's lookup does it, but without HTTP: MiniLM top 4 above the similarity floor, the
pair model on each, the best kept. The verifier then sees the stream in a random order
(``--seeds`` orders): ``note_lookup``, ``decide``, and a label for every verified or observed
candidate (right when the candidate is the asked question's own partner and the pair is a
duplicate; unlabelled paraphrases among other pairs count as wrong). Printed per order:
lookups served and served wrong, for the pair scorer with its prior alone and with the cosine
as the alternative scorer (``reuse.alternative_scorer``), side by side on the same stream.
No guards run here, so the figures are the verifier's, not the gateway's.

    python bench/alternative_scorer.py --pairs ../shared/data/cache/gptcache_mock_data.json
    python bench/alternative_scorer.py --pairs ../shared/data/cache/quora_val.csv --limit 2000
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np

from boundgate.reuse.embedder import OnnxEmbedder
from boundgate.reuse.pair import OnnxPairScorer, packaged_model_dir
from boundgate.reuse.prior import Prior
from boundgate.reuse.scoring import CosineScorer, PairModelScorer
from boundgate.reuse.verifier import Observation, Verdict, Verifier
from boundgate.settings import ReuseSettings
from reuse_quality import load_pairs


def replay_scores(path: Path, limit: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cosine, pair score, right) of each asked question's best candidate (pair −1: none)."""
    rows = load_pairs(path, limit, 0)
    stored = [a for a, _, _ in rows]
    asked = [b for _, b, _ in rows]
    dup = [bool(d) for _, _, d in rows]
    embedder = OnnxEmbedder()
    sims = embedder.embed(asked) @ embedder.embed(stored).T
    scorer = OnnxPairScorer(threads=2)
    floor = ReuseSettings().similarity_floor
    cos, pair, right = [], [], []
    for i, q in enumerate(asked):
        top = [int(j) for j in np.argsort(-sims[i])[:4] if sims[i, j] >= floor]
        if not top:
            cos.append(0.0), pair.append(-1.0), right.append(False)
            continue
        scores = scorer.score_pairs([(q, stored[j]) for j in top])
        k = int(np.argmax(scores))
        cos.append(float(sims[i, top[k]]))
        pair.append(float(scores[k]))
        right.append(dup[i] and stored[top[k]] == stored[i])
    return np.array(cos), np.array(pair), np.array(right)


def run(v: Verifier, cos: np.ndarray, pair: np.ndarray, right: np.ndarray, seed: int) -> tuple:
    served = wrong = 0
    for i in np.random.default_rng(seed).permutation(len(right)):
        if pair[i] < 0:
            v.note_lookup(None)
            continue
        c, p, ok = float(cos[i]), float(pair[i]), bool(right[i])
        v.note_lookup(c, pair=p)
        verdict = v.decide(int(i), c, pair=p)
        if verdict is Verdict.SERVE:
            served += 1
            wrong += not ok
        elif verdict in (Verdict.VERIFY, Verdict.OBSERVE):
            v.add(Observation(c, ok, verdict.value, int(i), pair=p))
    return served, wrong, v.active_scorer.name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=4)
    args = ap.parse_args()
    cos, pair, right = replay_scores(args.pairs, args.limit)
    prior = Prior.load(packaged_model_dir() / "calibration.json", "pair")
    n = len(right)
    print(f"# {args.pairs.name}: {n} lookups, {int(right.sum())} with the right best candidate\n")
    print("| order | pair scorer alone: served / wrong | with the cosine alternative | in force |")
    print("|---:|---:|---:|---|")
    for seed in range(args.seeds):
        s = ReuseSettings()
        alone = Verifier(s, scorer=PairModelScorer(), prior=prior, rng=random.Random(seed))
        both = Verifier(
            s, scorer=PairModelScorer(), prior=prior, alternative=CosineScorer(),
            rng=random.Random(seed),
        )  # fmt: skip
        a = run(alone, cos, pair, right, seed)
        b = run(both, cos, pair, right, seed)
        print(f"| {seed} | {a[0]} / {a[1]} | {b[0]} / {b[1]} | {b[2]} |")


if __name__ == "__main__":
    main()
