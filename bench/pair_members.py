"""Pair-model members and their ensembles at fixed thresholds, as a lookup serves them.

Every labelled pair is read as the gateway reads a candidate: the guards (``compare``), the
cosine floor (0.70, ``reuse.similarity_floor``), then each member's probability in both orders
(``OnnxPairScorer.readings``, no cascade). A combination of members scores a pair with the mean
of their readings, as the shipped ensemble does from its ``exact_from`` up. For each
threshold the script prints, per set and pooled over all of them, the paraphrases served (of
the set's duplicates), the look-alikes served per request (of all its pairs, the wrong-answer
rate of a stream that asks each pair's second question once after its first), and the worst
set's rate: a fresh gateway's threshold has to hold on the worst traffic it may see, not the
average (bench/RESULTS.md, the fifty-second session).

Members are numbered a, b, c, … in the order of the ``--model`` directories and of the
members each lists (``config.json``'s ``members``; the shipped ensemble gives two);
``--combo`` names a combination by its letters ("ab", "ad", "d").

    PYTHONPATH=src python bench/pair_members.py --model src/boundgate/reuse/pair_model \
        --model /path/to/member_d --combo ab --combo ac --combo c \
        --pairs bench/data/chat_heldout.csv --pairs bench/data/chat_heldout2.csv \
        --trial s52-T20 --trial s52-T21 --trial s52-T22

Compare members only on sets none of them was trained on (their ``training.json`` names the
chat data each read; ``bench/data/trials_dev.csv`` rows are named by ``trial``).
"""

from __future__ import annotations

import argparse
import csv
import string
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "training")]

from pairdata import read_pairs  # noqa: E402

from boundgate.reuse.embedder import OnnxEmbedder  # noqa: E402
from boundgate.reuse.guards import compare  # noqa: E402
from boundgate.reuse.pair import OnnxPairScorer  # noqa: E402

FLOOR = 0.70  # reuse.similarity_floor's default
TRIALS = ROOT / "bench" / "data" / "trials_dev.csv"
Pairs = list[tuple[str, str, int]]


def trial_pairs(name: str) -> Pairs:
    """The rows of ``bench/data/trials_dev.csv`` whose ``trial`` is ``name``."""
    with TRIALS.open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["trial"] == name]
    if not rows:
        raise SystemExit(f"no trial {name!r} in {TRIALS}")
    return [(r["question1"], r["question2"], int(r["is_duplicate"])) for r in rows]


def read_set(
    pairs: Pairs, embedder: OnnxEmbedder, scorers: list[OnnxPairScorer]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, served past the guards and the floor, readings of shape (pairs, members, 2))."""
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    cos = np.sum(np.asarray(embedder.embed(a)) * np.asarray(embedder.embed(b)), axis=1)
    passed = np.array([compare(q, s).ok for s, q in zip(a, b, strict=True)]) & (cos >= FLOOR)
    readings = np.array(
        [np.concatenate([sc.readings(s, q) for sc in scorers]) for s, q in zip(a, b, strict=True)]
    )
    return np.array([p[2] for p in pairs]), passed, readings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, action="append", required=True, help="a model dir")
    p.add_argument("--combo", action="append", required=True, help='members by letter: "ab"')
    p.add_argument("--pairs", type=Path, action="append", default=[], help="a labelled CSV")
    p.add_argument("--trial", action="append", default=[], help="a trial of trials_dev.csv")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.8, 0.85, 0.875, 0.895])
    args = p.parse_args()
    scorers = [OnnxPairScorer(d) for d in args.model]
    names = [
        f"{d} member {m + 1}"
        for d, sc in zip(args.model, scorers, strict=True)
        for m in range(len(sc.sessions))
    ]
    letters = string.ascii_lowercase[: len(names)]
    for letter, name in zip(letters, names, strict=True):
        print(f"member {letter}: {name}")
    combos = {c: [letters.index(x) for x in c] for c in args.combo}
    sets = {path.name: read_pairs(path) for path in args.pairs}
    sets |= {t: trial_pairs(t) for t in args.trial}
    if not sets:
        raise SystemExit("no pairs: give --pairs or --trial")
    embedder = OnnxEmbedder()
    read = {name: read_set(pairs, embedder, scorers) for name, pairs in sets.items()}
    for name, (y, passed, _) in read.items():
        print(
            f"{name}: {int(y.sum())} paraphrases, {int((1 - y).sum())} look-alikes; "
            f"past the guards and the floor {int(passed[y == 1].sum())} / "
            f"{int(passed[y == 0].sum())}"
        )
    print("\npooled: paraphrases served, look-alikes served per request (worst set)")
    for combo, members in combos.items():
        print(f"{combo}:")
        for t in args.thresholds:
            served = wrong = duplicates = requests = 0
            worst = 0.0
            for y, passed, readings in read.values():
                score = np.where(passed, readings[:, members, :].mean(axis=(1, 2)), -1.0)
                served += int(((score >= t) & (y == 1)).sum())
                bad = int(((score >= t) & (y == 0)).sum())
                wrong += bad
                duplicates += int(y.sum())
                requests += len(y)
                worst = max(worst, bad / len(y))
            print(
                f"  {t:.3f}: {served} / {duplicates} ({served / duplicates:.1%}), "
                f"{wrong} ({wrong / requests:.2%}; worst {worst:.2%})"
            )


if __name__ == "__main__":
    main()
