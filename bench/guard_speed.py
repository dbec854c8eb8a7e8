"""The guards' time per compared pair, this checkout beside another, alternated in one run.

A semantic lookup runs the guards (``guards.compare``) on each candidate above the floor
before the pair model reads it; the stored question's features are cached from earlier
lookups, the asked question's are new. This times ``compare(asked, stored)`` over Quora
pairs in that state, in a fresh process per round for each tree (``--against DIR``: another
checkout's ``src``, e.g. a ``git worktree`` of the session's start), rounds alternated so
that a busy machine slows both alike, and prints each round's p50 and the ratio.

    PYTHONPATH=src python bench/guard_speed.py --pairs ../shared/data/cache/quora_val.csv \
        [--against /tmp/base/src] [--rounds 3] [--limit 4000]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def measure(pairs_path: Path, limit: int) -> dict[str, float]:
    """In this process: p50 and mean ms of ``compare`` over ``limit`` pairs, each stored
    side compared once before (its features cached, as a stored question's are)."""
    from boundgate.reuse.guards import compare

    with pairs_path.open(newline="") as fh:
        pairs = [(r["question2"], r["question1"]) for r in csv.DictReader(fh)][:limit]
    for _, stored in pairs:
        compare("x " + stored, stored)
    times = []
    for asked, stored in pairs:
        t = time.perf_counter()
        compare(asked, stored)
        times.append(time.perf_counter() - t)
    return {"p50_ms": statistics.median(times) * 1000, "mean_ms": statistics.mean(times) * 1000}


def run(src: Path, pairs_path: Path, limit: int) -> dict[str, float]:
    """``measure`` in a fresh interpreter importing boundgate from ``src``."""
    out = subprocess.run(
        [sys.executable, __file__, "--pairs", str(pairs_path), "--limit", str(limit), "--child"],
        env={"PYTHONPATH": str(src), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=Path, required=True)
    ap.add_argument("--against", type=Path, help="another checkout's src directory")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--limit", type=int, default=4000)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.pairs, args.limit)))
        return
    trees = [("this checkout", SRC)] + ([("against", args.against)] if args.against else [])
    print(f"guards.compare over {args.limit} pairs of {args.pairs.name}, fresh process each\n")
    print("| round | " + " | ".join(f"{n} p50 ms (mean)" for n, _ in trees) + " | ratio |")
    print("|---:|" + "---:|" * len(trees) + "---:|")
    ratios = []
    for i in range(args.rounds):
        got = [run(src, args.pairs, args.limit) for _, src in trees]
        cells = " | ".join(f"{g['p50_ms']:.3f} ({g['mean_ms']:.3f})" for g in got)
        ratio = got[0]["p50_ms"] / got[1]["p50_ms"] if len(got) > 1 else float("nan")
        ratios.append(ratio)
        print(f"| {i + 1} | {cells} | {ratio:.2f} |", flush=True)
    if args.against:
        print(f"\nthis checkout / against, p50, median of rounds: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
