"""Lookup speed: the per-scope ANN index at 10k/100k/1M entries, and the whole hit path over HTTP.

1. ANN: ``ScopedIndex`` (usearch HNSW, float32, cosine) filled with N unit vectors drawn
   from a mixture of Gaussian clusters in 384 dimensions (the embedder's), then queried with
   perturbed copies of stored vectors; p50/p99 of single-query search (k = 8), and the
   exact brute-force scan (numpy matrix-vector product) over the same vectors, side by side.
2. Knobs (``--knobs``): the same vectors and queries against several indexes side by side:
   ``dtype`` (f32; f16/i8 with the top 2k rescored by exact float32 dot products) ×
   ``connectivity`` at build time, ``expansion_search`` at query time, single queries through
   ``ScopedIndex.search`` (what the gateway calls) with all configurations interleaved query
   by query in a shuffled order, and batched search (all queries in one usearch call, both
   cores) per query. Recall@1 is against the exact top-1 (brute force). ``--index-cache DIR``
   saves each built index and loads it on the next run (a 1M build takes 10-25 minutes).
3. Hit path: a real ``boundgate`` app (in-process uvicorn, real HTTP, fake upstream) whose
   store holds N entries in the request's scope; questions whose stored paraphrase is among
   them are asked, and the end-to-end latency of semantic hits is reported beside the same
   server's exact hits and misses. The verifier is configured to trust its threshold from
   the start (``min_observations = 1``), so that what is timed is the path, not the learning.

    python bench/lookup.py [--sizes 10000 100000 1000000] [--hit-path-size 100000]
    python bench/lookup.py --knobs --sizes 1000000 --builds f32:16 i8:16 \
        --efs 32 64 128 256 --index-cache /tmp/bg-index-cache --hit-path-size 0
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from _harness import gateway_over_fake_upstream, track
from boundgate.reuse.index import IndexParams, ScopedIndex
from boundgate.settings import ReuseSettings
from boundgate.store import StoredEntry

DIM = 384


def synthetic_entry(
    key: int,
    vector: np.ndarray,
    *,
    embedder: str,
    scope: str = "bench-scope",
    model: str = "m",
    model_version: str = "v",
    tenant: str = "t",
    scope_doc: str = "{}",
    created: float = 1_800_000_000.0,
) -> StoredEntry:
    """A stored entry with a synthetic question and answer around ``vector``."""
    return StoredEntry(
        key=key,
        id=f"ans_synthetic{key:012d}",
        scope=scope,
        exact=f"synthetic-{key}",
        query=f"synthetic question {key}",
        answer="synthetic answer",
        finish_reason="stop",
        prompt_tokens=1,
        completion_tokens=1,
        model=model,
        model_version=model_version,
        tenant=tenant,
        created=created,
        cost_wh=0.001,
        cost_gco2=0.0005,
        vector=np.asarray(vector, dtype=np.float32).tobytes(),
        embedder=embedder,
        scope_doc=scope_doc,
    )


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
        index = ScopedIndex(DIM, IndexParams.of(ReuseSettings()))
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


def exact_top1(vecs: np.ndarray, q: np.ndarray) -> np.ndarray:
    best = np.full(len(q), -1, dtype=np.int64)
    best_sim = np.full(len(q), -np.inf, dtype=np.float32)
    step = 100_000
    for start in range(0, len(vecs), step):
        sims = q @ vecs[start : start + step].T
        arg = np.argmax(sims, axis=1)
        top = sims[np.arange(len(q)), arg]
        better = top > best_sim
        best[better], best_sim[better] = arg[better] + start, top[better]
    return best


def built_index(
    vecs: np.ndarray, params: IndexParams, cache: Path | None, tag: str
) -> tuple[ScopedIndex, str]:
    """An index over ``vecs`` (keys = row numbers), loaded from ``cache`` if saved there."""
    index = ScopedIndex(DIM, params)
    name = f"{tag}-{params.dtype}-M{params.connectivity}-ea{params.expansion_add}.usearch"
    path = cache / name if cache is not None else None
    if path is not None and path.exists():
        from usearch.index import Index  # after boundgate.reuse, which loads onnxruntime first

        t0 = time.perf_counter()
        idx = Index.restore(path)
        assert idx is not None and index.fits(idx) and len(idx) == len(vecs)
        exact = {k: vecs[k].tobytes() for k in range(len(vecs))} if params.quantized else {}
        index.adopt("s", idx, list(range(len(vecs))), exact)
        return index, f"loaded in {time.perf_counter() - t0:.1f} s"
    t0 = time.perf_counter()
    index.add_many("s", list(range(len(vecs))), vecs)
    how = f"built in {time.perf_counter() - t0:.1f} s"
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with index.frozen() as indexes:
            indexes["s"].save(path)
    return index, how


def knobs(
    n: int,
    queries: int,
    builds: list[str],
    efs: list[int],
    cold_efs: list[int],
    cache: Path | None,
    k: int = 8,
) -> None:
    rng = np.random.default_rng(0)
    vecs = clustered(n, rng)
    picks = rng.integers(0, n, queries)
    q = vecs[picks] + 0.05 * rng.standard_normal((queries, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    truth = exact_top1(vecs, q)
    indexes: list[tuple[str, IndexParams, ScopedIndex]] = []
    for b in builds:
        dtype, m = b.split(":")
        params = IndexParams.of(ReuseSettings(index_connectivity=int(m), index_dtype=dtype))
        index, how = built_index(vecs, params, cache, f"clustered-n{n}-seed0")
        print(f"{dtype} connectivity {m}: {how}", file=sys.stderr, flush=True)
        indexes.append((b, params, index))
    configs = [(b, ef, index) for b, _, index in indexes for ef in efs]
    times: dict[tuple[str, int], list[float]] = {(b, ef): [] for b, ef, _ in configs}
    hits: dict[tuple[str, int], int] = {(b, ef): 0 for b, ef, _ in configs}
    brute_t = []
    order = np.random.default_rng(2)
    for i in range(queries):
        # interleaved, in a new order for each query: whichever runs first after another
        # index (or the brute-force scan) finds the caches cold, so no configuration always is
        for j in order.permutation(len(configs)):
            b, ef, index = configs[j]
            index.set_expansion_search(ef)
            t = time.perf_counter()
            res = index.search("s", q[i], k)
            times[(b, ef)].append(time.perf_counter() - t)
            hits[(b, ef)] += bool(res) and res[0].key == truth[i]
        if i < 50:
            t = time.perf_counter()
            np.argmax(vecs @ q[i])
            brute_t.append(time.perf_counter() - t)
    # the first table times each ANN query right after a brute-force scan of all vectors,
    # which leaves the CPU caches cold; the same here
    cold: dict[tuple[str, int], list[float]] = {
        (b, ef): [] for b, _, _ in indexes for ef in cold_efs
    }
    for i in range(min(100, queries)):
        for b, _, index in indexes:
            for ef in cold_efs:
                np.argmax(vecs @ q[i])
                index.set_expansion_search(ef)
                t = time.perf_counter()
                index.search("s", q[i], k)
                cold[(b, ef)].append(time.perf_counter() - t)
    batch: dict[tuple[str, int], tuple[float, float]] = {}
    for b, ef, index in configs:
        index.set_expansion_search(ef)
        with index.frozen() as raw:
            t = time.perf_counter()
            m = raw["s"].search(q, k, threads=0)
            per_q = (time.perf_counter() - t) / queries
        batch[(b, ef)] = (per_q, float(np.mean(m.keys[:, 0] == truth)))
    print(f"\n## ANN knobs at {n} entries, k = {k}, {queries} queries\n")
    print(f"brute force (numpy, float32) p50: {pct(brute_t, 0.5) * 1000:.2f} ms\n")
    print(
        "| dtype:connectivity | expansion_search | p50 ms | p99 ms | recall@1 "
        "| batched ms/query | batched recall@1 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for b, ef, _ in configs:
        ts = times[(b, ef)]
        per_q, brecall = batch[(b, ef)]
        print(
            f"| {b} | {ef} | {pct(ts, 0.5) * 1000:.3f} | {pct(ts, 0.99) * 1000:.3f} | "
            f"{hits[(b, ef)] / queries:.3f} | {per_q * 1000:.3f} | {brecall:.3f} |"
        )
    print("\nEach query right after a brute-force scan (cold caches), first 100 queries:\n")
    print("| dtype:connectivity | expansion_search | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for (b, ef), ts in cold.items():
        print(f"| {b} | {ef} | {pct(ts, 0.5) * 1000:.3f} | {pct(ts, 0.99) * 1000:.3f} |")


def hit_path(n: int, pairs_path: Path, queries: int, scorer: str = "pair") -> None:
    with pairs_path.open(newline="") as fh:
        dups = [
            (r["question1"], r["question2"]) for r in csv.DictReader(fh) if r["is_duplicate"] == "1"
        ]
    dups = dups[:queries]
    meanings = {q: f"m{i}" for i, pair in enumerate(dups) for q in pair}
    trusting = f"""
[reuse]
scorer = "{scorer}"
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
        probe = asyncio.run(engine.store.get_entry(asyncio.run(engine.store.max_entry_key())))
        # ... then fill the same scope with N synthetic entries, straight into store and index
        rng = np.random.default_rng(1)
        vecs = clustered(n, rng)
        first = 1 << 40  # in memory only: far above the keys the store hands out
        now = time.time()
        entries = [
            synthetic_entry(
                first + i,
                vecs[i],
                embedder=probe.embedder,
                scope=probe.scope,
                model=probe.model,
                model_version=probe.model_version,
                tenant=probe.tenant,
                scope_doc=probe.scope_doc,
                created=now,
            )
            for i in track(range(n), "synthetic entries")
        ]
        for e in entries:
            engine._add_meta(e)
        engine.index.add_many(probe.scope, [e.key for e in entries], vecs)
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
    print(f"\n## Hit path over HTTP, {n} entries in the scope, {scorer} scorer\n")
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
    ap.add_argument("--knobs", action="store_true", help="compare index configurations")
    ap.add_argument("--builds", nargs="+", default=["f32:16", "i8:16"], help="dtype:connectivity")
    ap.add_argument("--efs", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--cold-efs", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--index-cache", type=Path, default=None)
    ap.add_argument(
        "--scorers",
        nargs="+",
        default=["pair", "density"],
        choices=["pair", "density", "cosine"],
        help="reuse.scorer for the hit path, one run each in this order",
    )
    args = ap.parse_args()
    if args.knobs:
        for n in args.sizes:
            knobs(n, args.queries, args.builds, args.efs, args.cold_efs, args.index_cache)
    else:
        ann(args.sizes, args.queries)
    if args.hit_path_size:
        for scorer in args.scorers:
            hit_path(args.hit_path_size, args.pairs, 200, scorer)


if __name__ == "__main__":
    main()
