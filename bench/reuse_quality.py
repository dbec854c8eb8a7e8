"""Reuse quality: how many true paraphrases are reused, and how many requests get a wrong answer.

Drives boundgate's public HTTP API. The upstream is the in-package fake OpenAI-compatible
server, told which questions share a meaning (duplicate pairs, joined transitively), so each
meaning has its own distinct answer and a reused answer is *wrong* exactly when it differs
from the answer of the asked question's meaning.

Phase 1 asks every question1 (stored as misses); phase 2 asks every question2 and reads
``x-boundgate-reuse`` and the answer. Reported:

- recall: duplicates answered from the store with the right answer, over all duplicates;
- wrong-reuse rate: requests of phase 2 answered from the store with a wrong answer, over all
  phase-2 requests (vCache's definition of the error bound δ), and over non-duplicates;
- energy avoided: the gateway's ``x-boundgate-energy-avoided-wh`` summed, over the energy
  phase 2 would have spent without reuse;
- hard negatives: questions from the same file turned into their negation or antonym
  ("Is X safe?" → "Is X not safe?", "turn on" → "turn off"); any reuse there is wrong.

Side by side, on the same pairs and the same embeddings: a fixed cosine threshold over the
last message only, at 0.7/0.8/0.9/0.95 — GPTCache's default policy (its similarity threshold,
default 0.8). GPTCache itself is not installed: its default embedding model is fetched from
the Hugging Face hub at run time, which this project does not allow; the emulation uses the
same all-MiniLM-L6-v2 int8 model boundgate uses, so the comparison isolates the policy.

    python bench/reuse_quality.py --pairs ../shared/data/cache/quora_val.csv [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

from _harness import gateway_over_fake_upstream, track
from boundgate.backends.fake import fake_answer
from boundgate.reuse.embedder import OnnxEmbedder

AUX = re.compile(
    r"^(is|are|was|were|can|could|do|does|did|should|would|will|has|have)\s", re.IGNORECASE
)
SWAPS = [
    ("increase", "decrease"),
    ("enable", "disable"),
    ("turn on", "turn off"),
    ("before", "after"),
    ("best", "worst"),
    ("more", "less"),
    ("buy", "sell"),
    ("start", "stop"),
    ("advantages", "disadvantages"),
    ("legal", "illegal"),
    ("possible", "impossible"),
    ("good", "bad"),
    ("safe", "unsafe"),
    ("rich", "poor"),
]


def negate(q: str) -> str | None:
    """A contradicting question, or None if no simple rule applies."""
    m = AUX.match(q)
    if m:
        return q[: m.end()] + "not " + q[m.end() :]
    low = q.lower()
    for a, b in SWAPS:
        for x, y in ((a, b), (b, a)):
            hit = re.search(rf"\b{re.escape(x)}\b", low)
            if hit:
                return q[: hit.start()] + y + q[hit.end() :]
    return None


class Components:
    """Union-find over questions: duplicate pairs share a meaning, transitively."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def load_pairs(path: Path, limit: int | None, seed: int) -> list[tuple[str, str, int]]:
    """CSV with question1,question2,is_duplicate; or GPTCache's JSON list of
    {"origin", "similar"} (all duplicates)."""
    if path.suffix == ".json":
        items = json.loads(path.read_text())
        rows = [(i["origin"].strip(), i["similar"].strip(), 1) for i in items]
    else:
        with path.open(newline="") as fh:
            rows = [
                (r["question1"].strip(), r["question2"].strip(), int(r["is_duplicate"]))
                for r in csv.DictReader(fh)
            ]
    rows = [r for r in rows if r[0] and r[1] and r[0] != r[1]]
    random.Random(seed).shuffle(rows)
    return rows[:limit] if limit else rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None, help="use the first N pairs (shuffled)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--negatives", type=int, default=500, help="hard negatives to generate")
    ap.add_argument(
        "--scorer",
        choices=["density", "cosine"],
        default=None,
        help="reuse.scorer for the gateway (default: the setting's default)",
    )
    args = ap.parse_args()

    pairs = load_pairs(args.pairs, args.limit, args.seed)
    comp = Components()
    for q1, q2, dup in pairs:
        comp.find(q1)
        comp.find(q2)
        if dup:
            comp.union(q1, q2)
    negatives: list[tuple[str, str]] = []
    for q1, _, _ in pairs:
        n = negate(q1)
        if n and n != q1 and len(negatives) < args.negatives:
            negatives.append((q1, n))

    meanings = {q: comp.find(q) for q in comp.parent}
    for _, n in negatives:
        meanings[n] = "negated:" + n

    extra = f'[reuse]\nscorer = "{args.scorer}"\n' if args.scorer else ""
    with gateway_over_fake_upstream(meanings, extra) as (http, _app):

        def ask(q: str) -> tuple[str, str, float, float]:
            r = http.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": q}], "temperature": 0},
            )
            r.raise_for_status()
            text = r.json()["choices"][0]["message"]["content"]
            return (
                r.headers["x-boundgate-reuse"],
                text,
                float(r.headers.get("x-boundgate-energy-avoided-wh", 0.0)),
                float(r.headers["x-boundgate-energy-wh"]),
            )

        t0 = time.perf_counter()
        phase1_wh: dict[str, float] = {}
        for q1, _, _ in track(pairs, "phase 1: storing"):
            if q1 not in phase1_wh:
                phase1_wh[q1] = ask(q1)[3]
        hits = right_dup = wrong = wrong_nondup = 0
        avoided = spent = 0.0
        for _, q2, dup in track(pairs, "phase 2: asking"):
            status, text, avoided_wh, wh = ask(q2)
            served = status.startswith("hit")
            ok = text == fake_answer(meanings[q2])
            if served:
                hits += 1
                avoided += avoided_wh
                if not ok:
                    wrong += 1
                    wrong_nondup += 0 if dup else 1
                elif dup:
                    right_dup += 1
            spent += wh
        neg_wrong = 0
        for q1, n in track(negatives, "hard negatives"):
            status, text, _, _ = ask(n)
            if status.startswith("hit") and text != fake_answer(meanings[n]):
                neg_wrong += 1
                print(f"wrong on hard negative: {q1!r} -> {n!r}", file=sys.stderr)
        stats = http.get("/v1/boundgate/stats").json()["reuse"]
        wall = time.perf_counter() - t0

    n = len(pairs)
    n_dup = sum(d for _, _, d in pairs)
    n_non = n - n_dup

    # The fixed-threshold policy on the same embeddings, last message only.
    emb = OnnxEmbedder(threads=2)
    q1s = list(dict.fromkeys(q1 for q1, _, _ in pairs))
    v1 = emb.embed(q1s)
    v2 = emb.embed([q2 for _, q2, _ in pairs])
    sims = v2 @ v1.T
    best = sims.argmax(axis=1)
    best_sim = sims[np.arange(n), best]
    same = np.array(
        [comp.find(q1s[j]) == comp.find(q2) for j, (_, q2, _) in zip(best, pairs, strict=True)]
    )
    dup_arr = np.array([d for _, _, d in pairs], dtype=bool)

    print(f"\n# Reuse quality ({args.pairs.name}, {n} pairs: {n_dup} duplicates, {n_non} not)\n")
    print(f"boundgate run: {wall:.0f} s; final threshold {stats['threshold']:.3f}\n")
    print("| policy | recall on duplicates | wrong / all requests | wrong / non-duplicates |")
    print("|---|---:|---:|---:|")
    print(
        f"| boundgate (δ = {stats['error_bound']}, {stats['scorer']} scorer "
        f"{stats['scorer_parameters']}) | {right_dup / max(1, n_dup):.3f} | "
        f"{wrong / n:.4f} | {wrong_nondup / max(1, n_non):.4f} |"
    )
    for t in (0.7, 0.8, 0.9, 0.95):
        hit = best_sim >= t
        rec = float((hit & same & dup_arr).sum()) / max(1, n_dup)
        w = float((hit & ~same).sum())
        wn = float((hit & ~same & ~dup_arr).sum())
        print(
            f"| fixed threshold {t} (GPTCache-style) | {rec:.3f} | {w / n:.4f} | "
            f"{wn / max(1, n_non):.4f} |"
        )
    print(
        f"\nboundgate: {hits} of {n} phase-2 requests served from the store; energy avoided "
        f"{avoided:.4f} Wh of {avoided + spent:.4f} Wh phase 2 would have used "
        f"({100 * avoided / max(1e-12, avoided + spent):.1f} %)."
    )
    print(
        f"hard negatives (negation/antonym of a stored question): {neg_wrong} of "
        f"{len(negatives)} answered wrongly ({neg_wrong / max(1, len(negatives)):.4f})."
    )
    print(
        f"verifier: estimate {stats['error_rate_estimate']:.4f} "
        f"(CI {stats['error_rate_ci'][0]:.4f}-{stats['error_rate_ci'][1]:.4f}), "
        f"hit precision {stats['hit_precision']}, observations {stats['observations']}"
    )


if __name__ == "__main__":
    main()
