"""The shipped pair model against MiniLM cosine, offline, on labelled pairs after the guards.

For each pair: the pair model's score (both orders, as served), the cosine of the two
questions' MiniLM vectors, and whether ``guards.compare`` passes it. Prints, for a few fixed
thresholds and "pair or cosine" rules, the share of positives that pass the guards and clear
the rule, and how many negatives do.

Sets: the chatbot-style development sets (``tests/data/paraphrases_dev.tsv`` positives,
``tests/data/different_dev.tsv`` negatives: look-alikes mostly collected because the pair model
served them, so that count is biased against it), and with ``--quora`` a labelled Quora file
(recall of its duplicates, wrong = non-duplicates passing, over all its pairs).

Usage: ``PYTHONPATH=src python bench/pair_vs_cosine.py [--quora QUORA_CSV]``, e.g. with
``--quora ../shared/data/cache/quora_val.csv``. ``--model DIR`` scores with another pair model
(a directory as ``training/pair_model.py --out`` writes it) instead of the shipped one;
``--pairs CSV`` reads another labelled set (``question1,question2,is_duplicate``, e.g.
``bench/data/chat_heldout.csv``) instead of the development sets.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from boundgate.reuse.embedder import OnnxEmbedder
from boundgate.reuse.guards import compare
from boundgate.reuse.pair import OnnxPairScorer

HERE = Path(__file__).resolve().parent.parent
RULES = [
    (0.915, None),
    (0.95, None),
    (None, 0.93),
    (None, 0.95),
    (None, 0.97),
    (0.915, 0.97),
    (0.95, 0.97),
]


def _tsv(path: Path, cols: slice) -> list[tuple[str, str]]:
    rows = csv.reader(path.open(encoding="utf-8"), delimiter="\t")
    return [(r[cols][0], r[cols][1]) for r in rows if len(r) >= 2 and not r[0].startswith("#")]


def _signals(
    pairs: list[tuple[str, str]], scorer: OnnxPairScorer, embedder: OnnxEmbedder
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pair scores, cosines, guard passes) of ``pairs``, scored in chunks of 256."""
    pair = np.concatenate(
        [np.asarray(scorer.score_pairs(pairs[i : i + 256])) for i in range(0, len(pairs), 256)]
    )
    va = np.asarray(embedder.embed([a for a, _ in pairs]))
    vb = np.asarray(embedder.embed([b for _, b in pairs]))
    ok = np.array([compare(a, b).ok for a, b in pairs])
    return pair, np.sum(va * vb, axis=1), ok


def _passes(pair: np.ndarray, cos: np.ndarray, rule: tuple[float | None, float | None]):
    tp, tc = rule
    out = np.zeros(len(pair), dtype=bool)
    if tp is not None:
        out |= pair >= tp
    if tc is not None:
        out |= cos >= tc
    return out


def _name(rule: tuple[float | None, float | None]) -> str:
    tp, tc = rule
    parts = ([f"pair >= {tp:.3f}"] if tp is not None else []) + (
        [f"cosine >= {tc:.3f}"] if tc is not None else []
    )
    return " or ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quora", type=Path, help="a labelled Quora CSV (question1, question2, ...)")
    ap.add_argument("--model", type=Path, help="a pair model directory (default: the shipped)")
    ap.add_argument("--pairs", type=Path, help="a labelled CSV instead of the development sets")
    ap.add_argument(
        "--list-past",
        type=float,
        metavar="T",
        help="also list the look-alikes the guards pass with a pair score >= T, highest first",
    )
    args = ap.parse_args()
    scorer, embedder = OnnxPairScorer(args.model, threads=2), OnnxEmbedder()
    print(f"pair model: {scorer.name}")
    if args.pairs:
        rows = list(csv.DictReader(args.pairs.open(encoding="utf-8")))
        pos = [(r["question1"], r["question2"]) for r in rows if r["is_duplicate"] == "1"]
        neg = [(r["question1"], r["question2"]) for r in rows if r["is_duplicate"] == "0"]
        title = args.pairs.name
    else:
        pos = _tsv(HERE / "tests/data/paraphrases_dev.tsv", slice(0, 2))
        neg = _tsv(HERE / "tests/data/different_dev.tsv", slice(1, 3))
        title = "chatbot development sets"
    pp, pc, pok = _signals(pos, scorer, embedder)
    np_, nc, nok = _signals(neg, scorer, embedder)
    print(f"{title}: {len(pos)} paraphrases, {len(neg)} look-alikes")
    print(
        f"median pair score: paraphrases {np.median(pp):.3f}, look-alikes {np.median(np_):.3f}; "
        f"guards pass {pok.mean():.3f} of the paraphrases"
    )
    print("| rule | paraphrases reused | look-alikes past |\n|---|---:|---:|")
    for rule in RULES:
        reused = (_passes(pp, pc, rule) & pok).mean()
        past = int((_passes(np_, nc, rule) & nok).sum())
        print(f"| {_name(rule)} | {reused:.3f} | {past} |")
    if args.list_past is not None:
        past_pairs = [(float(p), a, b) for p, ok, (a, b) in zip(np_, nok, neg, strict=True) if ok]
        listed = sorted((x for x in past_pairs if x[0] >= args.list_past), reverse=True)
        print(f"\nlook-alikes past the guards with pair >= {args.list_past}: {len(listed)}")
        for score, a, b in listed:
            print(f"{score:.3f} | {a} | {b}")
    if args.quora:
        rows = list(csv.DictReader(args.quora.open(encoding="utf-8")))
        pairs = [(r["question1"], r["question2"]) for r in rows]
        dup = np.array([r["is_duplicate"] == "1" for r in rows])
        p, c, ok = _signals(pairs, scorer, embedder)
        print(f"\n{args.quora.name}: {len(rows)} pairs, {int(dup.sum())} duplicates")
        print("| rule | recall | wrong over all pairs |\n|---|---:|---:|")
        for rule in RULES:
            sel = _passes(p, c, rule) & ok
            recall = (sel & dup).sum() / dup.sum()
            print(f"| {_name(rule)} | {recall:.3f} | {(sel & ~dup).sum() / len(rows):.2%} |")
        # thresholds chosen in hindsight: the best recall within a wrong rate
        grid_p = [*np.arange(0.80, 1.0, 0.005), None]
        grid_c = [*np.arange(0.90, 1.0, 0.005), None]
        for limit in (0.005, 0.01):
            best: dict[str, tuple[float, str]] = {}
            for tp in grid_p:
                for tc in grid_c:
                    rule = (tp, tc)
                    if tp is None and tc is None:
                        continue
                    sel = _passes(p, c, rule) & ok
                    if (sel & ~dup).sum() / len(rows) > limit:
                        continue
                    kind = "pair alone" if tc is None else "cosine alone" if tp is None else "or"
                    recall = float((sel & dup).sum() / dup.sum())
                    if recall > best.get(kind, (-1.0, ""))[0]:
                        best[kind] = (recall, _name((tp, tc)))
            for kind, (recall, name) in sorted(best.items()):
                print(f"hindsight, wrong <= {limit:.1%}: {kind}: recall {recall:.3f} ({name})")


if __name__ == "__main__":
    main()
