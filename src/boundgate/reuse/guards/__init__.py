"""Cheap lexical guards for what sentence embeddings miss.

Embeddings place "how do I turn ON two-factor auth" right next to "... turn it OFF", and
"flights to Paris in 2023" next to "... in 2024". Before a semantic candidate may be reused,
the two questions are compared on features whose difference changes the answer:

- negation: the sides use a different number of negations ("not", "never", "n't", "without",
  ...), so "Is it safe?" vs "Is it not safe?" and "If not, can I?" vs "If not, can I not?";
- polarity: the sides use opposite members of an antonym pair (on/off, enable/disable, ...);
- numbers: the numbers mentioned differ (digits and number words, normalised);
- dates: years, months or weekdays differ;
- units: the units of measure differ (km vs miles, °C vs °F, ...);
- entities: the capitalised names or rare content words of one side have no counterpart;
- literal: the sides differ where the uncased models cannot see it (the case or spacing of
  quoted text or code, "x²" / "x2"), so a high score would say nothing about it.

A guard never *grants* reuse; it only vetoes (``conflicts``) or, for the softer signals,
reports how many content words are unmatched (``novel_words``), which the verifier uses as a
feature. Everything is word-level and language-agnostic only as far as English goes; the
detector lists are settings-free on purpose (they describe English, not a deployment) and live
in package data, ``data/english.toml``, read once at import.

Number words and units are these tables rather than ``text2num`` or ``pint``, measured side by
side in ``bench/guard_libraries.py``: ``text2num`` per token made ``features`` 1.4-1.6× slower
and reads "OS" as 0 and "ones" as 1; its ``alpha2digit`` over the text is no faster (0.9-1.1×)
and rewrites "third" as "3rd" (an ordinal the number guard then misses) and "twenty five" as
25. pint builds its registry in 1-1.5 s, a lookup costs 500-1,800 times our dict's, and on
lower-cased words it finds units in "a", "at" and "are" while missing currencies, "%", "gb".

The package, by concept: ``lexicon`` (the word lists, words and stems), ``extract`` (what a
question asserts, ``Features``), ``literals`` (code, quoted text, what the uncased models
cannot see), ``wording`` (one word or form apart: mood, tense, modality, negation, affixes,
units), ``order`` (roles and operands swapped), ``context`` (what surrounds the question),
``rewrites`` (texts read alike before they are compared: textspeak digits, hyphens, powers,
comparisons turned round), ``quantities`` (numbers, counts, dates), ``names`` (names,
sibling nouns, letters), ``tasks`` (examples, an audience, a condition added, an amount
against a choice, finding out against doing, a phrase in a language) and ``conflicts``
(``compare``).
"""

from .conflicts import Comparison, compare
from .extract import Features, features
from .lexicon import NUMBER_WORDS, UNIT_DIMENSIONS, UNITS, normalise, stem, words

__all__ = [
    "NUMBER_WORDS",
    "UNITS",
    "UNIT_DIMENSIONS",
    "Comparison",
    "Features",
    "compare",
    "features",
    "normalise",
    "stem",
    "words",
]
