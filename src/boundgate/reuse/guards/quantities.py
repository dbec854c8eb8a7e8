"""Vetoes on what a question counts or measures: other numbers, dates, counts swapped, a root
against a power, a count against a list, a temperature's scale glued to its number."""

from __future__ import annotations

import itertools

from .extract import (
    AREA_OR_VOLUME,
    Features,
    _is_content,
    _number,
)
from .lexicon import (
    UNITS,
    WEEKDAYS,
)

_SCALE_LETTERS = {"c": "C", "f": "F"}


def _scale_glued(fa: Features, fb: Features) -> bool:
    """The one number apart is a temperature with its scale's letter glued on one side ("30c
    in f?" / "Convert 30 degrees Celsius to Fahrenheit.", "bake at 400F" / "bake at 400 °F"),
    the same number in degrees of that scale on the other; or a one-letter unit symbol glued
    on ("2m", "5g", "2l") with the same number measured in that unit on the other ("2
    meters"). "30c" or "4g" alone stays an identifier (cents, a model name, a network): the
    other side must name the unit and measure the number in it."""
    for f, g in ((fa, fb), (fb, fa)):
        mine, theirs = f.numbers - g.numbers, g.numbers - f.numbers
        if len(mine) != 1 or len(theirs) != 1:
            continue
        (glued,), (number,) = mine, theirs
        if glued[:-1] != number:
            continue
        letter = glued[-1:]
        scale = _SCALE_LETTERS.get(letter, "")
        if scale in g.units and g.measures.get(number) in ("deg", scale):
            return True
        if letter.isalpha() and UNITS.get(letter) and g.measures.get(number) == UNITS[letter]:
            return True  # "talk on 2m" / "transmit on 2 meters" (a trial's over-veto)
    return False


_POWER_WORDS = frozenset(["square", "cube", "squared", "cubed", "squares", "cubes"])


def _root_taken(fa: Features, fb: Features) -> bool:
    """Both sides ask about a square or a cube, one for its root: "what is the square of 144"
    / "sqrt 144" (a trial was served 20736 for 12, pair score 0.96)."""

    def root(w: list[str]) -> bool:
        pairs = itertools.pairwise(w)
        return "sqrt" in w or any(x in ("square", "cube") and y == "root" for x, y in pairs)

    def power(w: list[str]) -> bool:
        return "sqrt" in w or not _POWER_WORDS.isdisjoint(w)

    return power(fa.words) and power(fb.words) and root(fa.words) != root(fb.words)


def _numbers_differ(fa: Features, fb: Features) -> bool:
    """The two questions name other numbers, except a "1" of a unit on one side alone ("1
    cup", "1 km"): one of a unit is what "a cup", "one cup" and "cups in a quart" say without a
    digit ("how many tbsp in 1 cup" / "How many tablespoons are in a cup?"). "1 cup" / "2
    cups" still differ, and so do "1%" / "%" (a share, not one of a unit). A unit's power
    written as a word ("square meters") counts where the other side writes one too: as its
    glued form ("m2 in one hectare"), or another ("cubic feet")."""
    odd = _with_powers(fa, fb) ^ _with_powers(fb, fa)
    if odd != {"1"}:
        return bool(odd) and not _scale_glued(fa, fb)
    f, g = (fa, fb) if "1" in fa.numbers else (fb, fa)
    if _one_as_article(f, g):
        return False
    return f.measures.get("1", "%") == "%" or f.operation


def _counts_swapped(fa: Features, fb: Features) -> bool:
    """Two numbers count two things, each the other's on the other side: "Can I pair one
    smartwatch with two phones at the same time?" / "… two smartwatches with one phone …" (a
    blind trial's look-alike, served at 0.983: the same numbers, so ``_numbers_differ`` saw
    none), "freeze the first 3 rows and 2 columns" / "… 2 rows and 3 columns". What a number
    counts is the first content word within two words after it; "one" counts as 1 here
    (elsewhere it is as often an article). A number that counts another word on one side
    alone ("500 and 1000 notes" / "500 and 1000 Rs notes") is no swap."""

    def counted(f: Features) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for i, w in enumerate(f.words[:-1]):
            n = "1" if w == "one" else _number(w)
            if n is None:
                continue
            thing = next(
                (
                    f.stems[j]
                    for j in range(i + 1, min(i + 3, len(f.words)))
                    if _is_content(f.words[j]) and _number(f.words[j]) is None
                ),
                None,
            )
            if thing is not None:
                out.setdefault(n, set()).add(thing)
        return out

    ca, cb = counted(fa), counted(fb)
    shared = ca.keys() & cb.keys()
    return any(
        x != y and x not in cb[n] and y not in cb[m]
        for n in shared
        for m in shared - {n}
        for x in ca[n] & cb[m]
        for y in ca[m] & cb[n]
    )


def _count_against_list(fa: Features, fb: Features) -> bool:
    """One side asks how many of a thing, the other which ones: "How many countries border
    Germany?" / "What countries border Germany?", a number against a list (a trial was
    served each the other's answer, pair scores 0.93-0.96). Not where the other side asks
    for their number too ("what is the number of countries …")."""

    def counted(f: Features) -> set[str]:
        w = f.words
        return {f.stems[i + 2] for i in range(len(w) - 2) if w[i] == "how" and w[i + 1] == "many"}

    def listed(f: Features) -> set[str]:
        return {f.stems[i + 1] for i, x in enumerate(f.words[:-1]) if x in ("what", "which")}

    for f, g in ((fa, fb), (fb, fa)):
        asked = counted(f)
        if asked and not counted(g) and "number" not in g.words and asked & listed(g):
            return True
    return False


def _dates_differ(fa: Features, fb: Features) -> bool:
    """The two sides name other dates. A weekday in the plural ("on weekends", "on
    Saturdays": every one) is no date of its own, but it is the day the other side names
    ("overtime for working on weekends" / "weekend work overtime pay", a trial's over-veto,
    0.917): "driving on weekends" / "driving" still agree."""

    def plural_days(f: Features) -> frozenset[str]:
        return frozenset(w[:3] for w in f.words if w[-1:] == "s" and w[:-1] in WEEKDAYS)

    da = fa.dates | (plural_days(fa) & fb.dates)
    db = fb.dates | (plural_days(fb) & fa.dates)
    return da != db


def _with_powers(f: Features, g: Features) -> frozenset[str]:
    """``f.numbers``, with the powers ``f`` writes as words where ``g`` writes a unit's power
    in either form ("m2", "square feet"): alone, "square feet" is a unit like "feet"."""
    written = g.powers or {n for n in g.numbers if AREA_OR_VOLUME.fullmatch(n)}
    return f.numbers | f.powers if written else f.numbers


def _one_as_article(f: Features, g: Features) -> bool:
    """A "1" of ``f`` stands where ``g`` has "a", "an" or "one" before the same word:
    "protein in 1 large egg" / "in a large egg" (a trial's over-veto), "how many psi in 1
    bar" / "in one bar" (a re-check's)."""
    for i, x in enumerate(f.words[:-1]):
        if x == "1":
            after = f.words[i + 1]
            if any(y in ("a", "an", "one") and z == after for y, z in itertools.pairwise(g.words)):
                return True
    return False
