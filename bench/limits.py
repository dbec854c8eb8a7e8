"""What shared budgets cost on the hit path: the in-process Limiter (before, main's code) vs
the counters in the store (this branch), on SQLite and on PostgreSQL.

Targets (each `boundgate serve` over the in-process fake model, reuse on with the hash
embedder, every request the same question, so all but the first are exact hits):
  before       the source tree at --before (the in-process Limiter), key with rpm + budget
  sqlite       this tree, SQLite store, the same key limits (2 store writes per request more:
               the reservation and, off the response path, its settle)
  sqlite-free  this tree, SQLite, a key without limits (the fast path: no counter touched)
  postgres     this tree, PostgreSQL (a throwaway embedded server, tests/pg_server.py), limits
  postgres-free  the same without limits: the difference to postgres is what the limits cost

Rounds are interleaved (before, sqlite, sqlite-free, postgres, before, ...) so drift on the
shared machine hits all targets alike; medians over rounds. The load generator shares the
cores with the servers.

    python bench/limits.py [--before /work/main/src] [--requests 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import PY, LoadResult, Proc, free_port, median, run_load, track

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
BODY = {
    "model": "fake",
    "messages": [{"role": "user", "content": "How do I reset my password?"}],
    "max_tokens": 16,
    "temperature": 0,
}


def config(tmp: Path, name: str) -> Path:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(
        f"""
[server]
data_dir = "{tmp / name}"
log_level = "warning"

[reuse]
embedder = "hash"
scorer = "cosine"

[dashboard]
enabled = false

[models.fake]
backend = "fake"
default = true
"""
    )
    return cfg


def create_key(src: Path, cfg: Path, env: dict[str, str], limited: bool) -> str:
    limits = ["--rpm", "1000000", "--daily-tokens", "1000000000"] if limited else []
    done = subprocess.run(
        [PY, "-m", "boundgate", "keys", "create", "--tenant", "bench", *limits, "-c", str(cfg)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env, "PYTHONPATH": str(src)},
    )
    return done.stdout.strip().splitlines()[-1]


def start(
    tmp: Path, name: str, src: Path, env: dict[str, str], limited: bool
) -> tuple[str, dict[str, str], Proc]:
    cfg = config(tmp, name)
    secret = create_key(src, cfg, env, limited)
    port = free_port()
    proc = Proc(
        [PY, "-m", "boundgate", "serve", "-c", str(cfg), "--port", str(port)],
        env={**env, "PYTHONPATH": str(src)},
    )
    proc.wait_http(f"http://127.0.0.1:{port}/readyz")
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    return url, {"Authorization": f"Bearer {secret}"}, proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--before", type=Path, default=Path("/work/main/src"))
    ap.add_argument("--requests", type=int, default=400, help="requests per target per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = ap.parse_args()

    sys.path.insert(0, str(HERE.parent / "tests"))
    from pg_server import PostgresServer

    pg = PostgresServer().start()

    def pg_url(schema: str) -> str:  # one schema per target: each its own keys
        import psycopg

        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{pg.url}?options=-csearch_path%3D{schema}"

    procs: list[Proc] = []
    try:
        with tempfile.TemporaryDirectory() as tmp_s:
            tmp = Path(tmp_s)
            targets: dict[str, tuple[str, dict[str, str]]] = {}
            for name, src, env, limited in (
                ("before", args.before, {}, True),
                ("sqlite", SRC, {}, True),
                ("sqlite-free", SRC, {}, False),
                ("postgres", SRC, {"BOUNDGATE_STORE__URL": pg_url("limits")}, True),
                ("postgres-free", SRC, {"BOUNDGATE_STORE__URL": pg_url("free")}, False),
            ):
                url, headers, proc = start(tmp, name, src, env, limited)
                procs.append(proc)
                targets[name] = (url, headers)
            for url, headers in targets.values():  # warm-up; stores the answer
                asyncio.run(run_load(url, BODY, 4, 100, headers))
            rows = []
            for conc in args.concurrency:
                results: dict[str, list[LoadResult]] = {name: [] for name in targets}
                for _ in track(range(args.rounds), f"rounds at concurrency {conc}"):
                    for name, (url, headers) in targets.items():
                        results[name].append(
                            asyncio.run(run_load(url, BODY, conc, args.requests, headers))
                        )
                rows.append((conc, results))
    finally:
        for p in reversed(procs):
            p.stop()
        pg.stop()

    print(
        f"\n# Hit path with budgets (requests/round={args.requests}, rounds={args.rounds}, "
        f"cpus={os.cpu_count()})\n"
    )
    print("| conc | target | p50 ms | p99 ms | RPS | RPS / before | p50 − before ms | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for conc, results in rows:
        before = results["before"]
        for name, runs in results.items():
            p50 = median([r.pct(0.5) for r in runs]) * 1000
            p99 = median([r.pct(0.99) for r in runs]) * 1000
            rps = median([r.rps for r in runs])
            ratio = median([r.rps / b.rps for r, b in zip(runs, before, strict=True)])
            d50 = median([r.pct(0.5) - b.pct(0.5) for r, b in zip(runs, before, strict=True)])
            errors = sum(r.errors for r in runs)
            print(
                f"| {conc} | {name} | {p50:.2f} | {p99:.2f} | {rps:.0f} | {ratio:.2f} | "
                f"{d50 * 1000:+.2f} | {errors} |"
            )


if __name__ == "__main__":
    main()
