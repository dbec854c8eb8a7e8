"""onnxruntime's spinning workers: the semantic lookup's two models with and without them.

A semantic lookup runs the embedder on the question, then the pair model on the guard
survivors (``reuse/engine.py``), each in its own onnxruntime session. By default a session's
intra-op workers spin-wait after every run; on a small machine the embedder's spinning workers
then hold the cores the pair model needs. boundgate builds its sessions with
``session.intra_op.allow_spinning = 0`` (``reuse.embedder.cpu_session``). This bench builds
both variants of both sessions in one process and alternates them in rounds, so machine noise
falls on both alike, and prints medians and the ratio:

- lookup: embed one question, then score one (asked, stored) pair in both orders, as a
  semantic lookup with one survivor does;
- batch: embed 64 questions at once (document binding, offline scoring), where spinning
  could help.

    PYTHONPATH=src python bench/onnx_spinning.py --pairs ../shared/data/cache/quora_val.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort

from boundgate.reuse.embedder import OnnxEmbedder
from boundgate.reuse.pair import OnnxPairScorer


def spinning_session(model_path: str, threads: int) -> Any:
    """onnxruntime's default: workers spin between runs."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model_path, sess_options=opts, providers=["CPUExecutionProvider"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1))
    args = ap.parse_args()
    with args.pairs.open(newline="") as fh:
        rows = [(r["question2"], r["question1"]) for r in csv.DictReader(fh)]
    rows = rows[: args.questions]

    variants: dict[str, tuple[OnnxEmbedder, OnnxPairScorer]] = {}
    for name in ("spinning (onnxruntime default)", "sleeping (boundgate)"):
        embedder = OnnxEmbedder(threads=args.threads)
        scorer = OnnxPairScorer(threads=args.threads)
        if name.startswith("spinning"):  # the constructors built cpu_session's: replace
            embedder.session = spinning_session(embedder.session._model_path, args.threads)
            scorer.sessions = [
                spinning_session(s._model_path, args.threads) for s in scorer.sessions
            ]
        variants[name] = (embedder, scorer)

    lookup: dict[str, list[float]] = {k: [] for k in variants}
    batch: dict[str, list[float]] = {k: [] for k in variants}
    questions = [q for q, _ in rows]
    for _ in range(args.rounds):
        for name, (embedder, scorer) in variants.items():
            for q, stored in rows[:10]:  # warm up after the other variant ran
                embedder.embed([q])
                scorer.score_pairs([(q, stored)])
            for q, stored in rows:
                t = time.perf_counter()
                embedder.embed([q])
                scorer.score_pairs([(q, stored)])
                lookup[name].append(time.perf_counter() - t)
            for start in range(0, len(questions) - 63, 64):
                t = time.perf_counter()
                embedder.embed(questions[start : start + 64])
                batch[name].append(time.perf_counter() - t)

    print(f"## onnxruntime workers spinning or sleeping ({args.threads} intra-op threads)\n")
    print("| variant | lookup p50 ms (embed 1 + pair 1, both orders) | batch of 64 p50 ms |")
    print("|---|---:|---:|")
    med = {}
    for name in variants:
        med[name] = (statistics.median(lookup[name]), statistics.median(batch[name]))
        print(f"| {name} | {med[name][0] * 1000:.2f} | {med[name][1] * 1000:.1f} |")
    (spin_l, spin_b), (sleep_l, sleep_b) = med.values()
    print(f"\nsleeping / spinning: lookup {sleep_l / spin_l:.2f}, batch {sleep_b / spin_b:.2f}")
    print(f"(load average at the end: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
