"""Which questions may be reused by meaning: those in the language the guards and the pair
model read (English).

The guards' word lists (``data/english.toml``) and the pair model (trained on Quora's English
questions) read English only. In another language they see nothing to veto while the pair
model still scores look-alikes high: a trial was served 8 wrong answers by meaning in other
languages ("¿Cuánto dura el vuelo de Madrid a París?" / "… de París a Madrid?", "Ist
Schokolade (nicht) giftig für Hunde?", "Как включить / выключить Bluetooth?", pair scores
0.94–0.98), while the pair model reused 1 of 31 of their paraphrases. So a question in another
language is reused on an exact repeat only.

Two tests, cheapest first:

- another script: more than a fifth of the letters outside ASCII ("Как включить Bluetooth?",
  "打开蓝牙"), or Spanish's "¿" / "¡";
- a Latin-script language: py3langid (a maintained fork of langid.py, naive Bayes over byte
  n-grams, BSD-3-Clause) restricted to ``LATIN_SCRIPT_LANGUAGES``, with English's probability
  below ``MIN_ENGLISH_PROBABILITY``.

The identifier replaced a list of Spanish/French/German/Italian/Portuguese/Dutch function
words, which let through 60 of 71 short requests written without one ("Vuelos baratos de
Barcelona a Londres", "Convierte dólares a euros"). Measured on 83 short requests in 15
languages and on English text (``bench/language_id.py``; bench/RESULTS.md, "Other languages:
a language identifier"), English's probability below 0.05 over these 19 languages flags 81 of
the 83, 73 of Quora's 116,425 questions and 5 of 2,461 chatbot-style English prompts
("Convert 100 Fahrenheit to Celsius", "Define "déjà vu""); with all of py3langid's 97
languages, short English questions spread their probability over rare ones ("Am I
pregnant?": 1.6 % of Quora flagged at 0.2).
Text without letters gives the identifier no evidence: it reads as English (the guards read
numbers and symbols).

The identifier has little evidence in a few words, and English search-box queries naming a
dish or a thing borrowed from another language were flagged: a trial's "Tiramisu recipe",
"Paella recipe", "Pesto pasta recipe" (English's probability 0.008–0.046) were never reused
by meaning. A text the identifier flags still reads as English when every word of it is an
English noun (WordNet 3.0's nouns, plurals read as their singular) and none is one of the
commonest function words of the other languages that WordNet lists as an English noun as
well (``FOREIGN_FUNCTION_WORDS``: "de", Delaware; "la", the note): "Capital de Australia"
stays flagged. English words that join nouns (``ENGLISH_FUNCTION_WORDS``: "for", "of",
"the", "how" …) may stand between the nouns: a trial's "melatonin for jet lag" (0.034) was
flagged. On ``bench/data/other_languages.tsv`` the rule passes none of the 81 the identifier
flags; it passes none of the 7 flagged among 14,964 chatbot-style questions of the
repository's sets, and one of the 67 flagged among Quora's questions ("Can eigen values and
eigen vectors be zero?").
"""

from __future__ import annotations

import re
from functools import cache
from typing import Protocol

from .guards.lexicon import noun_lemma

# Latin-script languages with many speakers (and Catalan, Vietnamese): the identifier picks
# among these and English; other scripts are caught by the letter test first
LATIN_SCRIPT_LANGUAGES = (
    "es", "fr", "de", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "ro", "hu", "tr",
    "id", "vi", "ca",
)  # fmt: skip
MIN_ENGLISH_PROBABILITY = 0.05  # see the module docstring for what it flags
NON_ASCII_LETTER_SHARE = 0.2  # above it, the text is mostly in another script
# the commonest articles, prepositions and conjunctions of LATIN_SCRIPT_LANGUAGES that are
# (or may be) English nouns in WordNet too; a text of English nouns holding one is not English
FOREIGN_FUNCTION_WORDS = frozenset(
    {
        "al", "con", "da", "das", "de", "dei", "del", "della", "den", "der", "des", "det",
        "di", "die", "do", "dos", "du", "e", "ein", "een", "el", "en", "et", "het", "il",
        "la", "las", "le", "les", "lo", "los", "och", "og", "ou", "per", "por", "sur", "un",
        "una", "und", "une", "van", "ve", "von", "y", "z", "zu",
    }
)  # fmt: skip
# English words that join nouns in a search-box query: "melatonin for jet lag" (a trial's,
# English's probability 0.034) reads as English as "melatonin jet lag" does. A few are small
# words of Danish, Norwegian or Dutch too ("for", "is", "of"): such a text then holds English
# nouns only besides them. Not "to" nor "my" (Polish: "co to jest pizza", a re-check)
ENGLISH_FUNCTION_WORDS = frozenset(
    {
        "about", "after", "and", "are", "at", "before", "by", "does", "during", "for",
        "from", "how", "in", "into", "is", "of", "on", "or", "should", "the", "vs", "what",
        "when", "where", "which", "who", "why", "with", "without", "your",
    }
)  # fmt: skip
_WORD = re.compile(r"[^\W\d_]+")


class _Identifier(Protocol):
    def rank(self, text: str) -> list[tuple[str, float]]: ...


@cache
def _identifier() -> _Identifier:
    """py3langid's model (loaded once: 0.8-0.9 s on 2 cores, its LZMA-packed file read;
    ``warm`` at start-up), normalised probabilities, over English and
    ``LATIN_SCRIPT_LANGUAGES``. Read-only after this, so safe to share across threads."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(["en", *LATIN_SCRIPT_LANGUAGES])
    return identifier  # type: ignore[no-any-return]


def warm() -> None:
    """Load the identifier's model now (``ReuseEngine.load``, on a worker thread): the first
    semantic lookup reads it on the event loop, where it held every request in flight for
    0.8-1.8 s on a fresh gateway (a profile of the hit path)."""
    _identifier()


def english_probability(text: str) -> float:
    """The identifier's probability (0–1) that ``text`` is English rather than one of
    ``LATIN_SCRIPT_LANGUAGES``; 1 / 19 for text it has no evidence about."""
    return dict(_identifier().rank(text)).get("en", 0.0)


def reads_english(text: str) -> bool:
    """Whether ``text`` may be matched by meaning: not mostly in another script, without "¿"
    or "¡", and English by the identifier (see the module docstring)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return True
    if sum(not c.isascii() for c in letters) > NON_ASCII_LETTER_SHARE * len(letters):
        return False
    if "¿" in text or "¡" in text:
        return False
    return english_probability(text) >= MIN_ENGLISH_PROBABILITY or english_nouns_only(text)


def english_nouns_only(text: str) -> bool:
    """Whether every word of ``text`` is an English noun (WordNet 3.0's, a plural as its
    singular) or one of ``ENGLISH_FUNCTION_WORDS``, at least one a noun, and none is in
    ``FOREIGN_FUNCTION_WORDS``: "Paella recipe" and "melatonin for jet lag", not "Receta de
    paella" nor "Capital de Australia" (see the module docstring)."""
    words = [w.lower() for w in _WORD.findall(text)]
    if any(w in FOREIGN_FUNCTION_WORDS for w in words):
        return False
    nouns = [w for w in words if w not in ENGLISH_FUNCTION_WORDS]
    return bool(nouns) and all(noun_lemma(w) is not None for w in nouns)
