"""The reuse guards on their own: what they veto, what they wrongly veto, and what they cost.

- **Contradictions caught.** Each hand-written pair in ``tests/data/contradictions.tsv`` (the
  list the guards were developed on) and ``tests/data/contradictions_heldout.tsv`` (written
  before the guards were extended, and not used to develop them) asks two questions whose
  answers differ although the words barely do. A pair is caught when ``guards.compare``
  vetoes it. The MiniLM cosine of each pair is shown too: it is what the verifier would see
  without the guards.
- **False vetoes.** On labelled pairs files (``--pairs``, as for ``reuse_quality.py``), the
  share of duplicate pairs the guards veto is recall they take away; the share of
  non-duplicates they veto is work they take off the verifier. Counted by conflict kind.
- **Both ways on chatbot traffic.** ``tests/data/paraphrases_dev.tsv`` (paraphrases: every
  veto is a false one) and ``tests/data/different_dev.tsv`` (look-alikes with other answers:
  every pass is a miss), written by a helper before it read the guards.
- **Held-out opposites, both ways.** ``bench/data/opposites_heldout.tsv``: 150 opposites
  (distance, direction, amount, change, comparison, state, other) that must be vetoed and 150
  paraphrases in the same vocabulary that must not, written by a helper that read none of
  boundgate; by category.
- **Cost.** ``compare`` on a pair whose features are not cached yet (as for a new question),
  against embedding one question with MiniLM, measured side by side in one run.

    python bench/contradictions.py --pairs ../shared/data/cache/quora_val.csv \\
        --pairs ../shared/data/cache/gptcache_mock_data.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from boundgate.reuse import guards
from boundgate.reuse.embedder import OnnxEmbedder
from reuse_quality import load_pairs, read_contradictions

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
BENCH_DATA = Path(__file__).resolve().parent / "data"


def _rows(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def p50_ms(fn: Callable[[int], object], n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=Path, action="append", default=[])
    ap.add_argument("--timing-pairs", type=int, default=2000)
    args = ap.parse_args()

    emb = OnnxEmbedder(threads=1)
    print("\n| contradiction list | pairs | vetoed by the guards | median cosine | cosine ≥ 0.9 |")
    print("|---|---:|---:|---:|---:|")
    missed: list[str] = []
    for path in (DATA / "contradictions.tsv", DATA / "contradictions_heldout.tsv"):
        pairs = read_contradictions(path)
        va = emb.embed([a for a, _ in pairs])
        vb = emb.embed([b for _, b in pairs])
        cos = (va * vb).sum(axis=1)
        vetoed = [not guards.compare(a, b).ok for a, b in pairs]
        for (a, b), v in zip(pairs, vetoed, strict=True):
            if not v:
                missed.append(f"{path.name}: {a!r} / {b!r}")
        print(
            f"| {path.name} | {len(pairs)} | {sum(vetoed)} | {float(np.median(cos)):.3f} | "
            f"{int((cos >= 0.9).sum())} |"
        )
    print("\nNot vetoed:\n" + "\n".join(f"- {m}" for m in missed))

    # the development sets a helper wrote before reading the guards: both ways
    par = [line.split("\t")[:2] for line in _rows(DATA / "paraphrases_dev.tsv")]
    dif = [line.split("\t")[1:3] for line in _rows(DATA / "different_dev.tsv")]
    over = [(a, b) for a, b in par if not guards.compare(a, b).ok]
    under: Counter[str] = Counter(
        line.split("\t")[0]
        for line in _rows(DATA / "different_dev.tsv")
        if guards.compare(*line.split("\t")[1:3]).ok
    )
    print(
        f"\nparaphrases_dev.tsv: {len(over)} of {len(par)} paraphrases vetoed; "
        f"different_dev.tsv: {sum(under.values())} of {len(dif)} look-alikes let through, "
        f"by kind {dict(under.most_common())}"
    )

    # held-out opposites and same-vocabulary paraphrases (bench/data/opposites_heldout.tsv)
    held = [line.split("\t") for line in _rows(BENCH_DATA / "opposites_heldout.tsv")][1:]
    per: dict[str, Counter[str]] = {"opposite": Counter(), "same": Counter()}
    vetoed_per: dict[str, Counter[str]] = {"opposite": Counter(), "same": Counter()}
    for a, b, label, category in held:
        per[label][category] += 1
        vetoed_per[label][category] += not guards.compare(a, b).ok
    print("\n| opposites_heldout.tsv, by category | opposites vetoed | paraphrases vetoed |")
    print("|---|---:|---:|")
    for category in sorted(per["opposite"] | per["same"]):
        print(
            f"| {category} | {vetoed_per['opposite'][category]} of {per['opposite'][category]} | "
            f"{vetoed_per['same'][category]} of {per['same'][category]} |"
        )
    print(
        f"| all | {vetoed_per['opposite'].total()} of {per['opposite'].total()} | "
        f"{vetoed_per['same'].total()} of {per['same'].total()} |"
    )

    timing: list[tuple[str, str]] = []
    for path in args.pairs:
        rows = load_pairs(path, None, 0)
        dup = [(a, b) for a, b, d in rows if d]
        non = [(a, b) for a, b, d in rows if not d]
        kinds: Counter[str] = Counter()
        for a, b in dup:
            kinds.update(guards.compare(a, b).conflicts)

        def share(ps: list[tuple[str, str]]) -> str:
            if not ps:
                return "n/a"
            return f"{sum(not guards.compare(a, b).ok for a, b in ps) / len(ps):.4f}"

        print(
            f"\n{path.name}: duplicates vetoed {share(dup)} of {len(dup)}; "
            f"non-duplicates vetoed {share(non)} of {len(non)}; "
            f"conflicts on duplicates by kind: {dict(kinds.most_common())}"
        )
        timing += [(a, b) for a, b, _ in rows]

    if timing and args.timing_pairs > 0:
        sample = timing[: args.timing_pairs]

        def cold_compare(i: int) -> None:
            guards.features.cache_clear()
            guards.compare(*sample[i])

        emb.embed([sample[0][0]])
        rounds = []
        for _ in range(3):
            g = p50_ms(cold_compare, len(sample))
            e = p50_ms(lambda i: emb.embed([sample[i][0]]), min(len(sample), 300))
            rounds.append((g, e))
        print("\n| round | compare() p50 ms, uncached | embed one question p50 ms | ratio |")
        print("|---|---:|---:|---:|")
        for k, (g, e) in enumerate(rounds):
            print(f"| {k} | {g:.3f} | {e:.2f} | {g / e:.3f} |")


if __name__ == "__main__":
    main()
