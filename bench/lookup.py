"""Lookup speed: the per-scope ANN index at 10k/100k/1M entries, and the whole hit path over HTTP.

1. ANN: ``ScopedIndex`` (usearch HNSW, float32, cosine) filled with N unit vectors drawn
   from a mixture of Gaussian clusters in 384 dimensions (the embedder's), then queried with
   perturbed copies of stored vectors; p50/p99 of single-query search (k = 8), and the
   exact brute-force scan (numpy matrix-vector product) over the same vectors, side by side.
2. Hit path: a real ``boundgate`` app (in-process uvicorn, real HTTP, fake upstream) whose
   store holds N entries in the request's scope; questions whose stored paraphrase is among
   them are asked, and the end-to-end latency of semantic hits is reported beside the same
   server's exact hits and misses. The verifier is configured to trust its threshold from
   the start (``min_observations = 1``), so that what is timed is the path, not the learning.

    python bench/lookup.py [--sizes 10000 100000 1000000] [--hit-path-size 100000]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from _harness import gateway_over_fake_upstream, track
from boundgate.reuse.index import ScopedIndex
from boundgate.store import StoredEntry

DIM = 384


def clustered(n: int, rng: np.random.Generator, clusters: int = 1000) -> np.ndarray:
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        idx = rng.integers(0, clusters, m)
        block = centres[idx] + 0.6 * rng.standard_normal((m, DIM)).astype(np.float32)
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def ann(sizes: list[int], queries: int) -> None:
    rng = np.random.default_rng(0)
    print("\n## ANN search (k = 8), one scope\n")
    print(
        "| entries | build s | ANN p50 ms | ANN p99 ms | brute p50 ms | brute/ANN p50 | recall@1 |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        vecs = clustered(n, rng)
        index = ScopedIndex(DIM)
        t0 = time.perf_counter()
        index.add_many("s", list(range(n)), vecs)
        build = time.perf_counter() - t0
        picks = rng.integers(0, n, queries)
        q = vecs[picks] + 0.05 * rng.standard_normal((queries, DIM)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        ann_t, brute_t, agree = [], [], 0
        for i in track(range(queries), f"searching {n} entries"):
            t = time.perf_counter()
            res = index.search("s", q[i], 8)
            ann_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            best = int(np.argmax(vecs @ q[i]))
            brute_t.append(time.perf_counter() - t)
            agree += bool(res) and res[0].key == best
        a50, b50 = pct(ann_t, 0.5) * 1000, pct(brute_t, 0.5) * 1000
        print(
            f"| {n} | {build:.1f} | {a50:.3f} | {pct(ann_t, 0.99) * 1000:.3f} | {b50:.2f} | "
            f"{b50 / a50:.0f} | {agree / queries:.3f} |"
        )
        del index, vecs


def hit_path(n: int, pairs_path: Path, queries: int) -> None:
    with pairs_path.open(newline="") as fh:
        dups = [
            (r["question1"], r["question2"]) for r in csv.DictReader(fh) if r["is_duplicate"] == "1"
        ]
    dups = dups[:queries]
    meanings = {q: f"m{i}" for i, pair in enumerate(dups) for q in pair}
    trusting = f"""
[reuse]
initial_threshold = 0.8
min_observations = 1
error_bound = 0.9
verify_rate = 0.0
max_entries = {n + 10 * queries}
"""
    with gateway_over_fake_upstream(meanings, trusting) as (http, app):

        def ask(q: str) -> tuple[str, float]:
            t = time.perf_counter()
            r = http.post(
                "/v1/chat/completions",
                json={"messages": [{"role": "user", "content": q}], "temperature": 0},
            )
            r.raise_for_status()
            return r.headers["x-boundgate-reuse"], time.perf_counter() - t

        # store the paraphrase sources through the API (so their scope is the real one) ...
        miss_t = [ask(q1)[1] for q1, _ in track(dups, "storing the sources")]
        engine = app.state.gateway.reuse
        probe = engine.store.get_entry(engine.store.max_entry_key())
        # ... then fill the same scope with N synthetic entries, straight into store and index
        rng = np.random.default_rng(1)
        vecs = clustered(n, rng)
        first = engine.store.max_entry_key() + 1
        entries = []
        for i in track(range(n), "synthetic entries"):
            entries.append(
                StoredEntry(
                    key=first + i,
                    id=f"ans_synthetic{i:012d}",
                    scope=probe.scope,
                    exact=f"synthetic-{i}",
                    query=f"synthetic question {i}",
                    answer="synthetic answer",
                    finish_reason="stop",
                    prompt_tokens=1,
                    completion_tokens=1,
                    model=probe.model,
                    model_version=probe.model_version,
                    tenant=probe.tenant,
                    created=time.time(),
                    cost_wh=0.001,
                    cost_gco2=0.0005,
                    vector=vecs[i].tobytes(),
                    embedder=probe.embedder,
                    scope_doc=probe.scope_doc,
                )
            )
        for e in entries:
            engine._add_meta(e)
        engine.index.add_many(probe.scope, [e.key for e in entries], vecs)
        engine._next_key = first + n
        print(f"hit path: {len(engine)} entries in the scope", file=sys.stderr)
        ask(dups[0][1])  # the first semantic candidate teaches the verifier one label
        sem_t, exact_t, statuses = [], [], []
        for q1, q2 in track(dups[1:], "asking paraphrases"):
            status, t = ask(q2)
            statuses.append(status)
            if status == "hit-semantic":
                sem_t.append(t)
            status, t = ask(q1)
            if status == "hit-exact":
                exact_t.append(t)
    print(f"\n## Hit path over HTTP, {n} entries in the scope\n")
    print("| path | requests | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for name, xs in (
        ("semantic hit", sem_t),
        ("exact hit", exact_t),
        ("miss (fake upstream)", miss_t),
    ):
        if xs:
            print(
                f"| {name} | {len(xs)} | {pct(xs, 0.5) * 1000:.2f} | {pct(xs, 0.99) * 1000:.2f} |"
            )
    outcomes = {s: statuses.count(s) for s in sorted(set(statuses))}
    print(f"\noutcomes of the paraphrase requests: {json.dumps(outcomes)}")
    if sem_t and exact_t:
        print(
            f"semantic / exact hit p50: {statistics.median(sem_t) / statistics.median(exact_t):.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--hit-path-size", type=int, default=100_000)
    ap.add_argument(
        "--pairs",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "cache" / "quora_val.csv",
    )
    args = ap.parse_args()
    ann(args.sizes, args.queries)
    if args.hit_path_size:
        hit_path(args.hit_path_size, args.pairs, 200)


if __name__ == "__main__":
    main()
