"""Shared benchmark plumbing: subprocess servers, readiness, load generation, percentiles.

Benchmarks here compare variants side by side in one run, interleaved in rounds, and report
ratios: the machines are shared and noisy, so a bare time means little.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# the CLI's progress bars (stderr, only on a terminal), for the benchmarks' main loops
from boundgate.cli.progress import track as track

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def side_venv(name: str, packages: Sequence[str]) -> Path:
    """A virtualenv under bench/ holding a competitor (LiteLLM, GPTCache) apart from ours,
    created and filled on first use; returns its bin/ directory."""
    venv = Path(__file__).resolve().parent / f".venv-{name}"
    marker = venv / ".installed"
    if not marker.exists():
        print(f"installing {' '.join(packages)} into bench/.venv-{name} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *packages], check=True)
        marker.touch()
    return venv / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A server subprocess, killed (with its process group) on exit."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.proc = subprocess.Popen(
            self.args,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def wait_http(self, url: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"{self.args[0]} exited: {err[-2000:]}")
            try:
                if httpx.get(url, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{url} not ready after {timeout}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@dataclass
class LoadResult:
    latencies_s: list[float]
    wall_s: float
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies_s) / self.wall_s if self.wall_s else 0.0

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies_s)
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, int(q * len(xs)))]


async def run_load(
    url: str, body: dict[str, object], concurrency: int, requests: int, headers: dict[str, str]
) -> LoadResult:
    """Closed-loop load: ``concurrency`` workers send ``requests`` in total."""
    latencies: list[float] = []
    errors = 0
    remaining = requests
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, json=body, headers=headers)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - t0
    return LoadResult(latencies, wall, errors)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stats() -> list[tuple[int, int, int, float]]:
    """(pid, parent, process group, CPU seconds used) of every process (Linux ``/proc``)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid, pgrp = int(fields[1]), int(fields[2])
        out.append((int(d), ppid, pgrp, (int(fields[11]) + int(fields[12])) / _TICK))
    return out


def cpu_seconds(group: int | None = None, tree: int | None = None) -> float:
    """CPU seconds used so far by the live processes of process group ``group`` (a
    ``Proc``: its workers), or by process ``tree`` and its children (a PostgreSQL server's
    postmaster and its backends). Processes that exited meanwhile are not counted: take
    both readings while the processes run."""
    stats = _proc_stats()
    if group is not None:
        return sum(cpu for _, _, g, cpu in stats if g == group)
    assert tree is not None
    return sum(cpu for pid, ppid, _, cpu in stats if tree in (pid, ppid))


def machine_busy_s() -> tuple[float, float]:
    """(busy CPU seconds, all CPU seconds) of the whole machine so far, all cores
    (``/proc/stat``; idle and iowait count as not busy)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / _TICK, sum(ticks) / _TICK


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _serve(
    stack: contextlib.ExitStack, tmp: str, config: str, seed: int | None, timeout_s: float
) -> tuple[httpx.Client, Any]:
    """Write ``config`` below a ``[server]`` section of its own data dir in ``tmp``, build the
    app, seed its verifier's draws, serve it on a real port (stopped by ``stack``)."""
    from boundgate.assembly import build_app
    from boundgate.settings import load_settings
    from boundgate.testing import ThreadedServer

    cfg = Path(tmp) / "b.toml"
    cfg.write_text(
        f"""
[server]
data_dir = "{Path(tmp) / "data"}"
log_level = "warning"
{config}
"""
    )
    app = build_app(load_settings(cfg))
    if seed is not None:
        app.state.gateway.reuse.verifier.seed(seed)
    srv = stack.enter_context(ThreadedServer(app))
    _servers[app] = srv
    return stack.enter_context(httpx.Client(base_url=srv.base_url, timeout=timeout_s)), app


_servers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def settled(app: Any) -> None:
    """Wait until what the requests ``app`` answered so far left running has landed (its
    ledger rows, budgets and labels: ``Gateway.settled``), on its server's loop. After each
    request, this makes a run's verifier learn in request order, so a seeded run repeats
    its figures; otherwise a label lands whenever its background task gets there."""
    _servers[app].call(app.state.gateway.settled)


@contextlib.contextmanager
def gateway_over_fake_upstream(
    meanings: dict[str, str],
    extra_toml: str = "",
    seed: int | None = None,
    model_toml: str = "",
) -> Iterator[tuple[httpx.Client, Any]]:
    """boundgate (in-process, real HTTP, its own temp data dir) in front of the in-package fake
    upstream, which answers questions of the same meaning alike. Yields (client, app).
    ``seed``: seeds the verifier's draws (which would-be hits are verified), so that two runs
    of one stream differ only by what else differs (a pair model, a setting). ``model_toml``:
    more settings of the upstream's model entry (``models.upstream-8b``)."""
    from boundgate.backends.fake import FakeUpstreamServer

    # the server stops (ExitStack) before its data dir is removed
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        upstream = stack.enter_context(FakeUpstreamServer())
        upstream.control.meanings = meanings
        config = f"""{extra_toml}
[models.upstream-8b]
backend = "openai"
base_url = "{upstream.url}"
upstream_model = "fake"
params_b = 8
default = true
{model_toml}
"""
        yield _serve(stack, tmp, config, seed, 60)


@contextlib.contextmanager
def gateway_over_local_model(
    extra_toml: str = "", seed: int | None = None
) -> Iterator[tuple[httpx.Client, Any]]:
    """boundgate (in-process, real HTTP, its own temp data dir) with the embedded default
    configuration ``make serve`` runs: the packaged local model (llama.cpp) writes every
    answer. Yields (client, app); ``seed`` as for ``gateway_over_fake_upstream``."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        yield _serve(stack, tmp, extra_toml, seed, 300)
