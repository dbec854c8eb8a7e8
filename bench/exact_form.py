"""The exact form of a question (``canonical_query``) on hostile input: time per call.

Every request's reuse key runs ``canonical_query`` on its question, on the event loop. Its
literal-span search (quoted text, code, formulas) is a regular expression that is quadratic
on some inputs, such as a long run of quotes that never close; a line longer than
``LONG_LINE_CHARS`` is therefore matched as written, without the search. This prints the
median time per call for such inputs at several lengths, beside plain prose of the same
length, and the ratio.

    PYTHONPATH=src python bench/exact_form.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from boundgate.reuse.scope import LONG_LINE_CHARS, canonical_query

HOSTILE: dict[str, Callable[[int], str]] = {
    "unclosed “": lambda n: "“" * n,
    'a" repeated': lambda n: 'a"' * (n // 2),
    "x' repeated": lambda n: "x'" * (n // 2),
    "„ repeated": lambda n: "„" * n,
    "a` repeated": lambda n: "a`" * (n // 2),
}


def median_ms(text: str, repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        canonical_query(text)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    sizes = [200, LONG_LINE_CHARS, 10_000, 100_000]
    print(
        f"## canonical_query, median ms per call (one line; LONG_LINE_CHARS = {LONG_LINE_CHARS})\n"
    )
    print("| input | " + " | ".join(f"{n:,} chars" for n in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    plain = {n: median_ms(("How do I reset my password " * (n // 27 + 1))[:n]) for n in sizes}
    print("| plain prose | " + " | ".join(f"{plain[n]:.3f}" for n in sizes) + " |")
    for name, make in HOSTILE.items():
        cells = []
        for n in sizes:
            ms = median_ms(make(n))
            cells.append(f"{ms:.3f} ({ms / plain[n]:.0f}×)")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
