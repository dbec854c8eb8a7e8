"""Replay: a Zipf-distributed stream of questions over paraphrase clusters.

Clusters come from a pairs file (question1,question2,is_duplicate; duplicates joined
transitively; each side of a non-duplicate pair is its own cluster) and/or GPTCache's JSON
({"origin", "similar"}). Cluster popularity follows Zipf (rank r drawn with probability
∝ 1/r^s); each request asks a uniformly chosen member of the drawn cluster. The stream goes
through boundgate's HTTP API in front of the in-package fake upstream, which answers each
cluster with its own answer.

Oracle: only the first request of each cluster must be computed; every later one could be
reused. Reported: energy avoided (the gateway's ``x-boundgate-energy-avoided-wh``) as a share
of the oracle-avoidable energy (each later request's would-be generation cost, taken as the
measured cost of its cluster's first computation), and the wrong-reuse rate (requests served
an answer of another cluster, over all requests).

    python bench/replay.py --pairs ../shared/data/cache/quora_val.csv [--requests 5000]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from _harness import gateway_over_fake_upstream, track
from boundgate.backends.fake import fake_answer
from reuse_quality import Components, load_pairs


def clusters_from(paths: list[Path]) -> list[list[str]]:
    comp = Components.of(pair for path in paths for pair in load_pairs(path, None, 0))
    groups: dict[str, list[str]] = {}
    for q in comp.parent:
        groups.setdefault(comp.find(q), []).append(q)
    return [sorted(g) for g in groups.values()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=Path, action="append", required=True)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent s")
    ap.add_argument("--clusters", type=int, default=2000, help="clusters in the universe")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    clusters = clusters_from(args.pairs)
    # Prefer multi-member clusters (they carry the paraphrases) but keep singletons: they are
    # the near-miss distractors.
    rng.shuffle(clusters)
    clusters.sort(key=lambda c: -min(len(c), 2))
    universe = clusters[: args.clusters]
    rng.shuffle(universe)
    weights = [1.0 / (r + 1) ** args.zipf for r in range(len(universe))]
    stream = [
        (ci, rng.choice(universe[ci]))
        for ci in rng.choices(range(len(universe)), weights=weights, k=args.requests)
    ]
    meanings = {q: f"cluster-{ci}" for ci, c in enumerate(universe) for q in c}

    with gateway_over_fake_upstream(meanings) as (http, _app):
        first_cost: dict[int, float] = {}
        avoidable = avoided = 0.0
        hits = wrong = exact = semantic = 0
        t0 = time.perf_counter()
        for ci, q in track(stream, "replaying requests"):
            r = http.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": q}], "temperature": 0},
            )
            r.raise_for_status()
            status = r.headers["x-boundgate-reuse"]
            text = r.json()["choices"][0]["message"]["content"]
            if ci in first_cost:
                avoidable += first_cost[ci]
            if status.startswith("hit"):
                hits += 1
                exact += status == "hit-exact"
                semantic += status == "hit-semantic"
                avoided += float(r.headers["x-boundgate-energy-avoided-wh"])
                if text != fake_answer(meanings[q]):
                    wrong += 1
            elif ci not in first_cost:
                first_cost[ci] = float(r.headers["x-boundgate-energy-wh"])
        wall = time.perf_counter() - t0
        stats = http.get("/v1/boundgate/stats").json()["reuse"]

    n = len(stream)
    distinct = len({ci for ci, _ in stream})
    print(
        f"\n# Replay ({', '.join(p.name for p in args.pairs)}; {n} requests, Zipf s={args.zipf}, "
        f"{len(universe)} clusters, {distinct} asked)\n"
    )
    print("| metric | value |")
    print("|---|---:|")
    print(f"| requests served from the store | {hits} ({exact} exact, {semantic} semantic) |")
    print(f"| oracle-avoidable requests | {n - distinct} |")
    print(f"| energy avoided / oracle-avoidable energy | {avoided / max(1e-12, avoidable):.3f} |")
    print(f"| wrong reuses / all requests | {wrong / n:.4f} (δ = {stats['error_bound']}) |")
    print(f"| final similarity threshold | {stats['threshold']:.3f} |")
    print(f"| run time | {wall:.0f} s |")


if __name__ == "__main__":
    main()
