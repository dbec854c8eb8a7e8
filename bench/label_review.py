"""List the highest-scored "not duplicate" pairs of a labelled file, for reviewing labels.

Quora's labels are noisy: some "not duplicate" pairs ask the same thing, and they gather at
the highest pair scores, where they inflate a raw-label wrong rate. This prints the pairs the
shipped pair model scores highest among those labelled 0, as TSV (score, question1,
question2), for a person to read. Pairs judged mislabelled go into
``bench/data/quora_val_label_review.tsv`` with the reason (``bench/data/README.md``); a pair
is never listed there because the model gets it wrong, only because its label is.

    python bench/label_review.py --pairs ../shared/data/cache/quora_val.csv --top 200
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from boundgate.reuse.pair import OnnxPairScorer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))

from pairdata import read_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--top", type=int, default=200)
    args = ap.parse_args()
    negatives = [(a, b) for a, b, y in read_pairs(args.pairs) if y == 0]
    scorer = OnnxPairScorer(threads=2)
    scores = np.concatenate(
        [scorer.score_pairs(negatives[i : i + 64]) for i in range(0, len(negatives), 64)]
    )
    print("score\tquestion1\tquestion2")
    for i in np.argsort(-scores)[: args.top]:
        a, b = negatives[i]
        print(f"{scores[i]:.4f}\t{a}\t{b}")


if __name__ == "__main__":
    main()
