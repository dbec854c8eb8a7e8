"""Local generation speed: through the gateway vs llama-cpp-python called directly.

Same model (the packaged SmolLM2-135M-Instruct Q4_1), same prompt, same greedy decoding and
max_tokens. The direct runs use a ``Llama`` in this process; the gateway runs go over HTTP
to a `boundgate serve` subprocess (streamed /v1/completions, usage in the final chunk). The
two never generate at the same time: rounds alternate A, B, A, B, ... and the report gives
median tokens/s of each and their ratio (goal: the gateway at most 5 % slower).

Tokens/s counts completion tokens over the wall time of the whole request (prompt
evaluation included) on both sides.

    python bench/local_generation.py [--rounds 7] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import httpx

from _harness import PY, Proc, free_port, median, track

PROMPT = "Once upon a time, in a small village by the sea, there lived an old lighthouse keeper who"


def direct_round(llm: object, max_tokens: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    for part in llm.create_completion(  # type: ignore[attr-defined]
        PROMPT, max_tokens=max_tokens, temperature=0, stream=True
    ):
        if part["choices"][0].get("text"):
            n += 1
    return n, time.perf_counter() - t0


def gateway_round(client: httpx.Client, max_tokens: int) -> tuple[int, float]:
    body = {
        "prompt": PROMPT,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    n = 0
    # no-store: measure generation, not answer reuse (the same prompt would be a stored hit)
    headers = {"Cache-Control": "no-store"}
    with client.stream("POST", "/v1/completions", json=body, headers=headers) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data: {"):
                usage = json.loads(line[6:]).get("usage")
                if usage:
                    n = usage["completion_tokens"]
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()

    from llama_cpp import Llama

    from boundgate.backends.llama_cpp import packaged_model_path

    llm = Llama(
        model_path=str(packaged_model_path()),
        n_ctx=2048,
        n_threads=os.cpu_count() or 1,
        n_threads_batch=os.cpu_count() or 1,
        verbose=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        cfg = Path(tmp) / "b.toml"
        cfg.write_text(f'[server]\ndata_dir = "{Path(tmp) / "data"}"\nlog_level = "warning"\n')
        server = Proc([PY, "-m", "boundgate", "serve", "--config", str(cfg), "--port", str(port)])
        try:
            server.wait_http(f"http://127.0.0.1:{port}/readyz")
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
                direct_round(llm, 8)  # warm-up both
                gateway_round(client, 8)
                d_rates, g_rates, d_tok, g_tok = [], [], [], []
                for _ in track(range(args.rounds), "rounds (direct, gateway)"):
                    n, s = direct_round(llm, args.max_tokens)
                    d_rates.append(n / s)
                    d_tok.append(n)
                    n, s = gateway_round(client, args.max_tokens)
                    g_rates.append(n / s)
                    g_tok.append(n)
        finally:
            server.stop()

    d, g = median(d_rates), median(g_rates)
    print(f"\n# Local generation (rounds={args.rounds}, max_tokens={args.max_tokens})\n")
    print("| path | median tokens/s | tokens per run | per-round tokens/s |")
    print("|---|---:|---:|---|")
    print(
        f"| llama-cpp-python direct | {d:.1f} | {median(d_tok):.0f} | "
        + ", ".join(f"{x:.1f}" for x in d_rates)
        + " |"
    )
    print(
        f"| through boundgate (HTTP, SSE) | {g:.1f} | {median(g_tok):.0f} | "
        + ", ".join(f"{x:.1f}" for x in g_rates)
        + " |"
    )
    print(f"\ngateway / direct = {g / d:.3f} (slowdown {100 * (1 - g / d):.1f} %; goal ≤ 5 %)")


if __name__ == "__main__":
    main()
