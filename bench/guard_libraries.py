"""Number words and units in the guards: our tables against ``text2num`` and ``pint``.

Issue #12 asks to replace hand-written code with a maintained library unless it is slower on
the hot path or behaves worse. The guards run on every semantic candidate, so both are
measured here, side by side in one run, on the questions of a pairs file:

- **numbers**: ``guards.features`` on questions whose features are not cached yet (as for a
  new question), with our ``_number`` (a dict of number words) against ``text2num`` per
  token (our table still answers "dozen", which it does not know, and "one" stays a
  stopword), and against ``alpha2digit`` over the whole text first (which joins "twenty
  five" into 25). Reported: µs per question, the ratio to ours, and how many pairs'
  ``guards.compare`` decisions change.
- **units**: our ``UNITS`` / ``UNIT_DIMENSIONS`` lookup per token against pint's
  ``get_dimensionality`` (what pint could replace: the dimension table), µs per token and
  the tokens they disagree on, plus pint's registry build time (paid once at import).

Needs ``pip install text2num pint`` (neither is a dependency of the gateway).

    python bench/guard_libraries.py --pairs ../shared/data/cache/quora_val.csv
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from boundgate.reuse import guards
from boundgate.reuse.guards import extract
from reuse_quality import load_pairs

Number = Callable[[str], str | None]


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pairs", type=Path, default=Path("../shared/data/cache/quora_val.csv"))
    ap.add_argument("--limit", type=int, default=3000, help="pairs used")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    try:
        import pint
        from text_to_num import alpha2digit, text2num
    except ImportError:
        raise SystemExit("needs text2num and pint: pip install text2num pint") from None

    pairs = [(a, b) for a, b, _ in load_pairs(args.pairs, args.limit, 0)]
    questions = [q for pair in pairs for q in pair]
    ours: Number = extract._number

    def t2n(tok: str) -> str | None:
        if tok[0].isdigit() or tok == "one":
            return ours(tok)
        try:
            return str(text2num(tok, "en"))
        except ValueError:
            return guards.NUMBER_WORDS.get(tok)  # "dozen"

    def a2d(text: str) -> str:
        return str(alpha2digit(text, "en"))

    plain = guards.features.__wrapped__

    def texts_for(prepare: Callable[[str], str] | None) -> list[str]:
        return [prepare(q) for q in questions] if prepare else questions

    def once(number: Number, prepare: Callable[[str], str] | None) -> list[guards.Features]:
        extract._number = number  # features() calls its module's _number
        try:
            # a rewriting variant pays for the rewrite too, as it would on the hot path
            return [plain(t) for t in texts_for(prepare)]
        finally:
            extract._number = ours

    variants: list[tuple[str, Number, Callable[[str], str] | None]] = [
        ("ours (table)", ours, None),
        ("text2num per token", t2n, None),
        ("alpha2digit on the text", ours, a2d),
    ]
    for _, number, prepare in variants:  # warm the stemmer's cache for every variant
        once(number, prepare)
    best = [float("inf")] * len(variants)
    for _ in range(args.repeats):  # interleaved, so load on the machine hits all alike
        for i, (_, number, prepare) in enumerate(variants):
            t0 = time.perf_counter()
            once(number, prepare)
            best[i] = min(best[i], time.perf_counter() - t0)

    def found(feats: list[guards.Features]) -> list[tuple[frozenset[str], frozenset[str]]]:
        return [(f.numbers, f.dates) for f in feats]

    base = found(once(ours, None))
    print(f"numbers: guards.features on {len(questions)} uncached questions ({args.pairs.name})")
    print(f"{'variant':<28} {'µs/question':>12} {'× ours':>8} {'questions changed':>18}")
    for (name, number, prepare), seconds in zip(variants, best, strict=True):
        other = found(once(number, prepare))
        changed = [q for q, x, y in zip(questions, base, other, strict=True) if x != y]
        per_q = seconds / len(questions) * 1e6
        print(f"{name:<28} {per_q:12.1f} {seconds / best[0]:8.2f} {len(changed):18d}")
        for q in changed[:3]:
            print(f"    e.g. {q[:90]!r}")

    flipped = 0
    for a, b in pairs:
        before = guards.compare(a, b).conflicts
        guards.features.cache_clear()
        extract._number = t2n
        try:
            after = guards.compare(a, b).conflicts
        finally:
            extract._number = ours
            guards.features.cache_clear()
        flipped += before != after
    print(f"text2num per token: compare() decisions changed on {flipped} of {len(pairs)} pairs")

    t0 = time.perf_counter()
    ureg = pint.UnitRegistry()
    registry_s = time.perf_counter() - t0
    tokens = [t for q in questions for t in guards.words(q)]

    def our_dim(tok: str) -> str | None:
        code = guards.UNITS.get(tok)
        return None if code is None else guards.UNIT_DIMENSIONS.get(code, code)

    def pint_dim(tok: str) -> str | None:
        if tok[0].isdigit():
            return None
        try:
            return str(ureg.get_dimensionality(tok))
        except Exception:  # pint raises several kinds for a word that is no unit
            return None

    ours_s = best_of(args.repeats, lambda: [our_dim(t) for t in tokens])
    pint_s = best_of(1, lambda: [pint_dim(t) for t in tokens])
    print(f"\nunits: dimension of {len(tokens)} tokens; pint's registry: {registry_s:.2f} s")
    print(f"{'ours (table)':<28} {ours_s / len(tokens) * 1e6:12.2f} µs/token")
    print(f"{'pint get_dimensionality':<28} {pint_s / len(tokens) * 1e6:12.2f} µs/token", end="")
    print(f"  ({pint_s / ours_s:.0f} × ours)")
    distinct = sorted(set(tokens))
    only_pint = [t for t in distinct if pint_dim(t) and not our_dim(t)]
    only_ours = [t for t in distinct if our_dim(t) and not pint_dim(t)]
    print(f"units pint sees that we do not: {len(only_pint)} words, e.g. {only_pint[:15]}")
    print(f"units we see that pint does not: {len(only_ours)} words, e.g. {only_ours[:15]}")


if __name__ == "__main__":
    main()
