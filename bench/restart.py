"""Start-up of the reuse engine: building the ANN index from the store vs reloading it saved.

A real SQLite store holding N entries in one scope (384-d vectors from the same clustered
mixture as ``lookup.py``) is opened by a fresh ``ReuseEngine`` four times:

1. no saved index: every entry is indexed from scratch (and the result saved at once);
2. the saved index is reloaded;
3. after ``--tail`` more entries were written to the store and ``--evict`` deleted without a
   save (a crash): the saved index is reloaded, the tail replayed, the deleted dropped;
4. as 2, with ``reuse.persist_index`` off (what every start cost before): a rebuild.

Reported: the wall time of ``ReuseEngine.load()`` and what it did. The answers of 200
queries are compared between the rebuilt and the reloaded engines.

    python bench/restart.py [--entries 100000] [--tail 1000] [--evict 100] [--dtype i8]
        [--connectivity 32]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from boundgate.reuse.embedder import HashEmbedder
from boundgate.reuse.engine import ReuseEngine
from boundgate.reuse.verifier import Verifier
from boundgate.settings import ReuseSettings
from boundgate.store import SQLiteStore
from lookup import DIM, clustered, synthetic_entry


async def fill(store: SQLiteStore, first: int, vecs: np.ndarray, embedder: str) -> None:
    step = 2000
    for start in range(0, len(vecs), step):
        await asyncio.gather(
            *(
                store.put_entry(synthetic_entry(first + i, vecs[i], embedder=embedder))
                for i in range(start, min(start + step, len(vecs)))
            )
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--tail", type=int, default=1000)
    ap.add_argument("--evict", type=int, default=100)
    ap.add_argument("--dtype", default="i8")
    ap.add_argument("--connectivity", type=int, default=32)
    args = ap.parse_args()
    embedder = HashEmbedder(DIM)  # only its name and dimension matter: nothing is embedded
    reuse = ReuseSettings(index_dtype=args.dtype, index_connectivity=args.connectivity)
    rng = np.random.default_rng(0)
    vecs = clustered(args.entries + args.tail, rng)
    queries = vecs[rng.integers(0, args.entries, 200)]
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "b.db")
        store.open()
        asyncio.run(fill(store, 1, vecs[: args.entries], embedder.name))
        print(f"store filled: {args.entries} entries", file=sys.stderr, flush=True)
        rows = []
        answers = {}

        def start(label: str, persist: bool = True) -> ReuseEngine:
            engine = ReuseEngine(
                store=store,
                embedder=embedder,
                verifier=Verifier(reuse),
                settings=reuse,
                rebind_window_s=3600.0,
                index_dir=Path(tmp) / "index" if persist else None,
            )
            t = time.perf_counter()
            asyncio.run(engine.load())
            took = time.perf_counter() - t
            load = engine.index_load
            assert load is not None
            rows.append((label, took, load))
            print(f"{label}: {took:.1f} s, {load.summary()}", file=sys.stderr, flush=True)
            return engine

        def answer(engine: ReuseEngine) -> list[list[int]]:
            return [[n.key for n in engine.index.search("bench-scope", q, 8)] for q in queries]

        answers["rebuilt"] = answer(start("1. no saved index: build (+ save)"))
        answers["reloaded"] = answer(start("2. saved index reloaded"))
        asyncio.run(fill(store, args.entries + 1, vecs[args.entries :], embedder.name))
        asyncio.run(store.delete_entries(list(range(1, args.evict + 1))))
        start(f"3. reloaded, {args.tail} new entries replayed, {args.evict} deleted dropped")
        start("4. persist_index off: build", persist=False)
        store.close()
    same = sum(a == b for a, b in zip(answers["rebuilt"], answers["reloaded"], strict=True))
    print(f"\n## Start-up with {args.entries} entries ({args.dtype}:{args.connectivity})\n")
    print("| start | load() s | reused | replayed | dropped | built |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, took, load in rows:
        print(
            f"| {label} | {took:.1f} | {load.reused} | {load.replayed} | {load.dropped} | "
            f"{load.rebuilt} |"
        )
    print(
        f"\nbuild without saving / reload: {rows[3][1] / rows[1][1]:.1f}x; "
        f"same 8 neighbours, rebuilt vs reloaded: {same}/{len(queries)} queries"
    )


if __name__ == "__main__":
    main()
