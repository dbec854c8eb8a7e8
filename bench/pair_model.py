"""The pair model: cost per candidate, memory, and what it separates that cosine does not.

1. Cost: p50/p99 of scoring one candidate as served (both orders; an ensemble's cascade: a
   candidate no other member's readings could bring to its ``exact_from`` is not read by them,
   so the cost is given for both kinds and for the file's mix) and four candidates in one
   call, beside embedding one question with the embedder, interleaved in rounds on the same
   machine; onnxruntime on ``--threads`` threads.
2. Memory: the resident set (VmRSS) of this process before loading the pair model and after
   loading it and scoring 100 calls of 4 candidates, the most a lookup scores (what a serving
   process grows by; onnxruntime's arena grows with the largest batch it has seen).
3. Quality on a labelled pair file (``--pairs``, never trained on): AUC, average precision,
   and recall of duplicates at ≤ 1 % of pairs wrong, for MiniLM cosine, the pair model in one
   order only, in both orders with every member, and as served (the cascade); with raw labels
   and with the reviewed labels of ``--review`` (pairs whose "not duplicate" label was judged
   wrong on reading, each with its reason; see bench/data/README.md).

    python bench/pair_model.py --pairs ../shared/data/cache/quora_val.csv
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from boundgate.reuse.embedder import OnnxEmbedder
from boundgate.reuse.pair import OnnxPairScorer, reads_further

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "training"))

from pairdata import figures, read_pairs, read_review  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--review", type=Path, default=HERE / "data" / "quora_val_label_review.tsv")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    pairs = read_pairs(args.pairs)

    emb = OnnxEmbedder(threads=args.threads)
    emb.embed(["warm up"])
    before = rss_mb()
    scorer = OnnxPairScorer(threads=args.threads)
    for i in range(100):  # serving shape: at most reuse.pair_candidates (4) pairs per call
        scorer.score_pairs([(a, b) for a, b, _ in pairs[4 * i : 4 * i + 4]])
    after = rss_mb()

    rng = random.Random(0)
    one: dict[bool, list[float]] = {False: [], True: []}  # by: read by every member
    four, embed = [], []
    for _ in range(args.rounds):
        batch = rng.sample(pairs, 4)
        first = scorer.readings(*batch[0][:2])[0]
        whole = reads_further(list(first), 2 * (len(scorer.sessions) - 1), scorer.exact_from)
        for name in rng.sample(["one", "four", "embed"], 3):
            t = time.perf_counter()
            if name == "one":
                scorer.score_pairs([batch[0][:2]])
                one[whole].append(time.perf_counter() - t)
            elif name == "four":
                scorer.score_pairs([p[:2] for p in batch])
                four.append(time.perf_counter() - t)
            else:
                emb.embed([batch[0][0]])
                embed.append(time.perf_counter() - t)
    members = len(scorer.sessions)
    every = one[False] + one[True]
    print(f"\n# Pair model ({scorer.name}, {members} member(s), {args.threads} threads)\n")
    print("| work | candidates | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    rows = [
        ("embed one question (MiniLM int8)", embed),
        ("pair-score 1 candidate (as served)", every),
    ]
    if members > 1:
        rows += [
            (f"… read by one member (no mean of {scorer.exact_from} possible)", one[False]),
            ("… the others (every member read)", one[True]),
        ]
    rows.append(("pair-score 4 candidates in one call", four))
    for name, xs in rows:
        print(f"| {name} | {len(xs)} | {pct(xs, 0.5) * 1000:.2f} | {pct(xs, 0.99) * 1000:.2f} |")
    print(
        f"\npair-score 1 candidate / embed one question, p50: "
        f"{statistics.median(every) / statistics.median(embed):.2f}; mean "
        f"{statistics.mean(every) * 1000:.2f} ms; per candidate in a call of 4: "
        f"{statistics.median(four) / 4 * 1000:.2f} ms; read by every member: "
        f"{len(one[True]) / len(every):.1%} of these candidates"
    )
    print(
        f"RSS: {before:.0f} MB before the pair model, {after:.0f} MB after "
        f"(+{after - before:.0f} MB)"
    )

    labels = np.array([y for _, _, y in pairs])
    reviewed = read_review(args.review) if args.review.exists() else set()
    rev_labels = np.array([1 if (a, b) in reviewed else y for a, b, y in pairs])
    va = emb.embed([a for a, _, _ in pairs])
    vb = emb.embed([b for _, b, _ in pairs])
    cos = (va * vb).sum(axis=1)
    read = np.asarray([scorer.readings(a, b) for a, b, _ in pairs])  # pairs × members × 2
    served = np.concatenate(
        [scorer.score_pairs([p[:2] for p in pairs[i : i + 64]]) for i in range(0, len(pairs), 64)]
    )
    print(
        f"\n## Quality on {args.pairs.name} ({len(pairs)} pairs, {int(labels.sum())} duplicates; "
        f"{len(reviewed)} labels reviewed as duplicates)\n"
    )
    print("| score | labels | AUC | AP | recall at ≤ 1 % of pairs wrong |")
    print("|---|---|---:|---:|---:|")
    for name, sc in (
        ("MiniLM cosine", cos),
        ("pair model, one order", read[:, :, 0].mean(axis=1)),
        ("pair model, both orders, every member", read.mean(axis=(1, 2))),
        ("pair model as served (both orders, the cascade)", served),
    ):
        for lname, lab in (("raw", labels), ("reviewed", rev_labels)):
            fig = figures(np.asarray(sc, dtype=np.float64), lab)
            auc, apr, rec = fig["auc"], fig["ap"], fig["recall_at_1pct_wrong"]
            print(f"| {name} | {lname} | {auc:.3f} | {apr:.3f} | {100 * rec:.1f} % |")


if __name__ == "__main__":
    main()
