"""How many guard survivors the pair model must score, and in how many orders (issue #11's
hit-path budget): an offline replay of quora_val's lookups, as training/lookup_calibration.py
replays them (stores of 500 questions, MiniLM top 8, cosine floor 0.70, the guards, labels
with the reviewed duplicates joined), scoring the first 4 survivors in both orders once and
reading four variants off the same readings (every member's, without the cascade): both
orders averaged (serving) or one, over the first 4 or 2 survivors; and the share of survivors
an ensemble's cascade reads with every member (``reads_further``). For each variant,
the threshold on the best score that keeps wrong answers per semantic lookup within a
target, chosen in hindsight, and the share of asked duplicates it serves right.
Deterministic (seeded order, no sampling).

    PYTHONPATH=src python bench/pair_candidates.py [--limit N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "training"))

from pairdata import Components, read_pairs, read_review  # noqa: E402

from boundgate.reuse.embedder import OnnxEmbedder  # noqa: E402
from boundgate.reuse.guards import compare  # noqa: E402
from boundgate.reuse.pair import OnnxPairScorer, reads_further  # noqa: E402

Obs = list[tuple[float, bool]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--val", type=Path, default=ROOT / "../shared/data/cache/quora_val.csv")
    ap.add_argument("--review", type=Path, default=ROOT / "bench/data/quora_val_label_review.tsv")
    ap.add_argument("--limit", type=int, default=0, help="only the first N pairs (0: all)")
    a = ap.parse_args()
    pairs = read_pairs(a.val)
    reviewed = read_review(a.review)
    pairs = [(x, y, 1 if (x, y) in reviewed else label) for x, y, label in pairs]
    emb, scorer = OnnxEmbedder(threads=2), OnnxPairScorer(threads=2)
    comp = Components.of(pairs)
    for x, y in reviewed:
        comp.union(x, y)
    order = list(range(len(pairs)))
    random.Random(0).shuffle(order)
    order = order[: a.limit or len(order)]
    names = ("both/4", "one/4", "both/2", "one/2")
    best: dict[str, Obs] = {n: [] for n in names}
    dups: dict[str, Obs] = {n: [] for n in names}
    lookups, t0, size = 0, time.perf_counter(), 500
    survivor_counts: Counter[int] = Counter()  # lookups by survivors (up to 4) scored
    scored = whole_reads = 0  # survivors scored; those an ensemble's cascade reads whole
    for start in range(0, len(order), size):
        chunk = [pairs[i] for i in order[start : start + size]]
        stored = sorted({x for x, _, _ in chunk})
        asked = [y for _, y, _ in chunk]
        sims = emb.embed(asked) @ emb.embed(stored).T
        exact = set(stored)
        for qi, q in enumerate(asked):
            if q in exact:
                continue
            lookups += 1
            survivors: list[str] = []
            for j in np.argsort(-sims[qi])[:8]:
                if sims[qi, j] < 0.70:
                    break
                if compare(q, stored[j]).ok:
                    survivors.append(stored[j])
                    if len(survivors) >= 4:
                        break
            survivor_counts[len(survivors)] += 1
            is_dup = comp.find(q) == comp.find(chunk[qi][0])
            if not survivors:
                if is_dup:
                    for n in names:
                        dups[n].append((-1.0, False))
                continue
            read = np.asarray([scorer.readings(q, c) for c in survivors])  # survivors × members × 2
            fwd, rev = read[:, :, 0].mean(axis=1), read[:, :, 1].mean(axis=1)
            unread = 2 * (read.shape[1] - 1)
            whole_reads += sum(reads_further(list(r[0]), unread, scorer.exact_from) for r in read)
            scored += len(survivors)
            for n in names:
                orders, k = n.split("/")
                s = ((fwd + rev) / 2 if orders == "both" else fwd)[: int(k)]
                b = int(np.argmax(s))
                obs = (float(s[b]), comp.find(q) == comp.find(survivors[b]))
                best[n].append(obs)
                if is_dup:
                    dups[n].append(obs)
        print(f"  {start + len(chunk)}/{len(order)} asked, {time.perf_counter() - t0:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip
    print(f"semantic lookups {lookups}, asked duplicates {len(dups[names[0]])}")
    shares = ", ".join(f"{k}: {survivor_counts[k] / lookups:.1%}" for k in sorted(survivor_counts))
    print(f"lookups by guard survivors (first 4): {shares}")
    print(
        f"survivors scored {scored}; read by every member (a mean of {scorer.exact_from} still "
        f"possible after the first): {whole_reads / max(1, scored):.1%}\n"
    )
    print("| orders / survivors | wrong per lookup ≤ | threshold | recall | wrong per lookup |")
    print("|---|---:|---:|---:|---:|")
    for n in names:
        s = np.array([o[0] for o in best[n]])
        ok = np.array([o[1] for o in best[n]])
        ds = np.array([d[0] for d in dups[n]])
        dok = np.array([d[1] for d in dups[n]])
        for target in (0.0025, 0.005, 0.01):
            for t in np.arange(0.5, 1.0, 0.0025):
                wrong = float(((s >= t) & ~ok).sum()) / lookups
                if wrong <= target:
                    recall = float(((ds >= t) & dok).sum()) / max(1, len(ds))
                    print(f"| {n} | {target} | {t:.4f} | {recall:.4f} | {wrong:.4f} |")
                    break


if __name__ == "__main__":
    main()
