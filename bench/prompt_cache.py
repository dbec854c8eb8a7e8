"""The local model's prompt cache: what reusing a shared prompt saves, and what it changes.

A stream of requests shares a long system prompt (``--system-words``) and asks different
questions, every third one asked again. Three ways to evaluate each prompt, each with its own
``Llama`` on the packaged SmolLM2-135M, in alternating rounds (so a busy machine slows all
three alike):

- **llama.cpp's prefix reuse** (llama-cpp-python's default, ``n_batch`` 512): the longest
  prefix of the last prompt still in the cache is kept and the rest evaluated;
- **every prompt whole** (``Llama.reset()`` before each request);
- **whole blocks** (boundgate's ``LlamaCppBackend``: prompts evaluated in blocks of
  ``PROMPT_BLOCK`` from position 0, only whole blocks of the last prompt taken from the
  cache).

Reported: the median seconds per request of each, their ratio to llama.cpp's prefix reuse,
and how many repeated questions got another answer than their first asking (temperature 0:
a cache that changes answers is what made a stored answer differ from the model's).

    python bench/prompt_cache.py [--requests 12] [--system-words 200] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from boundgate.backends.base import CancelToken, GenerationRequest, Message
from boundgate.backends.llama_cpp import LlamaCppBackend, packaged_model_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=12)
    ap.add_argument("--system-words", type=int, default=200)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from llama_cpp import Llama

    sentence = "You help customers of a hardware store politely."
    system = " ".join([sentence] * (args.system_words // 7))
    questions = [f"Question {i}: do you sell item number {i % 4}?" for i in range(args.requests)]
    asked = [questions[i - 2] if i % 3 == 2 else q for i, q in enumerate(questions)]

    asyncio.run(_main(args, Llama, system, asked))


async def _main(args: argparse.Namespace, llama: Any, system: str, asked: list[str]) -> None:
    """The rounds, on one event loop (the backend's lock and worker belong to it)."""
    backend = LlamaCppBackend("m", n_ctx=2048, n_threads=args.threads, queue_size=4)
    await backend.start()

    def request(q: str) -> GenerationRequest:
        return GenerationRequest(
            model="m",
            messages=[Message("system", system), Message("user", q)],
            max_tokens=args.max_tokens,
            temperature=0.0,
        )

    def raw(reset: bool) -> Any:
        llm = llama(
            model_path=str(packaged_model_path()),
            n_ctx=2048,
            n_threads=args.threads,
            n_threads_batch=args.threads,
            verbose=False,
        )

        def run(q: str) -> str:
            tokens = backend._prompt_tokens(request(q))[0]
            if reset:
                llm.reset()
            out = llm.create_completion(tokens, max_tokens=args.max_tokens, temperature=0.0)
            return str(out["choices"][0]["text"])

        return run

    async def blocks(q: str) -> str:
        return (await backend.complete(request(q), CancelToken())).text

    ways = {"llama.cpp's prefix reuse": raw(False), "every prompt whole": raw(True)}
    names = [*ways, "whole blocks (boundgate)"]
    times: dict[str, list[float]] = {k: [] for k in names}
    answers: dict[str, dict[str, list[str]]] = {k: {} for k in names}
    for q in asked:
        for name in names:
            start = time.perf_counter()
            text = await blocks(q) if name not in ways else ways[name](q)
            times[name].append(time.perf_counter() - start)
            answers[name].setdefault(q, []).append(text)
    prompt_tokens = len(backend._prompt_tokens(request(asked[0]))[0])
    print(
        f"# Prompt cache ({args.requests} requests, a {prompt_tokens}-token prompt, "
        f"max_tokens {args.max_tokens}, {args.threads} threads)\n"
    )
    print("| way | median s per request | / prefix reuse | repeats answered otherwise |")
    print("|---|---:|---:|---:|")
    base = median(times["llama.cpp's prefix reuse"])
    for name in names:
        changed = sum(len(set(a)) > 1 for a in answers[name].values() if len(a) > 1)
        repeated = sum(len(a) > 1 for a in answers[name].values())
        m = median(times[name])
        print(f"| {name} | {m:.3f} | {m / base:.2f} | {changed} of {repeated} |")


if __name__ == "__main__":
    main()
