"""Gateway overhead: boundgate vs the LiteLLM proxy, both in front of a zero-latency upstream.

Targets, all on loopback:
  direct     the in-package fake OpenAI-compatible upstream (boundgate.backends.fake)
  boundgate  `boundgate serve` with that upstream as its only model (energy + ledger on)
  litellm    `litellm --config` proxy with the same upstream (installed by this script into
             bench/.venv-litellm; caching off)

For each concurrency level (1, 8, 32) the targets run in interleaved rounds (direct,
boundgate, litellm, direct, ...) so drift on the shared machine hits all of them alike. Added
latency = target p50/p99 − direct p50/p99 of the same round; reported as medians over rounds,
with the ratios the issue sets goals for: boundgate added p50 / LiteLLM added p50 (≤ 1/3) and
boundgate RPS / LiteLLM RPS (≥ 2). The load generator shares the machine's cores with the
servers, which compresses every ratio towards 1.

    python bench/overhead.py [--requests 400] [--rounds 3] [--skip-litellm]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from _harness import PY, LoadResult, Proc, free_port, median, run_load, side_venv, track

BODY = {
    "model": "fake-up",
    "messages": [{"role": "user", "content": "How do I reset my password?"}],
    "max_tokens": 16,
}


def ensure_litellm() -> Path:
    return side_venv("litellm", ["litellm[proxy]"]) / "litellm"


def start_targets(tmp: Path, with_litellm: bool) -> tuple[dict[str, str], list[Proc]]:
    procs: list[Proc] = []
    up_port, bg_port = free_port(), free_port()
    up = Proc([PY, "-m", "boundgate.backends.fake", "--port", str(up_port)])
    procs.append(up)
    up.wait_http(f"http://127.0.0.1:{up_port}/v1/models")
    cfg = tmp / "boundgate.toml"
    cfg.write_text(
        f"""
[server]
data_dir = "{tmp / "data"}"
log_level = "warning"

[reuse]
enabled = false   # caching off on both sides: this measures the gateway path itself

[models.fake-up]
backend = "openai"
base_url = "http://127.0.0.1:{up_port}/v1"
upstream_model = "fake"
default = true
"""
    )
    bg = Proc([PY, "-m", "boundgate", "serve", "--config", str(cfg), "--port", str(bg_port)])
    procs.append(bg)
    bg.wait_http(f"http://127.0.0.1:{bg_port}/readyz")
    urls = {
        "direct": f"http://127.0.0.1:{up_port}/v1/chat/completions",
        "boundgate": f"http://127.0.0.1:{bg_port}/v1/chat/completions",
    }
    if with_litellm:
        ll_port = free_port()
        ll_cfg = tmp / "litellm.yaml"
        ll_cfg.write_text(
            f"""
model_list:
  - model_name: fake-up
    litellm_params:
      model: openai/fake
      api_base: http://127.0.0.1:{up_port}/v1
      api_key: sk-fake
litellm_settings:
  cache: false
  telemetry: false
  set_verbose: false
"""
        )
        env = {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY": "False",
            "LITELLM_LOG": "ERROR",
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
        }
        ll = Proc([str(ensure_litellm()), "--config", str(ll_cfg), "--port", str(ll_port)], env=env)
        procs.append(ll)
        ll.wait_http(f"http://127.0.0.1:{ll_port}/health/liveliness", timeout=300)
        urls["litellm"] = f"http://127.0.0.1:{ll_port}/v1/chat/completions"
    return urls, procs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=400, help="requests per target per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--skip-litellm", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        urls, procs = start_targets(Path(tmp), not args.skip_litellm)
        try:
            headers = {"Authorization": "Bearer sk-fake"}
            for url in urls.values():  # warm-up: imports, connection pools, JIT-less caches
                asyncio.run(run_load(url, BODY, 4, 100, headers))
            rows = []
            for conc in args.concurrency:
                results: dict[str, list[LoadResult]] = {name: [] for name in urls}
                for _ in track(range(args.rounds), f"rounds at concurrency {conc}"):
                    for name, url in urls.items():
                        results[name].append(
                            asyncio.run(run_load(url, BODY, conc, args.requests, headers))
                        )
                rows.append((conc, results))
        finally:
            for p in reversed(procs):
                p.stop()

    print(
        f"\n# Gateway overhead (requests/round={args.requests}, rounds={args.rounds}, "
        f"cpus={os.cpu_count()})\n"
    )
    print("| conc | target | p50 ms | p99 ms | added p50 ms | added p99 ms | RPS | errors |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    summary = []
    for conc, results in rows:
        direct = results["direct"]
        added: dict[str, tuple[float, float, float]] = {}
        for name, runs in results.items():
            p50 = median([r.pct(0.5) for r in runs]) * 1000
            p99 = median([r.pct(0.99) for r in runs]) * 1000
            a50 = median([r.pct(0.5) - d.pct(0.5) for r, d in zip(runs, direct, strict=True)])
            a99 = median([r.pct(0.99) - d.pct(0.99) for r, d in zip(runs, direct, strict=True)])
            rps = median([r.rps for r in runs])
            errs = sum(r.errors for r in runs)
            added[name] = (a50 * 1000, a99 * 1000, rps)
            print(
                f"| {conc} | {name} | {p50:.2f} | {p99:.2f} | {a50 * 1000:.2f} | "
                f"{a99 * 1000:.2f} | {rps:.0f} | {errs} |"
            )
        if "litellm" in added:
            b, l_ = added["boundgate"], added["litellm"]
            summary.append((conc, b[0] / l_[0], b[1] / l_[1], b[2] / l_[2]))
    if summary:
        print(
            "\n| conc | added p50 boundgate/LiteLLM | added p99 boundgate/LiteLLM | "
            "RPS boundgate/LiteLLM |"
        )
        print("|---:|---:|---:|---:|")
        for conc, r50, r99, rrps in summary:
            print(f"| {conc} | {r50:.3f} | {r99:.3f} | {rrps:.2f} |")
        print("\ngoals: added p50 ratio ≤ 0.333, RPS ratio ≥ 2")


if __name__ == "__main__":
    main()
