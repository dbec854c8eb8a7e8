"""The chatbot development sets at a fresh gateway's threshold, per scorer: paraphrases reused
and look-alikes let through.

``tests/data/paraphrases_dev.tsv`` (paraphrases: should be reused) and
``tests/data/different_dev.tsv`` (look-alikes with other answers, many chosen because the pair
model served them, so the look-alike counts are biased against it). Each pair is read as one
lookup of its second question against its first alone: the guards, then the scorer's score
against the threshold a fresh verifier takes from the scorer's shipped prior (δ = 0.01, no
labels of its own). Offline, no gateway: the embedder, the guards and the pair model only.

    PYTHONPATH=src python bench/dev_pairs.py [--scorers pair blend]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from boundgate.reuse.embedder import OnnxEmbedder
from boundgate.reuse.guards import compare
from boundgate.reuse.pair import OnnxPairScorer, packaged_model_dir
from boundgate.reuse.prior import Prior
from boundgate.reuse.scoring import SCORERS, Evidence
from boundgate.reuse.verifier import Verifier
from boundgate.settings import ReuseSettings

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def rows(path: Path, cols: slice) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        out = []
        for r in csv.reader(fh, delimiter="\t"):
            if len(r) >= 2 and not r[0].startswith("#"):
                a, b = r[cols]
                out.append((a, b))
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scorers", nargs="+", default=["pair", "blend"])
    args = ap.parse_args()
    sets = {
        "paraphrases": rows(DATA / "paraphrases_dev.tsv", slice(0, 2)),
        "look-alikes": rows(DATA / "different_dev.tsv", slice(1, 3)),
    }
    pair_model = OnnxPairScorer(threads=2)
    embedder = OnnxEmbedder(threads=2)
    floor = ReuseSettings().similarity_floor
    ev: dict[str, tuple[list[Evidence], np.ndarray]] = {}
    for name, pairs in sets.items():
        p = np.asarray(pair_model.score_pairs(pairs), float)
        va = np.asarray(embedder.embed([a for a, _ in pairs]))
        vb = np.asarray(embedder.embed([b for _, b in pairs]))
        cos = np.sum(va * vb, axis=1)
        ok = np.array([compare(b, a).ok for a, b in pairs]) & (cos >= floor)
        ev[name] = ([Evidence(float(c), 0.0, float(x)) for c, x in zip(cos, p, strict=True)], ok)
    print(
        "| scorer | prior's threshold | paraphrases reused | look-alikes past guards + threshold |"
    )
    print("|---|---:|---:|---:|")
    for s in args.scorers:
        scorer = SCORERS[s]()
        prior = None
        if scorer.prior_file is not None:
            prior = Prior.load(packaged_model_dir() / scorer.prior_file, pair_model.name)
        t = Verifier(ReuseSettings(), scorer=scorer, prior=prior).threshold
        got = {}
        for name, (es, ok) in ev.items():
            score = np.array([scorer.score(e) for e in es])
            got[name] = ok & (score >= t - 1e-12)
        n_par, n_look = len(sets["paraphrases"]), len(sets["look-alikes"])
        print(
            f"| {s} | {t:.3f} | {got['paraphrases'].sum()} of {n_par} "
            f"({100 * got['paraphrases'].mean():.1f} %) | {got['look-alikes'].sum()} of {n_look} |"
        )


if __name__ == "__main__":
    main()
