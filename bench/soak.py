"""Soak: mixed traffic against one `boundgate serve` process for a long time; does it leak?

The server runs as its own process (`boundgate serve`, SQLite, reuse on) in front of the
in-package fake upstream (another process), so its resident set and open file descriptors
are its own. A closed loop of ``--concurrency`` clients sends a mix drawn per request:

- 40 % a question from a pool of 300 (mostly exact hits after the first pass),
- 20 % a new question (a miss, stored; ``--new-share``),
- 15 % a streamed request (pool or new),
- 5 % a stream the client abandons after its first chunk (the server must cancel it),
- 10 % a bad request (400),
- 5 % embeddings,
- 5 % a request with a malformed upstream answer pattern: unknown model (404),
- and every 2,000 requests a 5-line batch (scheduler policy `now`).

Every ``--window`` requests it reads the server's VmRSS and open descriptors
(/proc/PID/status, /proc/PID/fd) and the window's p50/p99 latency; the table shows them per
window, and the summary the growth per 10k requests after the first (warm-up) window.

    python bench/soak.py --duration 1800 [--concurrency 4] [--window 10000]

``--tracemalloc N`` runs the server under tracemalloc (N frames per allocation; it runs
several times slower), takes a snapshot at each window and prints what grew most from the
first window's snapshot to the last, by the line that allocated it (and its callers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _harness import PY, Proc, free_port


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def soak(
    base: str,
    pid: int,
    duration_s: float,
    concurrency: int,
    window: int,
    new_share: float,
    snapshots: Path | None = None,
) -> None:
    rng = random.Random(1)
    pool = [f"What is fact number {i} about the history of energy?" for i in range(300)]
    sent = 0
    fresh = 0
    lat: list[float] = []
    rows: list[tuple[int, float, int, float, float, dict[str, int]]] = []
    kinds: dict[str, int] = {}
    deadline = time.monotonic() + duration_s
    limits = httpx.Limits(max_connections=concurrency + 2)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def one() -> None:
            nonlocal sent, fresh
            sent += 1
            r = rng.random()
            t0 = time.perf_counter()
            msg = rng.choice(pool)
            if r < new_share:  # new questions are chat requests (r < 0.60)
                fresh += 1
                msg = f"Tell me new thing {fresh} about grids?"
            body = {"messages": [{"role": "user", "content": msg}], "temperature": 0}
            if r < 0.60:
                kind = "chat"
                resp = await client.post("/v1/chat/completions", json=body)
            elif r < 0.80:
                abandon = r >= 0.75
                kind = "abandoned stream" if abandon else "stream"
                if abandon:
                    body["messages"][0]["content"] = f"Write a long essay number {sent}"
                async with client.stream(
                    "POST", "/v1/chat/completions", json={**body, "stream": True}
                ) as s:
                    async for _ in s.aiter_lines():
                        if abandon:
                            break  # leave after the first line: the server must cancel
                resp = s
            elif r < 0.90:
                kind = "bad request"
                resp = await client.post("/v1/chat/completions", json={"messages": "nope"})
            elif r < 0.95:
                kind = "embeddings"
                resp = await client.post("/v1/embeddings", json={"input": [msg]})
            else:
                kind = "unknown model"
                resp = await client.post("/v1/chat/completions", json={**body, "model": "nope"})
            lat.append(time.perf_counter() - t0)
            key = f"{kind} {resp.status_code}"
            kinds[key] = kinds.get(key, 0) + 1
            if sent % 2000 == 0:
                await batch(client, sent)

        async def worker() -> None:
            while time.monotonic() < deadline:
                await one()
                if sent // window > len(rows):
                    rows.append(
                        (sent, proc_rss_mb(pid), proc_fds(pid), pct(lat, 0.5), pct(lat, 0.99), {})
                    )
                    lat.clear()
                    if snapshots is not None:
                        await snapshot(pid, snapshots, len(rows) - 1)

        await asyncio.gather(*[worker() for _ in range(concurrency)])
    print(f"\n# Soak: {sent} requests in {duration_s:.0f} s, {concurrency} clients\n")
    print("| requests | RSS MB | open fds | p50 ms | p99 ms |")
    print("|---:|---:|---:|---:|---:|")
    for n, rss, fds, p50, p99, _ in rows:
        print(f"| {n} | {rss:.0f} | {fds} | {p50 * 1000:.1f} | {p99 * 1000:.1f} |")
    if len(rows) >= 3:
        per = 10_000 / (rows[-1][0] - rows[0][0])
        print(
            f"\nafter the first window: RSS {(rows[-1][1] - rows[0][1]) * per:+.1f} MB, "
            f"fds {(rows[-1][2] - rows[0][2]) * per:+.1f} per 10k requests; p99 first/last "
            f"window {rows[0][4] * 1000:.1f} / {rows[-1][4] * 1000:.1f} ms; p99 median "
            f"{statistics.median(r[4] for r in rows) * 1000:.1f} ms"
        )
    print(f"outcomes: {json.dumps(dict(sorted(kinds.items())))}")
    if snapshots is not None and len(rows) >= 2:
        grown(snapshots, 0, len(rows) - 1, rows[-1][0] - rows[0][0])


async def snapshot(pid: int, where: Path, n: int) -> None:
    """Ask the traced server for snapshot ``n`` and wait until it is written."""
    os.kill(pid, signal.SIGUSR1)
    # the server process writes the marker: nothing in this loop to wait on but the file
    while not (where / f"snap-{n}.done").exists():  # noqa: ASYNC110
        await asyncio.sleep(0.2)


def grown(where: Path, first: int, last: int, requests: int, top: int = 15) -> None:
    """The allocation sites that grew most between two snapshots (per 10k requests)."""
    import tracemalloc

    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
        tracemalloc.Filter(False, "<unknown>"),
    ]
    a = tracemalloc.Snapshot.load(str(where / f"snap-{first}.pickle")).filter_traces(ignore)
    b = tracemalloc.Snapshot.load(str(where / f"snap-{last}.pickle")).filter_traces(ignore)
    diff = b.compare_to(a, "traceback")
    total = sum(d.size_diff for d in diff)
    per = 10_000 / max(1, requests)
    print(
        f"\n# tracemalloc: traced memory {total / 2**20 * per:+.2f} MB per 10k requests "
        f"from window {first + 1} to {last + 1}; the sites that grew most:\n"
    )
    for d in diff[:top]:
        print(f"{d.size_diff / 1024 * per:+9.1f} KB/10k  {d.count_diff * per:+8.0f} blocks/10k")
        for line in d.traceback.format(limit=6, most_recent_first=True):
            print("    " + line)


async def batch(client: httpx.AsyncClient, n: int) -> None:
    lines = "\n".join(
        json.dumps(
            {
                "custom_id": f"b{n}-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"messages": [{"role": "user", "content": f"batch {n} line {i}"}]},
            }
        )
        for i in range(5)
    )
    f = await client.post(
        "/v1/files", files={"file": ("in.jsonl", lines)}, data={"purpose": "batch"}
    )
    await client.post(
        "/v1/batches",
        json={
            "input_file_id": f.json()["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=1800.0, help="seconds")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--window", type=int, default=10_000, help="requests per row")
    ap.add_argument(
        "--new-share",
        type=float,
        default=0.20,
        help="share of requests asking a new question (stored: memory grows by design); 0: "
        "repeats only, so any steady RSS growth is a leak",
    )
    ap.add_argument(
        "--tracemalloc",
        type=int,
        default=0,
        metavar="FRAMES",
        help="run the server under tracemalloc with this many frames; print what grew",
    )
    args = ap.parse_args()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        up_port, port = free_port(), free_port()
        cfg = Path(tmp) / "soak.toml"
        cfg.write_text(
            f"""
[server]
data_dir = "{Path(tmp) / "data"}"
port = {port}
log_level = "warning"

[scheduler]
policy = "now"

[models.upstream]
backend = "openai"
base_url = "http://127.0.0.1:{up_port}/v1"
upstream_model = "fake"
params_b = 8
default = true
"""
        )
        upstream = Proc([PY, "-m", "boundgate.backends.fake", "--port", str(up_port)])
        snapshots = Path(tmp) / "snapshots" if args.tracemalloc else None
        if snapshots is not None:
            snapshots.mkdir()
            traced = Path(__file__).with_name("_traced_serve.py")
            cmd = [PY, str(traced), str(snapshots), str(args.tracemalloc)]
        else:
            cmd = [str(bin_dir / "boundgate")]
        server = Proc([*cmd, "serve", "--config", str(cfg)])
        try:
            upstream.wait_http(f"http://127.0.0.1:{up_port}/v1/models")
            server.wait_http(f"http://127.0.0.1:{port}/readyz")
            asyncio.run(
                soak(
                    f"http://127.0.0.1:{port}",
                    server.proc.pid,
                    args.duration,
                    args.concurrency,
                    args.window,
                    min(0.60, max(0.0, args.new_share)),
                    snapshots,
                )
            )
        finally:
            server.stop()
            upstream.stop()


if __name__ == "__main__":
    main()
