"""List the highest-scored "not duplicate" pairs of a labelled file, for reviewing labels.

Quora's labels are noisy: some "not duplicate" pairs ask the same thing, and they gather at
the highest pair scores, where they inflate a raw-label wrong rate. This prints the pairs the
shipped pair model scores highest among those labelled 0, as TSV (score, question1,
question2), for a person to read. Pairs judged mislabelled go into
``bench/data/quora_val_label_review.tsv`` with the reason (``bench/data/README.md``); a pair
is never listed there because the model gets it wrong, only because its label is.

    python bench/label_review.py --pairs ../shared/data/cache/quora_val.csv --top 200

``--across`` lists what a lookup meets that nobody labelled: questions of *different* rows
(meanings not joined by a duplicate label, and not labelled together either way) whose
MiniLM cosine reaches the gateway's floor (0.70), highest pair score first. A benchmark that
stores one and asks the other counts any reuse between them as wrong, which is right only if
they differ; a hand-written set's rows seldom say so (``bench/data/README.md``).

    python bench/label_review.py --pairs bench/data/chat_heldout.csv --across --top 150
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from boundgate.reuse.embedder import OnnxEmbedder
from boundgate.reuse.pair import OnnxPairScorer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))

from pairdata import Components, read_pairs

COSINE_FLOOR = 0.70  # reuse.similarity_floor's default: nothing below it is pair-scored


def across_rows(pairs: list[tuple[str, str, int]]) -> list[tuple[str, str]]:
    """Pairs of distinct questions of ``pairs`` in different meanings (duplicate labels joined
    transitively), not labelled together, at MiniLM int8 cosine >= ``COSINE_FLOOR``; each
    unordered pair once."""
    comp = Components.of(pairs)
    labelled = {frozenset((a, b)) for a, b, _ in pairs}
    texts = sorted(comp.parent)
    vectors = np.asarray(OnnxEmbedder(threads=2).embed(texts), dtype=np.float32)
    cosine = vectors @ vectors.T
    found = []
    for i, j in zip(*np.nonzero(np.triu(cosine, k=1) >= COSINE_FLOOR), strict=True):
        a, b = texts[i], texts[j]
        if comp.find(a) != comp.find(b) and frozenset((a, b)) not in labelled:
            found.append((a, b))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--top", type=int, default=200)
    ap.add_argument(
        "--across",
        action="store_true",
        help="list questions of different rows (unlabelled together) instead of the "
        "file's own not-duplicate pairs",
    )
    args = ap.parse_args()
    rows = read_pairs(args.pairs)
    negatives = across_rows(rows) if args.across else [(a, b) for a, b, y in rows if y == 0]
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
