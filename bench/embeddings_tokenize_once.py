"""``/v1/embeddings``' work on the embedder: tokenized twice (counted, then embedded) or once.

The gateway counts a request's tokens before it admits it (the daily budget holds what the
request is charged), then embeds the texts. It tokenized them for each step
(``count_tokens``, then ``embed``); ``Embedder.tokenize`` and ``embed_tokenized`` read them
once. This bench runs both ways on one ``OnnxEmbedder`` in alternating rounds, so machine
noise falls on both alike, for a request of one short text, of 32 short texts and of 32
texts the model cuts at its 128 tokens, and prints the median time of each and their ratio.

    PYTHONPATH=src python bench/embeddings_tokenize_once.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from boundgate.reuse.embedder import OnnxEmbedder


def twice(embedder: OnnxEmbedder, texts: list[str]) -> None:
    embedder.count_tokens(texts)
    embedder.embed(texts)


def once(embedder: OnnxEmbedder, texts: list[str]) -> None:
    tokenized = embedder.tokenize(texts)
    embedder.embed_tokenized(tokenized)


def timed_ms(
    work: Callable[[OnnxEmbedder, list[str]], None], e: OnnxEmbedder, t: list[str]
) -> float:
    start = time.perf_counter()
    work(e, t)
    return (time.perf_counter() - start) * 1000.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    embedder = OnnxEmbedder(threads=args.threads)
    sentence = "How far is the moon from the earth at its closest point in its orbit?"
    requests = {
        "1 short text": [sentence],
        "32 short texts": [f"{sentence} ({i})" for i in range(32)],
        "32 texts cut at 128 tokens": [(sentence + " ") * 12 + str(i) for i in range(32)],
    }
    print(f"{'request':28} {'twice ms':>10} {'once ms':>10} {'once/twice':>11}")
    for name, texts in requests.items():
        for work in (twice, once):  # warm up
            work(embedder, texts)
        a: list[float] = []
        b: list[float] = []
        for i in range(args.rounds):
            order = ((twice, a), (once, b)) if i % 2 == 0 else ((once, b), (twice, a))
            for work, out in order:
                out.append(timed_ms(work, embedder, texts))
        ta, tb = statistics.median(a), statistics.median(b)
        print(f"{name:28} {ta:10.2f} {tb:10.2f} {tb / ta:11.3f}")


if __name__ == "__main__":
    main()
