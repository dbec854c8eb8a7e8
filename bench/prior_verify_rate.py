"""What sampled verification buys while the prior alone vouches: wrong answers on hostile traffic.

``reuse.prior_verify_rate`` is the share of would-be semantic hits recomputed (not served)
while the pair model's offline calibration, not the gateway's own labels, vouches for the
threshold in force. A lower rate serves more paraphrases on traffic like the calibration's
(`bench/reuse_quality.py --prior-verify-rate R` measures that end to end); this benchmark
measures the other side: traffic *unlike* the calibration, where the calibration is wrong.

The verifier alone (no HTTP, no model), fresh per run, with the shipped calibration as its
prior: ``--novel`` lookups that find nothing (a fresh gateway filling up), then ``--lookups``
lookups of which a share ``--hostile`` has a candidate that is *wrong* but scores like the
calibration's highest-scoring non-duplicates (pair score ≥ ``--hostile-min``, default 0.5,
drawn from them), the rest novel; ``--hostile-min 0.95`` makes look-alikes that score like
paraphrases. With ``--wrong-share W`` only that share of the candidates is wrong, the rest
right (scores drawn from the calibration's duplicates ≥ ``--hostile-min``): traffic on which
the prior underrates how often a hit is wrong, and the share of right candidates served is
reported beside. Every recomputed candidate (sampled or below the threshold) is labelled as
it is, as the gateway's answer comparison would label it. ``--tightened-rights`` sets
``reuse.tightened_rights`` (0: sampling at its rate throughout). Reported per rate: wrong
answers served over all lookups of the stream, per seed and at most, side by side in one run.
``--labels-off`` adds a column for a model whose answers do not label
(``models.<name>.answer_labels``: nothing verified or observed, the prior alone decides).

    python bench/prior_verify_rate.py [--rates 0.2 0.1 0.05] [--seeds 6] [--hostile 1.0 0.3 0.1]
        [--hostile-min 0.5] [--wrong-share 1.0] [--tightened-rights 5] [--labels-off]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from boundgate.reuse.pair import packaged_model_dir
from boundgate.reuse.prior import Prior
from boundgate.reuse.scoring import PairModelScorer
from boundgate.reuse.verifier import Observation, Verdict, Verifier
from boundgate.settings import ReuseSettings


def run(
    prior: Prior,
    rate: float,
    hostile: float,
    seed: int,
    novel: int,
    lookups: int,
    hostile_min: float = 0.5,
    wrong_share: float = 1.0,
    tightened_rights: int = 5,
    labels: bool = True,
) -> tuple[int, int, int]:
    """One stream: (wrong answers served, right ones served, right candidates). ``labels``
    False: the model's answers do not label (``Verifier.decide``), nothing is observed."""
    v = Verifier(
        ReuseSettings(prior_verify_rate=rate, tightened_rights=tightened_rights),
        scorer=PairModelScorer(),
        prior=prior,
        rng=random.Random(seed),
    )
    rng = random.Random(1000 + seed)
    high = [s for s in prior.non_duplicates if s >= hostile_min]
    right = [s for s in prior.duplicates if s >= hostile_min]
    for _ in range(novel):
        v.note_lookup(None)
    served = served_right = rights = 0
    for i in range(lookups):
        if rng.random() >= hostile:
            v.note_lookup(None)
            continue
        correct = rng.random() >= wrong_share
        score = rng.choice(right if correct else high)
        rights += correct
        v.note_lookup(0.9, pair=score)
        verdict = v.decide(i, 0.9, pair=score, labels=labels)
        if verdict is Verdict.SERVE:
            served_right += correct
            served += not correct
        elif verdict in (Verdict.VERIFY, Verdict.OBSERVE):
            v.add(Observation(0.9, correct, verdict.value, i, pair=score))
    return served, served_right, rights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.2, 0.1, 0.05])
    ap.add_argument("--hostile", type=float, nargs="+", default=[1.0, 0.3, 0.1])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--novel", type=int, default=300)
    ap.add_argument("--lookups", type=int, default=2000)
    ap.add_argument("--hostile-min", type=float, default=0.5)
    ap.add_argument("--wrong-share", type=float, default=1.0)
    ap.add_argument("--tightened-rights", type=int, default=5)
    ap.add_argument(
        "--labels-off", action="store_true", help="add a column: the answers do not label"
    )
    args = ap.parse_args()
    prior = Prior.load(packaged_model_dir() / "calibration.json", "shipped pair model")
    print(
        f"# Wrong answers served per {args.lookups} lookups (after {args.novel} novel ones; "
        f"hostile candidates score >= {args.hostile_min})\n"
    )
    columns: list[tuple[float, bool]] = [(r, True) for r in args.rates]
    if args.labels_off:
        columns.append((0.0, False))
    names = [f"rate {r}" if on else "answer labels off" for r, on in columns]
    print("| hostile share | " + " | ".join(names) + " |")
    print("|---:|" + "---|" * len(columns))
    for hostile in args.hostile:
        cells = []
        for rate, on in columns:
            runs = [
                run(
                    prior,
                    rate,
                    hostile,
                    seed,
                    args.novel,
                    args.lookups,
                    args.hostile_min,
                    args.wrong_share,
                    args.tightened_rights,
                    on,
                )
                for seed in range(args.seeds)
            ]
            wrong = [r[0] for r in runs]
            share = max(wrong) / args.lookups
            cell = f"{' '.join(map(str, wrong))} (max {share:.2%})"
            if args.wrong_share < 1:
                served = sum(r[1] for r in runs) / max(sum(r[2] for r in runs), 1)
                cell += f"; right ones served {served:.1%}"
            cells.append(cell)
        print(f"| {hostile} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
