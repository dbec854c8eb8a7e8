"""Calibrate the log-probability escalation trigger (issue #15) for the packaged SmolLM2.

``model: "auto"`` sends an answer of a local rung to the next rung when its mean token
log-probability is below the rung's threshold (``routing/ladder.py``, trigger ``logprob``).
This script fits that threshold for a model on a *calibration split* of prompts with known
answers, disjoint from ``bench/routing.py``'s evaluation items (checked below):

- 25 sums ("What is a plus b?", a, b in 2–49) and 25 products ("What is a times b?", a, b in
  13–99), drawn with seed 1501, any prompt the benchmark also asks skipped;
- 30 unit conversions ("How many minutes are in 7 hours?") over nine unit pairs, seed 1501,
  benchmark prompts skipped;
- 73 capitals from ``training/data/logprob_capitals.tsv`` (hand-written, CC0; no country of
  ``bench/data/routing_facts.tsv``).

Each prompt goes to the model as the gateway sends a rung an auto request (the model's chat
template, temperature 0, seed 1, ``max_tokens`` 48, n_ctx 512, one thread) with
``report_logprob``. An answer the other checks already escalate (empty, length, refusal:
``Router.escalation`` without a threshold) is not an observation: the trigger only ever sees
answers those checks keep. Each kept answer is one observation (mean token log-probability
in nats per token, right or wrong), scored as the benchmark scores (the expected number or
capital, accents folded, appears in the answer).

**Rule.** A logistic regression of "wrong" on the mean log-probability m, fitted on the
kept answers (maximum likelihood, Newton's method, numpy): P(wrong | m) = 1 / (1 + exp(-(a +
b·m))). The threshold is the m at which P(wrong | m) = ``--wrong-probability`` (default 0.5):
below it a kept answer is more likely wrong than right, so sending it up spends a larger
rung's energy to save an expected wrong answer (the decision rule when a wrong answer and an
escalation cost the same). If the fit does not slope that way (b ≥ 0: a lower log-probability
not more often wrong), no threshold is written and the trigger stays off for the model. A
bootstrap (1,000 resamples of the kept answers, seed 15) gives the threshold's 90 % interval.
A first rule, the largest t with at least half the answers *below* t wrong, was dropped on
this data before any benchmark run: 52 of the 100 kept answers are wrong, so that share never
falls under a half and the rule escalated every answer.

The result goes to ``src/boundgate/routing/data/logprob_thresholds.json`` under the model's
version (``Backend.version``: file name and SHA-256 prefix), with the rule, the counts and the
date; ``--observations FILE`` also writes one JSON line per prompt.

    PYTHONPATH=src python training/logprob_calibration.py

Several minutes on one core (153 prompts, at most 48 tokens each).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime
import json
import random
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

CAPITALS = HERE / "data" / "logprob_capitals.tsv"
THRESHOLDS = ROOT / "src" / "boundgate" / "routing" / "data" / "logprob_thresholds.json"
SEED = 1501
MAX_TOKENS = 48  # bench/routing.py's limits.default_max_tokens
UNITS = [
    ("centimetres", "metres", 100),
    ("grams", "kilograms", 1000),
    ("minutes", "hours", 60),
    ("metres", "kilometres", 1000),
    ("seconds", "minutes", 60),
    ("millimetres", "centimetres", 10),
    ("millilitres", "litres", 1000),
    ("hours", "days", 24),
    ("days", "weeks", 7),
]


@dataclass(frozen=True)
class Prompt:
    text: str
    kind: str  # arith | convert | fact
    answers: tuple[str, ...]  # any of them makes the answer right


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def right(p: Prompt, text: str) -> bool:
    """The benchmark's scoring (``bench/routing.py`` ``correct``), with alternatives."""
    import re

    if p.kind == "fact":
        return any(_fold(a) in _fold(text) for a in p.answers)
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text.replace(",", ""))
    return any(float(n) == float(p.answers[0]) for n in numbers)


def prompts() -> list[Prompt]:
    """The calibration split (153 prompts), none of which ``bench/routing.py`` asks."""
    from routing import FACTS, workload  # bench/routing.py

    bench = {it.prompt for it in workload()}
    bench_countries = {row.split("\t")[0] for row in FACTS.read_text().splitlines()}
    rng = random.Random(SEED)
    out: list[Prompt] = []

    def add(p: Prompt) -> bool:
        if p.text in bench or any(q.text == p.text for q in out):
            return False
        out.append(p)
        return True

    n = 0
    while n < 25:
        a, b = rng.randint(2, 49), rng.randint(2, 49)
        n += add(Prompt(f"What is {a} plus {b}?", "arith", (str(a + b),)))
    n = 0
    while n < 25:
        a, b = rng.randint(13, 99), rng.randint(13, 99)
        n += add(Prompt(f"What is {a} times {b}?", "arith", (str(a * b),)))
    n = 0
    while n < 30:
        small, big, factor = UNITS[n % len(UNITS)]
        x = rng.randint(2, 40)
        n += add(Prompt(f"How many {small} are in {x} {big}?", "convert", (str(x * factor),)))
    lines = [ln for ln in CAPITALS.read_text().splitlines() if ln and not ln.startswith("#")]
    for row in csv.DictReader(lines, delimiter="\t"):
        assert row["country"] not in bench_countries, row["country"]
        add(
            Prompt(
                f"What is the capital of {row['country']}?",
                "fact",
                tuple(row["capital"].split("|")),
            )
        )
    assert not bench & {p.text for p in out}
    return out


@dataclass(frozen=True)
class Observation:
    prompt: str
    kind: str
    answer: str
    mean_logprob: float | None
    escalated: str | None  # the other checks' reason, if any
    right: bool


async def observe(items: list[Prompt]) -> tuple[str, list[Observation]]:
    from boundgate.backends.base import CancelToken, GenerationRequest, Message
    from boundgate.backends.llama_cpp import LlamaCppBackend
    from boundgate.routing.ladder import Router
    from boundgate.settings import EnergySettings, RoutingSettings

    backend = LlamaCppBackend("smollm2-135m", n_ctx=512, n_threads=1, queue_size=1)
    await backend.start()
    router = Router(
        RoutingSettings(),
        EnergySettings(),
        default_model="smollm2-135m",
        aliases={},
        classifier=None,
    )
    out: list[Observation] = []
    try:
        for i, p in enumerate(items):
            if i % 20 == 0:
                print(f"  {i}/{len(items)}", file=sys.stderr, flush=True)
            req = GenerationRequest(
                model="smollm2-135m",
                messages=[Message("user", p.text)],
                max_tokens=MAX_TOKENS,
                temperature=0.0,
                seed=1,
                report_logprob=True,
            )
            c = await backend.complete(req, CancelToken())
            reason = router.escalation(c, MAX_TOKENS, client_limit=False)
            out.append(Observation(p.text, p.kind, c.text, c.mean_token_logprob, reason,
                                   right(p, c.text)))  # fmt: skip
    finally:
        await backend.aclose()
    return backend.version, out


def fit(kept: list[tuple[float, bool]], wrong_probability: float) -> float | None:
    """The rule of the module docstring: the mean log-probability (nats per token) at which
    the fitted P(wrong) is ``wrong_probability``, or None if the fit does not fall with m.
    ``kept``: (mean log-probability, right)."""
    import numpy as np

    m = np.array([v for v, _ in kept], dtype=np.float64)
    y = np.array([not ok for _, ok in kept], dtype=np.float64)
    x = np.column_stack([np.ones_like(m), m])
    w = np.zeros(2)
    for _ in range(100):  # Newton's method for the logistic log-likelihood
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, x.T @ (y - p))
        w += step
        if np.abs(step).max() < 1e-10:
            break
    a, b = float(w[0]), float(w[1])
    if b >= 0:
        return None
    logit = float(np.log(wrong_probability / (1 - wrong_probability)))
    return (logit - a) / b


def sweep(kept: list[tuple[float, bool]], ts: list[float]) -> list[tuple[float, int, int]]:
    """(t, kept answers below t, wrong ones among them) for each t."""
    return [(t, sum(m < t for m, _ in kept), sum(m < t and not ok for m, ok in kept)) for t in ts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wrong-probability", type=float, default=0.5)
    parser.add_argument("--observations", type=Path, help="write one JSON line per prompt")
    parser.add_argument("--no-write", action="store_true", help="do not update the data file")
    args = parser.parse_args()
    items = prompts()
    t0 = time.monotonic()
    version, obs = asyncio.run(observe(items))
    seconds = time.monotonic() - t0
    if args.observations:
        with args.observations.open("w") as fh:
            for o in obs:
                fh.write(json.dumps(o.__dict__) + "\n")
    kept = [(o.mean_logprob, o.right) for o in obs if o.escalated is None]
    kept_scored = [(m, ok) for m, ok in kept if m is not None]
    threshold = fit(kept_scored, args.wrong_probability)
    rng = random.Random(15)
    boots = [
        fit([rng.choice(kept_scored) for _ in kept_scored], args.wrong_probability)
        for _ in range(1000)
    ]
    ok_boots = sorted(b for b in boots if b is not None)
    interval = (ok_boots[len(ok_boots) // 20], ok_boots[-len(ok_boots) // 20 - 1])

    print(f"model {version}: {len(obs)} prompts in {seconds:.0f} s")
    print("| kind | prompts | escalated by the other checks | kept | kept right |")
    print("|---|---|---|---|---|")
    for kind in ("arith", "convert", "fact"):
        ko = [o for o in obs if o.kind == kind]
        kk = [o for o in ko if o.escalated is None]
        print(f"| {kind} | {len(ko)} | {len(ko) - len(kk)} | {len(kk)} | "
              f"{sum(o.right for o in kk)} |")  # fmt: skip
    n_right = sum(ok for _, ok in kept_scored)
    total_wrong = len(kept_scored) - n_right
    print(f"kept: {len(kept_scored)}, right {n_right}, wrong {total_wrong}")
    print("\n| threshold t (nats/token) | kept answers below t (escalated) | wrong below t "
          "| right answers escalated | wrong answers left |")  # fmt: skip
    print("|---|---|---|---|---|")
    ts = [-0.8, -0.7, -0.6, -0.5, -0.45, -0.4, -0.35, -0.3, -0.25, -0.2]
    if threshold is not None:
        ts = sorted({*ts, threshold})
    for t, below, wrong in sweep(kept_scored, ts):
        mark = " **fitted**" if t == threshold else ""
        print(f"| {t:.3f}{mark} | {below} | {wrong} | {below - wrong} | "
              f"{total_wrong - wrong} |")  # fmt: skip
    print(
        f"\nbootstrap 90 % interval: {interval[0]:.3f} to {interval[1]:.3f} "
        f"({len(boots) - len(ok_boots)} resamples without a falling fit)"
    )
    print(f"\nthreshold: {threshold}")
    if args.no_write:
        return
    data = json.loads(THRESHOLDS.read_text())
    if threshold is None:
        data["models"].pop(version, None)
    else:
        below = [ok for m, ok in kept_scored if m < threshold]
        data["models"][version] = {
            "threshold_nats": round(threshold, 4),
            "interval_90_nats": [round(interval[0], 4), round(interval[1], 4)],
            "rule": (
                "logistic regression of wrong on the mean token log-probability over the kept "
                f"calibration answers; threshold where P(wrong) = {args.wrong_probability}"
            ),
            "calibration": (
                f"training/logprob_calibration.py: {len(obs)} prompts with known answers "
                "(sums, products, unit conversions, capitals; none of bench/routing.py's), "
                f"{len(kept_scored)} kept by the other checks, {total_wrong} of them wrong; "
                f"{len(below)} below the threshold, {len(below) - sum(below)} of them wrong"
            ),
            "settings": "chat template, temperature 0, seed 1, max_tokens 48",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        }
    THRESHOLDS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"wrote {THRESHOLDS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
