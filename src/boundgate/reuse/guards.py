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
- entities: the capitalised names or rare content words of one side have no counterpart.

A guard never *grants* reuse; it only vetoes (``conflicts``) or, for the softer signals,
reports how many content words are unmatched (``novel_words``), which the verifier uses as a
feature. Everything is word-level and language-agnostic only as far as English goes; the
detector lists are settings-free on purpose (they describe English, not a deployment).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*|[°%$€£¥]")

NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nobody",
        "nothing",
        "nowhere",
        "neither",
        "nor",
        "cannot",
        "cant",
        "dont",
        "doesnt",
        "didnt",
        "isnt",
        "arent",
        "wasnt",
        "werent",
        "wont",
        "wouldnt",
        "shouldnt",
        "couldnt",
        "hasnt",
        "havent",
        "hadnt",
        "without",
        "unable",
    ]
)

_ANTONYMS = [
    ("on", "off"),
    ("enable", "disable"),
    ("activate", "deactivate"),
    ("turn on", "turn off"),
    ("increase", "decrease"),
    ("increase", "reduce"),
    ("add", "remove"),
    ("add", "delete"),
    ("install", "uninstall"),
    ("connect", "disconnect"),
    ("lock", "unlock"),
    ("block", "unblock"),
    ("subscribe", "unsubscribe"),
    ("follow", "unfollow"),
    ("encrypt", "decrypt"),
    ("compress", "decompress"),
    ("upload", "download"),
    ("import", "export"),
    ("buy", "sell"),
    ("start", "stop"),
    ("start", "end"),
    ("begin", "end"),
    ("open", "close"),
    ("before", "after"),
    ("above", "below"),
    ("over", "under"),
    ("max", "min"),
    ("maximum", "minimum"),
    ("best", "worst"),
    ("good", "bad"),
    ("more", "less"),
    ("more", "fewer"),
    ("most", "least"),
    ("higher", "lower"),
    ("high", "low"),
    ("larger", "smaller"),
    ("large", "small"),
    ("bigger", "smaller"),
    ("big", "small"),
    ("longer", "shorter"),
    ("long", "short"),
    ("faster", "slower"),
    ("fast", "slow"),
    ("cheaper", "expensive"),
    ("cheap", "expensive"),
    ("easy", "hard"),
    ("easy", "difficult"),
    ("hot", "cold"),
    ("positive", "negative"),
    ("pros", "cons"),
    ("advantages", "disadvantages"),
    ("benefits", "drawbacks"),
    ("true", "false"),
    ("yes", "no"),
    ("win", "lose"),
    ("gain", "lose"),
    ("import", "export"),
    ("input", "output"),
    ("inside", "outside"),
    ("internal", "external"),
    ("push", "pull"),
    ("send", "receive"),
    ("login", "logout"),
    ("sign in", "sign out"),
    ("log in", "log out"),
    ("left", "right"),
    ("north", "south"),
    ("east", "west"),
    ("male", "female"),
    ("men", "women"),
    ("man", "woman"),
    ("boy", "girl"),
    ("husband", "wife"),
    ("legal", "illegal"),
    ("possible", "impossible"),
    ("safe", "unsafe"),
    ("allow", "deny"),
    ("allow", "block"),
    ("accept", "reject"),
    ("include", "exclude"),
    ("first", "last"),
    ("past", "future"),
    ("ascending", "descending"),
    ("import", "export"),
    ("rich", "poor"),
    ("love", "hate"),
    ("like", "dislike"),
    ("agree", "disagree"),
    ("always", "never"),
    ("success", "failure"),
    ("strengths", "weaknesses"),
    ("strength", "weakness"),
    ("similarities", "differences"),
    ("same", "different"),
    ("online", "offline"),
    ("public", "private"),
    ("visible", "hidden"),
    ("show", "hide"),
    ("mount", "unmount"),
    ("freeze", "unfreeze"),
    ("pause", "resume"),
    ("expand", "collapse"),
    ("zoom in", "zoom out"),
    ("sunrise", "sunset"),
    ("morning", "evening"),
    ("day", "night"),
    ("summer", "winter"),
    ("spring", "autumn"),
    ("asia", "europe"),
]

NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        [
            "zero",
            "_one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70"})
NUMBER_WORDS.update({"eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000"})
NUMBER_WORDS.update({"million": "1000000", "billion": "1000000000", "dozen": "12"})
ORDINALS = {
    "second": "2",
    "third": "3",
    "fourth": "4",
    "fifth": "5",
    "sixth": "6",
    "seventh": "7",
    "eighth": "8",
    "ninth": "9",
    "tenth": "10",
}
MONTHS = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)
WEEKDAYS = frozenset(
    [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "today",
        "tomorrow",
        "yesterday",
        "tonight",
        "weekend",
    ]
)
UNITS = {
    "km": "km",
    "kilometer": "km",
    "kilometers": "km",
    "kilometre": "km",
    "kilometres": "km",
    "mile": "mi",
    "miles": "mi",
    "mi": "mi",
    "m": "m",
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "cm": "cm",
    "mm": "mm",
    "inch": "in",
    "inches": "in",
    "foot": "ft",
    "feet": "ft",
    "ft": "ft",
    "kg": "kg",
    "kilogram": "kg",
    "kilograms": "kg",
    "lb": "lb",
    "lbs": "lb",
    "pound": "lb",
    "pounds": "lb",
    "g": "g",
    "gram": "g",
    "grams": "g",
    "oz": "oz",
    "ounce": "oz",
    "ounces": "oz",
    "celsius": "C",
    "fahrenheit": "F",
    "kelvin": "K",
    "°": "deg",
    "%": "%",
    "percent": "%",
    "$": "USD",
    "usd": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "€": "EUR",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "£": "GBP",
    "gbp": "GBP",
    "¥": "JPY",
    "rupees": "INR",
    "rupee": "INR",
    "inr": "INR",
    "liter": "l",
    "liters": "l",
    "litre": "l",
    "litres": "l",
    "gallon": "gal",
    "gallons": "gal",
    "kb": "kB",
    "mb": "MB",
    "gb": "GB",
    "tb": "TB",
    "ghz": "GHz",
    "mhz": "MHz",
    "kwh": "kWh",
    "watt": "W",
    "watts": "W",
    "second": "s",
    "seconds": "s",
    "minute": "min",
    "minutes": "min",
    "hour": "h",
    "hours": "h",
    "day": "d",
    "days": "d",
    "week": "wk",
    "weeks": "wk",
    "month": "mo",
    "months": "mo",
    "year": "y",
    "years": "y",
}

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "at",
        "by",
        "for",
        "with",
        "about",
        "against",
        "between",
        "into",
        "through",
        "during",
        "to",
        "from",
        "in",
        "out",
        "on",
        "off",
        "over",
        "under",
        "again",
        "further",
        "then",
        "once",
        "here",
        "there",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "both",
        "each",
        "few",
        "other",
        "some",
        "such",
        "only",
        "own",
        "so",
        "than",
        "too",
        "very",
        "s",
        "t",
        "can",
        "will",
        "just",
        "should",
        "now",
        "i",
        "me",
        "my",
        "myself",
        "we",
        "our",
        "ours",
        "you",
        "your",
        "yours",
        "he",
        "him",
        "his",
        "she",
        "her",
        "hers",
        "it",
        "its",
        "they",
        "them",
        "their",
        "what",
        "which",
        "who",
        "whom",
        "this",
        "that",
        "these",
        "those",
        "am",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "have",
        "has",
        "had",
        "having",
        "do",
        "does",
        "did",
        "doing",
        "would",
        "could",
        "might",
        "must",
        "shall",
        "may",
        "also",
        "get",
        "got",
        "getting",
        "go",
        "going",
        "one",
        "ones",
        "way",
        "ways",
        "thing",
        "things",
        "really",
        "much",
        "many",
        "make",
        "makes",
        "made",
        "best",
        "good",
        "better",
        "use",
        "used",
        "using",
        "tell",
        "know",
        "want",
        "need",
        "like",
        "please",
        "someone",
        "something",
        "anyone",
        "anything",
        "people",
        "person",
        "possible",
        "actually",
        "ever",
        "still",
        "even",
        "us",
        "as",
        "up",
        "down",
    ]
)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return text.replace("’", "'").replace("n't", "nt").replace("'", "")


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def stem(word: str) -> str:
    """A light suffix stripper (plural/tense), enough to match "tutorials" with "tutorial"."""
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + repl
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


@dataclass(frozen=True)
class Features:
    """What a question asserts that must be equal in a question it is reused for."""

    negations: int  # how many negation words: a differing count flips the meaning
    numbers: frozenset[str]
    dates: frozenset[str]
    units: frozenset[str]
    polar: frozenset[str]  # antonym-pair members mentioned, as "pair#side"
    content: frozenset[str]  # stemmed content words
    names: frozenset[str] = field(default_factory=frozenset)  # capitalised mid-sentence words


_POLAR_INDEX: dict[str, list[tuple[int, int]]] = {}
for _i, (_a, _b) in enumerate(_ANTONYMS):
    _POLAR_INDEX.setdefault(_a, []).append((_i, 0))
    _POLAR_INDEX.setdefault(_b, []).append((_i, 1))


def _number(tok: str) -> str | None:
    if tok[0].isdigit():
        t = tok.replace(",", "")
        try:
            v = float(t)
        except ValueError:
            return None
        return str(int(v)) if v.is_integer() else str(v)
    return NUMBER_WORDS.get(tok)


@lru_cache(maxsize=65536)
def features(text: str) -> Features:
    toks = words(text)
    joined = " ".join(toks)
    negations = sum(t in NEGATIONS for t in toks)
    numbers = set()
    dates = set()
    units = set()
    for t in toks:
        n = _number(t)
        if n is not None:
            if len(n) == 4 and n.startswith(("19", "20")):
                dates.add(n)
            else:
                numbers.add(n)
        elif t in ORDINALS:
            numbers.add("#" + ORDINALS[t])
        if t in MONTHS or t in WEEKDAYS:
            dates.add(t[:3])
        if t in UNITS:
            units.add(UNITS[t])
    polar: set[str] = set()
    for phrase, sides in _POLAR_INDEX.items():
        hit = f" {phrase} " in f" {joined} " if " " in phrase else phrase in toks
        if hit:
            polar.update(f"{i}#{side}" for i, side in sides)
    content = frozenset(stem(t) for t in toks if t not in STOPWORDS and not t[0].isdigit())
    raw = re.findall(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-zA-Z0-9]+)", text.strip())
    names = frozenset(stem(w.casefold()) for w in raw if w.casefold() not in STOPWORDS)
    return Features(
        negations,
        frozenset(numbers),
        frozenset(dates),
        frozenset(units),
        frozenset(polar),
        content,
        names,
    )


@dataclass(frozen=True)
class Comparison:
    conflicts: tuple[str, ...]  # hard vetoes, by name
    novel_words: int  # content words of either side with no counterpart in the other
    content_overlap: float  # Jaccard of stemmed content words

    @property
    def ok(self) -> bool:
        return not self.conflicts


def compare(a: str, b: str) -> Comparison:
    fa, fb = features(a), features(b)
    conflicts: list[str] = []
    if fa.negations != fb.negations:
        conflicts.append("negation")
    if fa.numbers != fb.numbers:
        conflicts.append("number")
    if fa.dates != fb.dates:
        conflicts.append("date")
    if fa.units != fb.units:
        conflicts.append("unit")
    opposite = {p.split("#")[0] for p in fa.polar} & {p.split("#")[0] for p in fb.polar}
    for pair in opposite:
        sa = {p for p in fa.polar if p.startswith(pair + "#")}
        sb = {p for p in fb.polar if p.startswith(pair + "#")}
        if sa != sb:
            conflicts.append("polarity")
            break
    names_a, names_b = fa.names - fb.content, fb.names - fa.content
    if names_a and names_b:
        conflicts.append("entity")
    union = fa.content | fb.content
    overlap = len(fa.content & fb.content) / len(union) if union else 1.0
    novel = len(fa.content ^ fb.content)
    return Comparison(tuple(conflicts), novel, overlap)
