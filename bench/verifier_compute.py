"""The verifier's threshold computation (``Verifier._compute``): its cost per call.

Every semantic lookup whose best candidate scores at or above the threshold in force makes
the verifier recompute the threshold (``note_lookup``), on the request path. The cost grows
with the lookup windows (up to 5,000 recent lookups), the labels and the prior. This bench
fills a verifier to a state (lookups, labels; scores drawn at random, seeded), then times 50
recomputations, for the scorers as the gateway builds them: the pair model with its shipped
prior (and the cosine as the alternative scorer, the default), and the plain cosine.

With ``--baseline-src DIR`` the same measurement runs, alternated in rounds, on another
checkout's ``src/`` (e.g. a ``git worktree`` of an earlier commit) and the ratio is printed.

    PYTHONPATH=src python bench/verifier_compute.py [--baseline-src /tmp/base/src]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

STATES = ((200, 20), (6000, 300), (6000, 3000))  # (lookups, labels)
KINDS = ("pair", "pair+cosine", "cosine")


def measure() -> dict[str, float]:
    """Median ms per ``_compute`` for each state and scorer (run inside one source tree)."""
    import random
    import time

    import numpy as np

    from boundgate.reuse.pair import packaged_model_dir
    from boundgate.reuse.prior import Prior
    from boundgate.reuse.scoring import CosineScorer, PairModelScorer
    from boundgate.reuse.verifier import Observation, Verifier
    from boundgate.settings import ReuseSettings

    prior = Prior.load(packaged_model_dir() / "calibration.json", "pair")
    out = {}
    for lookups, labels in STATES:
        for kind in KINDS:
            rng = np.random.default_rng(0)
            s = ReuseSettings()
            if kind == "cosine":
                v = Verifier(s, rng=random.Random(0))
            else:
                alt = CosineScorer() if kind == "pair+cosine" else None
                v = Verifier(s, scorer=PairModelScorer(), prior=prior, alternative=alt)
            for i in range(labels):
                c, p = float(rng.uniform(0.5, 1)), float(rng.uniform(0, 1))
                ok = bool(rng.random() < 0.97)
                v.add(Observation(c, ok, "observe", i, pair=p), recompute=False)
            for _ in range(lookups):
                v.note_lookup(float(rng.uniform(0.5, 1)), pair=float(rng.uniform(0, 1)))
            times = []
            for _ in range(50):
                t = time.perf_counter()
                v._compute()
                times.append(time.perf_counter() - t)
            out[f"{lookups} lookups, {labels} labels, {kind}"] = statistics.median(times) * 1000
    return out


def run_in(src: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(src))
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
    code += "import json, verifier_compute as v; print(json.dumps(v.measure()))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--baseline-src", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    here = Path(__file__).resolve().parent.parent / "src"
    trees = {"current": here}
    if args.baseline_src:
        trees["baseline"] = args.baseline_src.resolve()
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
    for _ in range(args.rounds):
        for name, src in trees.items():
            runs[name].append(run_in(src))
    print("## Verifier._compute, median ms per call (median of rounds)\n")
    head = "| state, scorer | " + " | ".join(trees)
    print(head + (" | current / baseline |" if args.baseline_src else " |"))
    print("|---|" + "---:|" * (len(trees) + (1 if args.baseline_src else 0)))
    for key in runs["current"][0]:
        med = {k: statistics.median(r[key] for r in runs[k]) for k in trees}
        row = f"| {key} | " + " | ".join(f"{med[k]:.3f}" for k in trees)
        if args.baseline_src:
            row += f" | {med['current'] / med['baseline']:.2f}"
        print(row + " |")


if __name__ == "__main__":
    main()
