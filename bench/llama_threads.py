"""llama.cpp threads for the local model: tokens/s of the packaged SmolLM2 at each thread
count, idle and beside other work, side by side in one run.

One ``Llama`` per thread count in this process (same gguf, greedy decoding, same prompt);
rounds interleave the counts (1, 2, …, 1, 2, …) so a change in the machine's load hits each
alike. ``--busy N`` runs N busy-looping processes during the second half of the rounds (a
shared host: other tenants, the embedder, a database); each half is reported on its own.
Tokens/s counts completion tokens over the wall time of the call (prompt evaluation
included). Prints median tokens/s per count and each count's ratio to one thread's.

    python bench/llama_threads.py [--threads 1 2] [--rounds 6] [--max-tokens 48] [--busy 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

from _harness import median
from boundgate.backends.llama_cpp import packaged_model_path

PROMPT = "Explain in two sentences why the sky is blue."


def spin() -> None:  # a busy neighbour
    while True:
        pass


def one_round(llm: object, max_tokens: int) -> float:
    t0 = time.perf_counter()
    out = llm.create_completion(  # type: ignore[attr-defined]
        PROMPT, max_tokens=max_tokens, temperature=0
    )
    return int(out["usage"]["completion_tokens"]) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    ap.add_argument("--rounds", type=int, default=6, help="rounds per half")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--busy", type=int, default=2, help="busy processes in the second half")
    a = ap.parse_args()
    from llama_cpp import Llama

    path = str(packaged_model_path())
    llms = {
        n: Llama(model_path=path, n_ctx=512, n_threads=n, n_threads_batch=n, verbose=False)
        for n in a.threads
    }
    for llm in llms.values():
        one_round(llm, 8)  # warm-up
    print(f"cores: {os.cpu_count()}, model: {os.path.basename(path)}, {a.max_tokens} tokens\n")
    print("| load | threads | tokens/s p50 | ratio to 1 thread |")
    print("|---|---:|---:|---:|")
    for busy in (0, a.busy):
        procs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(busy)]
        for p in procs:
            p.start()
        try:
            rates: dict[int, list[float]] = {n: [] for n in llms}
            for _ in range(a.rounds):
                for n, llm in llms.items():
                    rates[n].append(one_round(llm, a.max_tokens))
        finally:
            for p in procs:
                p.terminate()
        base = median(rates[a.threads[0]])
        for n in llms:
            load = "idle" if busy == 0 else f"{busy} busy processes"
            print(f"| {load} | {n} | {median(rates[n]):.1f} | {median(rates[n]) / base:.2f} |")


if __name__ == "__main__":
    main()
