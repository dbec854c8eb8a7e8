"""Score pairs with the exported int8 pair model and fit its calibration (the verifier's prior).

Used by ``pair_model.py`` after export, and on its own to re-calibrate a shipped model::

    python training/pair_eval.py --val ../shared/data/cache/quora_val.csv
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))


def evaluate_int8(
    model_dir: Path,
    val: list[tuple[str, str, int]],
    max_length: int,
    review: Path | None = None,
) -> dict[str, object]:
    """Score ``val`` with the exported int8 model and write ``calibration.json``. With
    ``review`` (``bench/data/quora_val_label_review.tsv``) the pairs listed there count as
    duplicates in the calibration, and the raw figures are returned beside the reviewed."""
    from pairdata import figures, read_review

    from boundgate.reuse.pair import OnnxPairScorer

    scorer = OnnxPairScorer(model_dir, threads=2)
    t0 = time.perf_counter()
    scores = np.concatenate(
        [
            scorer.score_pairs([(a, b) for a, b, _ in val[i : i + 64]])
            for i in range(0, len(val), 64)
        ]
    )
    elapsed = time.perf_counter() - t0
    labels = np.array([v[2] for v in val])
    fig = figures(scores, labels)
    source = "raw labels"
    if review is not None and review.exists():
        reviewed = read_review(review)
        labels = np.array([1 if (a, b) in reviewed else y for a, b, y in val])
        fig = fig | {f"reviewed_{k}": v for k, v in figures(scores, labels).items()}
        source = f"labels with {len(reviewed)} reviewed as duplicates ({review.name})"
    calibration = calibrate(scores, labels, source)
    calibration["model_sha256_12"] = scorer.name.rsplit("@", 1)[-1]
    (model_dir / "calibration.json").write_text(json.dumps(calibration, indent=1) + "\n")
    cache = ROOT / "training/.cache"
    cache.mkdir(exist_ok=True)
    np.save(cache / "val_scores.npy", scores)
    return fig | {"pairs": len(val), "score_s_per_pair": elapsed / len(val)}


def calibrate(
    scores: np.ndarray, labels: np.ndarray, source: str = "raw labels"
) -> dict[str, object]:
    """The verifier's prior (``boundgate/reuse/prior.py``): the sorted pair scores of the
    duplicate and of the non-duplicate validation pairs (6 decimals; numbers only, no text)."""
    return {
        "source": f"quora_val.csv (MeanCache's split of Quora Question Pairs), {source}",
        "score": "pair model probability of the same meaning, mean of both orders",
        "duplicate_scores": sorted(round(float(x), 6) for x in scores[labels == 1]),
        "non_duplicate_scores": sorted(round(float(x), 6) for x in scores[labels == 0]),
    }


def main() -> None:
    from pairdata import read_pairs

    from pair_model import OUT

    p = argparse.ArgumentParser()
    p.add_argument("--val", type=Path, default=ROOT / "../shared/data/cache/quora_val.csv")
    p.add_argument("--model", type=Path, default=OUT)
    p.add_argument("--review", type=Path, default=ROOT / "bench/data/quora_val_label_review.tsv")
    args = p.parse_args()
    cfg = json.loads((args.model / "config.json").read_text())
    fig = evaluate_int8(args.model, read_pairs(args.val), cfg["max_length"], args.review)
    (args.model / "evaluation.json").write_text(json.dumps(fig, indent=1) + "\n")
    print(json.dumps(fig, indent=1))


if __name__ == "__main__":
    main()
