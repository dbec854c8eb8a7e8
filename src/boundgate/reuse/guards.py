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
"""

from __future__ import annotations

import itertools
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import Stemmer  # PyStemmer: the Snowball stemmers in C

from .scope import QUOTED_SPAN, about_form, canonical_query, literal_spans, question_openers

_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*|[°%$€£¥]")

# The word lists are package data (data/english.toml), read once here.
_LISTS: dict[str, Any] = tomllib.loads(
    resources.files("boundgate.reuse").joinpath("data/english.toml").read_text("utf-8")
)
NEGATIONS = frozenset(_LISTS["negations"])
# verbs that negate what follows when followed by "to" ("fail to arrive" = "not arrive")
NEGATING_VERBS = frozenset(_LISTS["negating_verbs"])
_ANTONYMS = [(a, b) for a, b in _LISTS["antonyms"]]

# Affixes that turn a word into its opposite: a word on one side only whose counterpart on
# the other side only is the same root with a negating prefix (likely/unlikely,
# relevant/irrelevant, hide/unhide) or suffix (harm(ful)/harmless), or with the opposite member
# of a paired affix (overclock/underclock, encode/decode, upload/download, import/export,
# employer/employee). Roots must keep at least 3 letters.
NEGATING_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "non", "de", "anti", "ab", "mis")
NEGATING_SUFFIXES = ("less",)
PAIRED_PREFIXES = (
    ("over", "under"),
    ("up", "down"),
    ("upper", "lower"),
    ("en", "de"),
    ("en", "dis"),
    ("in", "de"),
    ("in", "out"),
    ("in", "ex"),
    ("im", "ex"),
    ("max", "min"),
    ("pre", "post"),
    ("inter", "intra"),
    ("at", "de"),
    ("ac", "de"),
)
PAIRED_SUFFIXES = (("ful", "less"), ("er", "ee"), ("ers", "ees"))
# Words after which the next content word has a role (direction, comparison): the same words
# in another order there ("convert a string to an int" / "an int to a string") swap roles.
MAX_ROLES = 32  # directional words looked at per text
SYMMETRIC = frozenset(["and", "or", "vs", "versus", "between"])
DIRECTIONAL = frozenset(["to", "from", "than", "into", "onto", "toward", "towards", "against"])
# Question words that stand for a subject or an object ("what causes X" / "what does X cause"),
# the auxiliaries and articles that move or come and go when one becomes the other
WH_PRONOUNS = frozenset(["what", "who", "whom", "which"])
AUXILIARIES = frozenset(_LISTS["auxiliaries"])
# tense markers: word → "past" / "present" / "future"; irregular past → its present
TENSES = {
    **{w: "past" for w in _LISTS["past_auxiliaries"]},
    **{w: "present" for w in _LISTS["present_auxiliaries"]},
    **{w: "future" for w in _LISTS["future_auxiliaries"]},
}
IRREGULAR_PAST = {past: base for past, base in _LISTS["irregular_past"]}
IRREGULAR_PLURALS = {plural: one for plural, one in _LISTS["irregular_plurals"]}
PARTICIPLES = frozenset(_LISTS["irregular_participles"])
MODALS = {w: i for i, group in enumerate(_LISTS["modal_groups"]) for w in group}
QUANTIFIERS = {w: i for i, group in enumerate(_LISTS["quantifier_groups"]) for w in group}
CONTRASTS = {w: i for i, group in enumerate(_LISTS["contrast_groups"]) for w in group}


# operations whose operands' order changes the result ("10 divided by 2" / "2 divided by 10")
NONCOMMUTATIVE = frozenset(
    ["divided", "divide", "minus", "subtract", "subtracted", "power", "exponent", "root", "over",
     "modulo", "mod", "percent", "log", "logarithm", "choose", "ratio"]
)  # fmt: skip
_BE = frozenset(
    ["is", "are", "was", "were", "be", "been", "being", "am", "isnt", "arent", "wasnt", "werent"]
)
# Punctuation that stands alone in prose ("X - Y", "a & b", a "?" after a space) and fences:
# the other words made of symbols alone are operators and arguments ("??", "?.", "--", "..")
_PROSE_MARKS = frozenset(
    ["?", "!", ".", ",", ":", ";", "-", "–", "—", "&", "/", "(", ")", '"', "'", "```"]
)
_TYPOGRAPHIC = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})
# word → its group in ``language_tasks`` ("spell" → the spelling group)
LANGUAGE_TASKS = {w: i for i, group in enumerate(_LISTS["language_tasks"]) for w in group}
ARTICLES = frozenset(["a", "an", "the"])
SUPERLATIVES = frozenset(["most", "least", "best", "worst"])
WH_SWAP_WORDS = 5  # _wh_swapped: the longest reordering it judges

NUMBER_WORDS: dict[str, str] = _LISTS["number_words"]
ORDINALS: dict[str, str] = _LISTS["ordinals"]
MONTHS = frozenset(_LISTS["months"])
WEEKDAYS = frozenset(_LISTS["weekdays"])
UNITS: dict[str, str] = _LISTS["units"]
# the dimension of each unit code in UNITS (codes not listed are their own dimension)
UNIT_DIMENSIONS = {code: dim for dim, codes in _LISTS["unit_dimensions"].items() for code in codes}
STOPWORDS = frozenset(_LISTS["stopwords"])


_HYPHENATED_PREFIX = re.compile(
    r"\b(un|non|anti|dis|de|in|im|il|ir|mis|over|under|pre|post|re|co|self)-(?=[a-z])"
)


_DEGREES = re.compile(r"°\s*([cfk])\b")
_DEGREE_NAMES = {"c": "celsius", "f": "fahrenheit", "k": "kelvin"}
_LETTER_IN_PARENTHESES = re.compile(r"(\d)\(([a-z])\)")
_RUPEES = re.compile(r"\brs\.\s*")
_WORLD_WAR_I = re.compile(r"\bworld war (?:i|one)\b")
# a number glued to letters: "16gb" (a unit of ``UNITS`` of two letters or more: 16 GB) or an
# identifier ("4g", "401k", "3d"), whose number is part of a name
_GLUED = re.compile(r"(\d+(?:\.\d+)?)([a-z]+)|([a-z]+)(\d+(?:\.\d+)?)")
_ORDINAL_SUFFIXES = frozenset(["st", "nd", "rd", "th"])
# short forms that name the same thing as their long form: "JS" / "JavaScript"
ALIASES = {short: tuple(long.split()) for short, long in _LISTS["aliases"].items()}


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    # "100°F" names the unit as "100 degrees Fahrenheit" does
    text = _DEGREES.sub(lambda m: f"° {_DEGREE_NAMES[m.group(1)]}", text)
    text = _LETTER_IN_PARENTHESES.sub(r"\1\2", text)  # "401(k)" is "401k"
    text = _RUPEES.sub("rs ", text)  # "Rs.60000" is "rs 60000"
    text = _WORLD_WAR_I.sub("world war 1", text)  # one letter is no Roman numeral elsewhere
    text = _HYPHENATED_PREFIX.sub(r"\1", text)  # "un-merge" is "unmerge"
    return text.replace("’", "'").replace("n't", "nt").replace("'", "")


def words(text: str) -> list[str]:
    """The lower-case words of ``text``, each short form of ``ALIASES`` written out ("JS"
    → "javascript", "WW2" → "world war 2")."""
    toks: list[str] = _WORD.findall(normalise(text))
    if ALIASES.keys().isdisjoint(toks):
        return toks
    return [w for t in toks for w in ALIASES.get(t, (t,))]


# PyStemmer keeps its own cache of recent words (10,000, then purged), so ours is not needed.
# Ours held 65,536 words at about 185 bytes each (12 MB when full) and was still filling in
# the repeat-only soak: every prompt with a new number or name added a word (bench/RESULTS.md).
# Without it `features` costs the same on a miss (90 µs on 12-word texts). PyStemmer's
# stemmers must not be called concurrently: the guards run on the event loop only.
_STEMMER = Stemmer.Stemmer("english")


def stem(word: str) -> str:
    """The English Snowball (Porter2) stem: "tutorials" → "tutori", "enabling" → "enabl"."""
    return str(_STEMMER.stemWord(word))


_STOPWORD_STEMS = frozenset(stem(w) for w in STOPWORDS)


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
    forms: frozenset[str] = field(default_factory=frozenset)  # content words, as written
    sequence: tuple[str, ...] = ()  # stemmed content words in order
    symmetric: bool = False  # joins things with "and", "or", "vs", "versus" or "between"
    relation: bool = False  # names a relation both ways alike: "the same as", "related to"
    inverts: bool = False  # has "of", which may invert a compound ("surface of the sun")
    # (directional word, stem after it, stems of the 3 content words before it): _roles
    roles: frozenset[tuple[str, str, frozenset[str]]] = field(default_factory=frozenset)
    # a question opening with a question word for a subject or object (``WH_PRONOUNS``): that
    # word, then the stems after it without auxiliaries and articles (``_wh_swapped``)
    wh: str = ""
    wh_rest: tuple[str, ...] = ()
    wh_determiner: bool = False  # the question word asks "which thing": "what colour is it"
    superlative: bool = False  # "most", "best", "largest": "which is the largest X"
    tasks: frozenset[int] = field(default_factory=frozenset)  # ``LANGUAGE_TASKS`` groups named
    # the tenses its auxiliaries (and irregular pasts) say, and its other words' stems with
    # irregular pasts as their present ("who won" → "win"): ``_tense_conflict``
    symbols: frozenset[str] = field(default_factory=frozenset)  # words of symbols alone: "??"
    mood: str = ""  # "question" (yes/no), "request" ("could you …?"), "statement" or ""
    passive: bool = False  # a form of "be" and then a participle: "how are exceptions handled"
    # the unit a quantity is in, by number ("30 degrees Celsius": {"30": "C"}), and the unit
    # "how many" / "how much" asks for ("How many seconds are in an hour": "s")
    measures: dict[str, str] = field(default_factory=dict)
    asked_unit: str = ""
    words: list[str] = field(default_factory=list)  # the tokens, lower case
    stems: list[str] = field(default_factory=list)  # their stems
    number_order: tuple[str, ...] = ()  # numbers (not years) in the order written
    operation: bool = False  # "divided", "minus", "power", "/", "^": the numbers' order counts
    tenses: frozenset[str] = field(default_factory=frozenset)
    untensed: tuple[str, ...] = ()
    untensed_forms: tuple[str, ...] = ()  # the same words as written
    # tokens with characters of code, case folded, sorted ("2**3", "s[::2]", "2>&1"), and
    # the words of each quoted text ('"banana"'): ``_literals_differ``
    code: tuple[str, ...] = ()
    quoted: tuple[tuple[str, ...], ...] = ()
    swap_form: tuple[str, ...] = ()  # the stems swaps are judged on (``_swap_form``)


def _phrase_stems(phrase: str) -> str:
    return " ".join(stem(w) for w in phrase.split())


# antonym pairs keyed by their stemmed form, so "enabling"/"disabled" match enable/disable
def _graded(word: str) -> list[str]:
    """A one-word antonym with its comparative and superlative (high → higher, highest;
    big → bigger; easy → easier), so every grade of a pair is opposed. (Not adverbs:
    "largely", "lately" and "hardly" mean something else.)"""
    if " " in word or len(word) < 3 or word in STOPWORDS:
        return [word]
    if word.endswith("e"):
        return [word, word + "r", word + "st"]
    if word.endswith("y") and len(word) > 3:
        return [word, word[:-1] + "ier", word[:-1] + "iest"]
    cvc = len(word) <= 4 and re.fullmatch(r".*[^aeiou][aeiou][^aeiouwxy]", word) is not None
    base = word + word[-1] if cvc else word
    return [word, base + "er", base + "est"]


_POLAR_WORDS: dict[str, list[tuple[int, int]]] = {}  # one-word members, by stem
_POLAR_PHRASES: dict[str, list[tuple[int, int]]] = {}  # "turn on", "sign in", ... by stems
for _i, (_a, _b) in enumerate(_ANTONYMS):
    for _side, _word in ((0, _a), (1, _b)):
        for _form in _graded(_word):
            _key = _phrase_stems(_form)
            _sides = (_POLAR_PHRASES if " " in _key else _POLAR_WORDS).setdefault(_key, [])
            if (_i, _side) not in _sides:
                _sides.append((_i, _side))


def _number(tok: str) -> str | None:
    if tok[0].isdigit():
        if "," in tok and not _THOUSANDS.fullmatch(tok):
            return None  # "1,2,3": a list (``features`` reads each), not 123
        t = tok.replace(",", "")
        try:
            v = float(t)
        except ValueError:
            return None
        return str(int(v)) if v.is_integer() else str(v)
    return NUMBER_WORDS.get(tok) or _ROMAN.get(tok)


_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _roman(n: int) -> str:
    out = ""
    for value, letters in ((10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")):
        while n >= value:
            out, n = out + letters, n - value
    return out


# Roman numerals of two letters or more, up to 39 ("World War II", "Henry VIII"); not "vi"
# (the editor) nor "xx" / "xxx"; one letter ("i", "v", "x") is a word or a variable
_ROMAN = {_roman(n): str(n) for n in range(2, 40) if len(_roman(n)) > 1}
for _word in ("vi", "xx", "xxx"):
    _ROMAN.pop(_word, None)


def _is_content(tok: str) -> bool:
    """Not a stopword nor a number; an identifier with a number in it is ("4g", "401k")."""
    return tok not in STOPWORDS and (
        not tok[0].isdigit() or (not tok.isdigit() and _GLUED.fullmatch(tok) is not None)
    )


def _roles(toks: list[str], stems: list[str]) -> frozenset[tuple[str, str, frozenset[str]]]:
    """For each directional word: (the word, the stem of the first content word after it,
    the stems of the last three content words before it). ``stems`` are the tokens'."""
    out: list[tuple[str, str, frozenset[str]]] = []
    prior: list[str] = []  # stems of the content words so far
    for i, t in enumerate(toks):
        if t in DIRECTIONAL:
            if len(out) == MAX_ROLES:  # a long text: compared pairwise, more would cost too much
                break
            after = [j for j in range(i + 1, min(i + 4, len(toks))) if _is_content(toks[j])]
            if after:
                out.append((t, stems[after[0]], frozenset(prior[-3:])))
        if _is_content(t):
            prior.append(stems[i])
    return frozenset(out)


# Features of recent texts, so a stored question met as a candidate again is not parsed again.
# About 3.6 KB per text (measured on quora_val's questions): 4,096 texts keep it near 15 MB. It
# was 65,536 (about 240 MB when full, reached by a stream of distinct prompts: the repeat-only
# soak's RSS growth in bench/RESULTS.md).
FEATURES_CACHE = 4096


@lru_cache(maxsize=FEATURES_CACHE)
def features(text: str) -> Features:
    toks = words(text)
    stems = [stem(t) for t in toks]
    joined = f" {' '.join(stems)} "
    negations = sum(t in NEGATIONS for t in toks)
    negations += sum(t in NEGATING_VERBS and nxt == "to" for t, nxt in itertools.pairwise(toks))
    numbers: set[str] = set()
    dates = set()
    units = set()
    measures: dict[str, str] = {}
    asked_unit = ""
    number_order: list[str] = []
    for i, t in enumerate(toks):
        if i and _compound(toks[i - 1], t) is not None:
            continue  # "five" of "twenty five", counted with "twenty"
        n = _number(t)
        glued_unit = ""
        if n is None and t[0].isdigit() and "," in t and not _THOUSANDS.fullmatch(t):
            listed = [_number(x) for x in t.split(",") if x]
            numbers.update(x for x in listed if x is not None)  # "1,2,3" is 1, 2 and 3
            continue
        if n is None and (glued := _GLUED.fullmatch(t)):
            value, letters = (glued[1], glued[2]) if glued[1] else (glued[4], glued[3])
            if len(letters) > 1 and letters in UNITS:  # "16gb" is "16 gb", "rs500" "500 rs"
                n, glued_unit = _number(value), UNITS[letters]
                units.add(glued_unit)
            elif letters == "k" and glued[1]:  # "60k" is 60,000
                n = str(int(float(value) * 1000))
            elif letters in _ORDINAL_SUFFIXES and value.isdigit() and glued[1]:
                if value != "1":  # "21st" is "#21"; "1st" like "first" is no rank (ORDINALS)
                    numbers.add("#" + value)
            elif glued[1] and len(letters) > 2:
                n = _number(value)  # "50mbps" is "50 mbps": a unit we do not list
            elif glued[1]:
                numbers.add(t)  # "4g" / "5g", "401k" / "403b", "3d" / "2d"
        if n is not None and i + 1 < len(toks):
            n = _compound(t, toks[i + 1]) or n
        if n is not None:
            if len(n) == 4 and n.startswith(("19", "20")):
                dates.add(n)
            else:
                numbers.add(n)
                number_order.append(n)
                unit = glued_unit or _unit_after(toks, i + 1)
                if unit:
                    measures.setdefault(n, unit)
        if t in ("many", "much") and i and toks[i - 1] == "how" and not asked_unit:
            asked_unit = _unit_after(toks, i + 1)
        elif t in ORDINALS:
            numbers.add("#" + ORDINALS[t])
        if t in MONTHS or t in WEEKDAYS:
            dates.add(t[:3])
        if t in UNITS:
            units.add(UNITS[t])
    polar: set[str] = set()
    for st in set(stems):
        for i, side in _POLAR_WORDS.get(st, ()):
            polar.add(f"{i}#{side}")
    for phrase, sides in _POLAR_PHRASES.items():
        if f" {phrase} " in joined:
            polar.update(f"{i}#{side}" for i, side in sides)
    kept = [i for i, t in enumerate(toks) if _is_content(t)]
    sequence = tuple(stems[i] for i in kept)
    raw = re.findall(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-zA-Z0-9]+)", text.strip())
    names = frozenset(
        stem(w)
        for name in raw
        for w in ALIASES.get(name.casefold(), (name.casefold(),))
        if w not in STOPWORDS and _number(w) is None  # "II" of "World War II" is a number
    )
    return Features(
        negations,
        frozenset(numbers),
        frozenset(dates),
        frozenset(units),
        frozenset(polar),
        frozenset(sequence),
        names,
        forms=frozenset(toks[i] for i in kept),
        roles=_roles(toks, stems),
        sequence=sequence,
        symmetric=not SYMMETRIC.isdisjoint(toks),
        relation=not _SYMMETRIC_RELATIONS.isdisjoint(stems),
        inverts="of" in toks,
        tasks=frozenset(LANGUAGE_TASKS[t] for t in toks if t in LANGUAGE_TASKS),
        symbols=_symbols(text),
        mood=_mood(text, toks),
        passive=_passive(toks),
        measures=measures,
        asked_unit=asked_unit,
        words=toks,
        stems=stems,
        number_order=tuple(number_order),
        operation=not NONCOMMUTATIVE.isdisjoint(toks) or any(c in text for c in "/^÷−"),
        code=_code_tokens(text),
        quoted=tuple(tuple(words(q)) for q in QUOTED_SPAN.findall(text)),
        swap_form=_swap_form(toks, stems),
        **_tense_parts(toks, stems),
        **_wh_parts(toks, stems),
    )


_CODE_CHARS = frozenset("()[]{}<>=_^*/\\|&$#@~+!")
# spaces after a comma or bracket before a digit or bracket: "len([1, 2, 3])"
_CODE_SPACE = re.compile(r"(?<=[\d()\[\]{},])\s+(?=[\d()\[\]{}])")
# a short operand at a token's end or start: a number ("2", "2x", "3.5") or one letter,
# brackets aside ("print(2", "3)")
_OPERAND_END = re.compile(r"(?:^|[^\w.])(?:\d[\d.]*[a-zA-Z]?|[a-zA-Z])[)\]}]*$")
_OPERAND_START = re.compile(r"^[(\[{]*(?:\d[\d.]*[a-zA-Z]?|[a-zA-Z])(?![\w.])")


def _closed_up(text: str) -> list[str]:
    """The whitespace tokens of ``text`` with code written without its spaces: an operator
    standing between two short operands joined to them ("print(2 ** 3)", "2x + 3 = 11", "x
    += 1"), spaces after commas in brackets dropped ("len([1, 2, 3])"); operators between
    words stay apart ("between == and ===")."""
    toks = _CODE_SPACE.sub("", text).split()
    out: list[str] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        operator = not any(c.isalnum() for c in t) and not set(t) <= _PROSE_ONLY
        between = out and i + 1 < len(toks) and _OPERAND_END.search(out[-1])
        if operator and between and _OPERAND_START.search(toks[i + 1]):
            out[-1] += t + toks[i + 1]
            i += 2
            continue
        out.append(t)
        i += 1
    return out


_SUM_OR_PRODUCT = re.compile(r"(\d[\d.]*)([+*×])(\d[\d.]*)")
_PROSE_ONLY = frozenset("?!.,;:\"'“”‘’`")
_PROSE_SLASH = re.compile(r"[^\W\d_]+(?:/[^\W\d_]+)+")  # words joined by slashes
_MONEY = re.compile(r"\$?[\d.,]+\$?")
_TOKEN_QUOTES = "\"'“”‘’«»„「」『』`"


def _code_tokens(text: str) -> tuple[str, ...]:
    """The tokens of ``text`` that mix characters of code with letters or digits ("2**3",
    "s[::2]", "x++", "head~3"), case folded and sorted; quotes, a trailing mark or "=" and
    prose brackets ("(in India)") left out. An operator standing alone ("12 * 12", "== and
    ===") is prose's business (``_symbols``): spacing is no difference."""
    out = []
    for raw in _closed_up(unicodedata.normalize("NFKC", text)):
        w = raw.strip(_TOKEN_QUOTES).rstrip("?.,;:!").strip(_TOKEN_QUOTES).rstrip("=")
        if w.count("(") != w.count(")"):
            w = w.removeprefix("(").removesuffix(")")
        elif w.startswith("(") and w.endswith(")") and w[1:-1].isalpha():
            w = w[1:-1]  # a word in brackets
        if not any(c in _CODE_CHARS for c in w) or not any(c.isalnum() for c in w):
            continue
        if _PROSE_SLASH.fullmatch(w) or _MONEY.fullmatch(w):
            continue  # "gay/lesbian", "Lab/Pitbull"; "$1000" / "1000$" (the units' business)
        if m := _SUM_OR_PRODUCT.fullmatch(w):  # "2+3" is "3+2"
            w = m[2].join(sorted((m[1], m[3])))
        out.append(w.casefold().replace("'", '"'))  # print('a') is print("a")
    return tuple(sorted(set(out)))


QUOTED_WORDS = 3  # _literals_differ: the longest quoted text held to its words


def _literals_differ(fa: Features, fb: Features) -> bool:
    """Both sides write code, or both quote text, and not the same: "What is 2**3 in
    Python?" / "What is 2*3 in Python?", "What does s[::2] do?" / "s[2::]", "2>&1" / "1>&2",
    'letters in "banana"' / '"bananas"', 'Is "affect" a verb?' / '"effect"' (a trial was
    served all of these, pair scores 0.93-0.99). A quoted text is the same where its words
    stand together on the other side, quoted or not ('TypeError: \'NoneType\' …' / 'what does
    "TypeError: \'NoneType\' …" mean'). One side without code (a formula against its words:
    "x^2" / "x squared") is left to the models."""
    if fa.code and fb.code and fa.code != fb.code:
        return True
    # a short quoted text is the object of the question ('"banana"'); a long one may be
    # quoted in other words ('"we live in a simulation"' / '"we are living in a simulation"')
    qa = [q for q in fa.quoted if len(q) <= QUOTED_WORDS]
    qb = [q for q in fb.quoted if len(q) <= QUOTED_WORDS]
    if not (qa and qb):
        return False
    return not all(_within(q, fb.words) for q in qa) or not all(_within(q, fa.words) for q in qb)


def _within(part: tuple[str, ...], whole: list[str]) -> bool:
    """Whether the words ``part`` stand together, in order, in ``whole``."""
    n = len(part)
    return any(tuple(whole[i : i + n]) == part for i in range(len(whole) - n + 1))


def _symbols(text: str) -> frozenset[str]:
    """The words of ``text`` made of symbols alone, operators and arguments ("??", "?.",
    "--", "=="), typographic quotes as the keyboard's; punctuation that stands alone in prose
    (``_PROSE_MARKS``) is left out, but not between two operands ("10 / 3", "a - b": an
    operator, which "10 // 3" and "a + b" are not the same as)."""
    words_ = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHIC).split()
    if words_ and len(words_[-1]) > 1 and words_[-1][-1] in "?？":
        words_[-1] = words_[-1][:-1]  # the question's mark: "how does == differ from ===?"
    words_ = [w.rstrip(",;").strip("`") or w for w in words_]  # `==` is ==
    out = set()
    for i, w in enumerate(words_):
        if any(c.isalnum() for c in w):
            continue
        operands = 0 < i < len(words_) - 1 and _operand(words_[i - 1]) and _operand(words_[i + 1])
        if w not in _PROSE_MARKS or (operands and w in "/-"):
            out.add(w)
    return frozenset(out)


def _operand(word: str) -> bool:
    """A number or a one-letter variable ("10", "3.5", "a", "x?"): what an operator joins."""
    w = word.rstrip("?.!")
    return bool(w) and (w.replace(".", "", 1).isdigit() or (len(w) == 1 and w.isalpha()))


def _turned_around(a: str, b: str, fa: Features, fb: Features) -> bool:
    """A yes/no question and the same words as a statement without its full stop: "Do
    vaccines cause autism?" / "Vaccines cause autism", "Is Python slow?" / "Python is slow"
    (the words but the auxiliaries agree; the statement opens with no auxiliary, question
    word or request)."""
    for fq, t, ft in ((fa, b, fb), (fb, a, fa)):
        if (
            fq.mood in ("question", "request")
            and not t.rstrip().endswith(("?", "？"))
            and fq.untensed == ft.untensed
        ):
            return bool(ft.words) and ft.words[0] not in question_openers()
    return False


def _passive(toks: list[str]) -> bool:
    """Whether a form of "be" comes before a participle ("-ed", "-en" or an irregular one):
    "How are exceptions handled", "What is glass made of"."""
    be = next((i for i, t in enumerate(toks) if t in _BE), None)
    if be is None:
        return False
    return any(
        t in PARTICIPLES or (len(t) > 4 and t.endswith(("ed", "en"))) for t in toks[be + 1 :]
    )


_SENTENCE_BREAK = re.compile(r"[.?!]\s")
_REQUEST_MODALS = frozenset(["can", "could", "would", "will"])


def _mood(text: str, toks: list[str]) -> str:
    """One sentence's mood: "question" for a yes/no question ("Is the earth flat?"),
    "statement" for a sentence ending in "." that opens with no auxiliary, question word or
    request ("The earth is flat."; ``scope.question_openers``), else "" (other questions,
    requests, fragments,
    several sentences): a statement asks for another reply (agreement, a correction) than
    the question it turns around."""
    stripped = text.strip()
    if not toks or _SENTENCE_BREAK.search(stripped):
        return ""
    if stripped.endswith("?") and toks[0] in AUXILIARIES:
        if len(toks) > 1 and toks[0] in _REQUEST_MODALS and toks[1] == "you":
            return "request"  # "Could you recommend a novel?" asks "Recommend a novel."
        return "question"
    if stripped.endswith(".") and toks[0] not in question_openers():
        return "statement"  # not a request either: "Tell me if the earth is flat."
    return ""


_PRONOUNS = frozenset(["i", "you", "we", "he", "she", "they", "it"])


def _mood_conflict(fa: Features, fb: Features) -> bool:
    """A yes/no question against a statement ("Is the earth flat?" / "The earth is flat.").
    A polite request ("Could you recommend a novel?", mood "request") is its imperative
    ("Recommend a novel.") but not a statement about someone ("You can recommend a novel.")."""
    moods = {fa.mood, fb.mood}
    if "" in moods or len(moods) == 1:
        return False
    if moods == {"request", "statement"}:
        statement = fa if fa.mood == "statement" else fb
        return bool(statement.words) and statement.words[0] in _PRONOUNS
    return "statement" in moods


def _tense_parts(toks: list[str], stems: list[str]) -> dict[str, Any]:
    """``tenses`` and ``untensed`` of ``Features``."""
    tenses: set[str] = set()
    untensed: list[str] = []
    forms: list[str] = []
    for t, st in zip(toks, stems, strict=True):
        if t in TENSES:
            tenses.add(TENSES[t])
            continue
        if t in IRREGULAR_PAST:
            tenses.add("past")
            st = stem(IRREGULAR_PAST[t])
        untensed.append(st)
        forms.append(t)
    return {
        "tenses": frozenset(tenses),
        "untensed": tuple(untensed),
        "untensed_forms": tuple(forms),
    }


_ONES = {
    "one": 1,
    **{w: int(v) for w, v in NUMBER_WORDS.items() if v.isdigit() and 1 < int(v) < 10},
}


_TENS = frozenset(str(t) for t in range(20, 100, 10))


def _compound(tens: str, ones: str) -> str | None:
    """A number written in two words: "twenty five" → "25" (None if the two are not)."""
    value = NUMBER_WORDS.get(tens)
    if value is None or ones not in _ONES or value not in _TENS:
        return None
    return str(int(value) + _ONES[ones])


def _unit_after(toks: list[str], start: int) -> str:
    """The unit named right after position ``start`` ("30 degrees Celsius": "C"; "5 km":
    "km"), a degree sign or "degrees" passed over for the scale it names; "" if none."""
    unit = ""
    for t in toks[start : start + 2]:
        if t not in UNITS:
            break
        unit = UNITS[t]
        if unit != "deg":
            break
    return unit


def _measure_conflict(fa: Features, fb: Features) -> bool:
    """The same quantity in another unit, or another unit asked for: "30 degrees Celsius in
    Fahrenheit" / "30 degrees Fahrenheit in Celsius" (30 is Celsius on one side and
    Fahrenheit on the other), "How many seconds are in an hour?" / "How many hours are in a
    second?". Rewordings that keep them pass: "Convert 5 km to miles" / "How many miles is
    5 km?", "An hour has how many seconds?"."""
    if fa.asked_unit and fb.asked_unit and fa.asked_unit != fb.asked_unit:
        return True
    shared = fa.measures.keys() & fb.measures.keys()
    return any(fa.measures[n] != fb.measures[n] for n in shared)


def _one_word_apart(fa: Features, fb: Features, groups: dict[str, int]) -> bool:
    """The two questions' words (stems) are the same but one, and the two that differ are of
    ``groups`` and of different groups ("Do all mammals lay eggs?" / "Do any mammals …")."""
    a, b = fa.stems, fb.stems
    if len(a) != len(b):
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(diff) != 1:
        return False
    x, y = fa.words[diff[0]], fb.words[diff[0]]
    return x in groups and y in groups and groups[x] != groups[y]


# words that narrow a claim when added, all else the same: "Is it safe to …?" / "Is it always
# safe to …?" (a trial was served it)
SCOPE_WORDS = frozenset(["always", "only", "solely"])  # not "ever", "exactly": emphasis


def _inserted(a: list[str], b: list[str], n: int) -> tuple[str, ...] | None:
    """The ``n`` words one of ``a``, ``b`` has in one place more than the other, all else the
    same ("is it safe" / "is it always safe": ("always",)); None if they differ otherwise."""
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    if len(long_) != len(short) + n:
        return None
    i = next((i for i, (x, y) in enumerate(zip(short, long_)) if x != y), len(short))  # noqa: B905
    return tuple(long_[i : i + n]) if short[i:] == long_[i + n :] else None


def _one_word_added(fa: Features, fb: Features, added: frozenset[str]) -> bool:
    """One side is the other with one word of ``added`` more."""
    extra = _inserted(fa.words, fb.words, 1)
    return extra is not None and extra[0] in added


def _negation_moved(fa: Features, fb: Features) -> bool:
    """The same words, a negation or a negating phrase elsewhere or added: "Why is it not
    good to sleep after eating?" / "Why is it good to not sleep …?", "get rid of acne" /
    "get acne", "is it safe" / "is it anything but safe" (a trial generated these; 0.95-0.97)."""
    a, b = fa.words, fb.words
    if len(a) == len(b) and a != b and sorted(a) == sorted(b):
        kept_a = [w for w in a if w not in NEGATIONS]
        return len(kept_a) < len(a) and kept_a == [w for w in b if w not in NEGATIONS]
    return _inserted(a, b, 2) in _NEGATING_PHRASES


_NEGATING_PHRASES = frozenset([("rid", "of"), ("anything", "but")])


def _modality_conflict(fa: Features, fb: Features) -> bool:
    """Questions that differ only in a modal, of different meanings (asking what may be, what
    is advised, what will be): "Can I take aspirin while pregnant?" / "Should I …?", "What
    would be Trump's policy?" / "What should be …?", "How would India be if …?" / "How should
    India be …?" (a trial was served these, 0.95-0.99). Not a request ("Can you share …" /
    "Will you share …" ask the same), nor how someone asking may or should do something
    ("How can I …" / "How should I …", which Quora's labels call one question)."""
    if not _one_word_apart(fa, fb, MODALS):
        return False
    i = next(i for i, (x, y) in enumerate(zip(fa.words, fb.words, strict=True)) if x != y)
    after = fa.words[i + 1 : i + 2]
    if i == 0:
        return after != ["you"]
    return not (after and after[0] in _ASKERS)


# "how can I …" / "what should I do …": what the asker may or should do is advice either way
_ASKERS = frozenset(["i", "we", "you", "one"])


def _sequence_turned(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """The same two or more numbers in another order ("10 divided by 2" / "2 divided by 10")."""
    return len(set(a)) >= 2 and sorted(a) == sorted(b) and a != b


def _tense_conflict(fa: Features, fb: Features) -> bool:
    """The same words in the same order, asked in different tenses: "Who is the king of
    England?" / "Who was …", "Who won the world cup?" / "Who will win …", "Who invented the
    telephone?" / "Who will invent …", "How many people live in Tokyo?" / "… lived …". Only
    where every other word agrees and both sides say a tense (by an auxiliary, an irregular
    past, or a verb in "-ed" against its present). Quora's labels call some such pairs one
    question ("Who is Napoleon?" / "Who was Napoleon?"): this vetoes 11 of quora_val's 4,522
    duplicates and 4 of its 7,607 non-duplicates (bench/RESULTS.md)."""
    if fa.untensed != fb.untensed:
        return False
    ta, tb = set(fa.tenses), set(fb.tenses)
    for x, y in zip(fa.untensed_forms, fb.untensed_forms, strict=True):
        if x == y or x.endswith("ed") == y.endswith("ed"):
            continue
        # a verb in "-ed" against its present: "Who invented ..." / "Who will invent ...";
        # after an auxiliary it is a participle ("How are rainbows formed?" / "do … form")
        ed, ed_tenses, plain_tenses = (fa, ta, tb) if x.endswith("ed") else (fb, tb, ta)
        if not ed.tenses:
            ed_tenses.add("past")
            if not plain_tenses:
                plain_tenses.add("present")
    return bool(ta) and bool(tb) and ta != tb


def _wh_parts(toks: list[str], stems: list[str]) -> dict[str, Any]:
    """``wh``, ``wh_rest``, ``wh_determiner`` and ``superlative`` of ``Features`` (none
    unless the question opens with one of ``WH_PRONOUNS``)."""
    if len(toks) < 3 or (toks[0] not in WH_PRONOUNS and toks[0] not in AUXILIARIES):
        return {}  # a question word for a subject or object, or a yes/no question's verb
    # auxiliaries and articles come and go; an adverb may stand anywhere ("quickly")
    # an irregular past as its present: "which company bought Instagram" / "which company did
    # Instagram buy" (a trial's finding: 0.917, let through)
    rest = tuple(
        stem(IRREGULAR_PAST[t]) if t in IRREGULAR_PAST else st
        for t, st in zip(toks[1:], stems[1:], strict=True)
        if t not in AUXILIARIES
        and t not in ARTICLES
        and not (len(t) > 4 and t.endswith("ly"))
        and not t[0].isdigit()  # numbers' order is the operations' business
    )
    # "what colour is the sky", "which credit card is the best": the question word and its
    # noun are the complement of "is"
    first_aux = next((t for t in toks[1:] if t in AUXILIARIES), "")
    determiner = toks[1] not in AUXILIARIES and first_aux in ("is", "are", "was", "were")
    superlative = any(t in SUPERLATIVES or (len(t) > 5 and t.endswith("est")) for t in toks)
    return {"wh": toks[0], "wh_rest": rest, "wh_determiner": determiner, "superlative": superlative}


def _affix_bases(word: str) -> list[str]:
    """The words that ``word`` negates by a negating affix ("unlikely" → "likely",
    "harmless" → "harm"); roots keep at least 3 letters."""
    out = [word[len(p) :] for p in NEGATING_PREFIXES if word.startswith(p)]
    out += [word[: -len(s)] for s in NEGATING_SUFFIXES if word.endswith(s)]
    return [w for w in out if len(w) >= 3]


def _affix_opposites(word: str) -> list[str]:
    """The words with the paired opposite affix ("overclock" → "underclock", "encode" →
    "decode", "employer" → "employee"); roots keep at least 3 letters."""
    out = []
    for p, q in PAIRED_PREFIXES:
        for a, b in ((p, q), (q, p)):
            if word.startswith(a) and len(word) - len(a) >= 3:
                out.append(b + word[len(a) :])
    for p, q in PAIRED_SUFFIXES:
        for a, b in ((p, q), (q, p)):
            if word.endswith(a) and len(word) - len(a) >= 3:
                out.append(word[: -len(a)] + b)
    return out


def _unit_conflict(a: frozenset[str], b: frozenset[str]) -> bool:
    """Both sides name units of one dimension, and not the same ones ("5 km" / "5 miles").
    A unit on one side only is no conflict: "under 15000" and "under 15000 INR" ask the
    same, and a number that differs is the number guard's business."""

    def of(units: frozenset[str], dim: str) -> set[str]:
        return {u for u in units if UNIT_DIMENSIONS.get(u, u) == dim}

    dims = {UNIT_DIMENSIONS.get(u, u) for u in a} & {UNIT_DIMENSIONS.get(u, u) for u in b}
    return any(of(a, dim) != of(b, dim) for dim in dims)


@dataclass(frozen=True)
class AffixFlips:
    negated_a: int  # words of side a that negate a word of side b by an affix ("unlikely")
    negated_b: int
    paired: bool  # a word pair with opposite paired affixes ("overclock"/"underclock")


def _affix_flips(fa: Features, fb: Features) -> AffixFlips:
    """Content words of one side only that are the opposite, by affix, of a content word of
    the other side only; checked on the words as written and on their stems. A negating
    affix counts as a negation of its side, so "if not refrigerated" and "unrefrigerated"
    agree while "likely" and "unlikely" do not."""
    only_a = (fa.forms - fb.forms) | (fa.content - fb.content)
    only_b = (fb.forms - fa.forms) | (fb.content - fa.content)
    stems = fa.content | fb.content

    def key(w: str) -> str:  # a word and its stem count once
        return w if w in stems else stem(w)

    def negated(side: set[str] | frozenset[str], other: set[str] | frozenset[str]) -> set[str]:
        """Bases (on ``other``) of the words of ``side`` that negate them by an affix."""
        return {key(base) for w in side for base in _affix_bases(w) if base in other}

    paired = any(o in only_b for w in only_a for o in _affix_opposites(w))
    return AffixFlips(len(negated(only_a, only_b)), len(negated(only_b, only_a)), paired)


def _role_swap(fa: Features, fb: Features) -> bool:
    """After the same directional word each side names what the other names before it: the
    roles are swapped ("from London to Paris" / "from Paris to London", "is X faster than Y"
    / "is Y faster than X", "convert a string to an int" / "an int to a string"), while a
    mere reordering ("the best way to learn programming" / "learn to program") is not."""
    pairs_a = {(d, x) for d, x, _ in fa.roles}
    pairs_b = {(d, x) for d, x, _ in fb.roles}
    for d, xa, before_a in fa.roles:
        if (d, xa) in pairs_b:  # the other side has this role too: not swapped
            continue
        for d2, xb, before_b in fb.roles:
            swapped = xa != xb and xa in before_b and xb in before_a
            if d == d2 and swapped and (d, xb) not in pairs_a:
                return True
    return False


def _transposed(fa: Features, fb: Features) -> bool:
    """The same content words, with two of them exchanged around at least one that stays in
    place: subject and object swapped ("can a landlord sue a tenant" / "can a tenant sue a
    landlord"). Two neighbours trading places ("capital of France" / "France's capital"), a
    word moved elsewhere ("learn Python quickly" / "quickly learn Python"), things joined by
    "and" or "or", compounds inverted by "of", and sentences with directional words
    (``_role_swap``) are left alone."""
    a, b = fa.sequence, fb.sequence
    if len(a) != len(b) or len(a) < 3 or sorted(a) != sorted(b):
        return False
    if fa.roles or fb.roles:  # directional words: _role_swap judges those
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(diff) != 2:
        return False
    i, j = diff
    if j - i < 2 or a[i] != b[j] or a[j] != b[i]:
        return False
    # "X and Y", "X or Y", "X vs Y", "between X and Y": the order carries no role; nor in
    # "the surface of the sun" / "the sun's surface is how hot" ("of" inverts compounds)
    return not (fa.symmetric and fb.symmetric) and not (fa.inverts or fb.inverts)


_WH_WORDS = frozenset(["how", "what", "which", "who", "whom", "whose", "where", "when", "why"])
# words between two exchanged blocks that leave their order without a role: "Python or Java",
# "2 plus 3", "between London and Paris" (SYMMETRIC), "2 times 3"
_COMMUTATIVE = frozenset(["plus", "times", "multiplied", "added", "+", "*", "x", "×", "&"])
_SWAP_DROPPED = frozenset(["one", "all", "every", "each"])
_KIND = {"type": "kind", "types": "kind", "sort": "kind", "sorts": "kind", "kinds": "kind"}
# relations that hold both ways: two things exchanged around them ask the same (a trial's
# paraphrases: "Is baking soda the same as baking powder?", "Are tomatoes related to potatoes?")
_SYMMETRIC_RELATIONS = frozenset(
    stem(w)
    for w in ["same", "similar", "related", "equal", "equivalent", "identical", "different",
              "compatible", "married", "alike", "unlike"]
)  # fmt: skip
_JOINING_STEMS = frozenset(stem(w) for w in SYMMETRIC | _COMMUTATIVE)
SWAP_WINDOW = 16  # _blocks_exchanged: the longest differing stretch it judges


def _swap_form(toks: list[str], stems: list[str]) -> tuple[str, ...]:
    """The stems of a text as swaps are judged on: articles, "one" and quantifiers left out,
    forms of "be" as one, irregular plurals and pasts as their base ("teeth" → "tooth",
    "taught" → "teach"), "type" / "sort" as "kind"; so "How many cups are in a gallon?" /
    "How many gallons are in one cup?" and "Is a whale a type of fish?" / "Is a fish a kind
    of whale?" are swaps (a trial was served both)."""
    out = []
    for t, st in zip(toks, stems, strict=True):
        if t in ARTICLES or t in _SWAP_DROPPED:
            continue
        if t in _BE:
            out.append("be")
        elif t in ("do", "does"):
            out.append("do")  # "How does inflation affect rates?" / "How do rates affect …"
        else:
            base = IRREGULAR_PLURALS.get(t) or IRREGULAR_PAST.get(t) or _KIND.get(t)
            out.append(stem(base) if base else st)
    return tuple(out)


def _blocks_exchanged(fa: Features, fb: Features) -> bool:
    """One side's words are the other's with two blocks exchanged around words that stay in
    place, articles aside: "How many cups are in a gallon?" / "… gallons … in a cup?", "3pm
    EST in PST" / "3pm PST in EST", "get from Boston to New York" / "get to Boston from New
    York", "pay off debt before investing" / "invest before paying off debt", "2 raised to 3"
    / "3 raised to 2" (a trial served all of these, pair scores 0.94-0.99). Not when the words
    between them join things whose order carries no role ("Python or Java", "2 plus 3",
    "between A and B") or are only "is" beside a question word ("the speed of light is how
    fast" / "how fast is the speed of light"), nor when the blocks carry their directional
    words along and each still names what it named ("fly from Rome to Oslo cheaply" / "fly
    cheaply to Oslo from Rome"), nor two neighbours trading places ("capital of France" /
    "France's capital" differ in more than order anyway)."""
    a, b = fa.swap_form, fb.swap_form
    if a == b or len(a) != len(b) or sorted(a) != sorted(b):
        return False
    start = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    end = len(a) - next(i for i, (x, y) in enumerate(zip(a[::-1], b[::-1], strict=True)) if x != y)
    wa, wb = a[start:end], b[start:end]
    if len(wa) > SWAP_WINDOW:
        return False
    if len(wa) == 2 and fa.mood == fb.mood == "question":
        # two words of a yes/no question trading places: "Are all squares rectangles?" /
        # "Is every rectangle a square?" (0.92, served)
        return _STOPWORD_STEMS.isdisjoint(wa)
    roles_kept = {r[:2] for r in fa.roles} == {r[:2] for r in fb.roles}
    for x in range(1, len(wa) - 1):
        for y in range(1, len(wa) - x):
            first, middle, last = wa[:x], wa[x : len(wa) - y], wa[len(wa) - y :]
            if wb != last + middle + first:
                continue
            copula = set(middle) <= AUXILIARIES and bool({first[0], last[0]} & _WH_WORDS)
            carried = roles_kept and not DIRECTIONAL.isdisjoint(first + last)
            # "Python or Java", "6 multiplied by 9" (stems: "multipli"); not "and" joining
            # clauses ("John has 3 apples and gives Mary 2")
            joined = len(middle) <= 2 and not _JOINING_STEMS.isdisjoint(middle)
            return not (copula or carried or joined)
    return False


def _sentence_changed(a: str, b: str) -> bool:
    """A sentence beside one both texts share says something else, or stands on one side
    only: a template with its context or its instruction changed or added asks something
    else ("I am vegetarian. What should I eat for dinner?" / "I am vegan. …", "What is the
    capital of Italy? Answer in one word." / "… Answer in detail.", "What is DNA?" / "What is
    DNA? Give the answer as JSON.": a trial was served all of these, pair scores 0.95-0.98,
    the shared sentence outweighing the other). Sentences moved around, changed only in small
    words and endings ("the journal" / "a journal", "need" / "needed"), or a greeting or
    thanks added, are no change; a changed or added *question* is left to the models (it may
    be a paraphrase: "What is their main job?" / "What are their functions?")."""
    sa, sb = _sentences(a), _sentences(b)
    if len(sa) + len(sb) < 3 or abs(len(sa) - len(sb)) > 1 or set(sa).isdisjoint(sb):
        return False
    changed_a = [x for x in sa if x not in sb]
    changed_b = [x for x in sb if x not in sa]
    if any(q for _, q in changed_a + changed_b):
        return False
    if len(sa) != len(sb) and (changed_a if len(sa) < len(sb) else changed_b):
        return False  # not one sentence added, the rest reworded across sentences

    def content(changed: list[tuple[tuple[str, ...], bool]]) -> set[str]:
        stems = (stem(w) for ws, _ in changed for w in ws if _is_content(w))
        return {st for st in stems if st not in _STOPWORD_STEMS}  # "needed" as "need"

    added = content(changed_a) ^ content(changed_b)
    return bool(added) and not added <= _COURTESY_STEMS


_COURTESY_STEMS = frozenset(
    stem(w)
    for w in [
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "please",
        "pls",
        "cheers",
        "good",
        "morning",
        "afternoon",
        "evening",
    ]
)


@lru_cache(maxsize=FEATURES_CACHE)
def _sentences(text: str) -> tuple[tuple[tuple[str, ...], bool], ...]:
    """The sentences of ``text`` (split after ``.?!``, a space and a capital): each as its
    words, and whether it is a question (ends in "?")."""
    parts = _SENTENCE_BREAK_KEEP.split(text.strip())
    return tuple((tuple(w), part.rstrip().endswith("?")) for part in parts if (w := words(part)))


# a sentence ends at ".?!" before a space and a capital, a digit does not start one ("0! 1?")
_SENTENCE_BREAK_KEEP = re.compile(r"(?<=[.?!])\s+(?=[A-Z\"'“(])")


def _wh_swapped(fa: Features, fb: Features) -> bool:
    """Both ask "what" (or "who", "which") of the same words, but the question word is the
    subject on one side and the object on the other: after the question word (and its own
    noun, "which team"), one side's words are the other's in two blocks exchanged ("what does
    inflation cause" / "what causes inflation", "what is glass made of" / "what is made of
    glass", "which team did Brazil beat" / "which team beat Brazil"). Left to the models: a
    passive with "by" ("what is caused by inflation": a word more), a question word that asks
    "which thing" of "is" ("what colour is the sky" / "what is the sky colour"), a
    superlative ("which country has the most people" / "which is the most populous
    country"), one small word moved ("what is dating in Australia like" / "like in
    Australia"), an adverb moved ("learn Python quickly" / "quickly learn Python"), things
    joined by "and" or "or", and reorderings of more than ``WH_SWAP_WORDS`` words."""
    if not fa.wh or fa.wh != fb.wh or fa.wh_determiner or fb.wh_determiner:
        return False
    if fa.superlative or fb.superlative or (fa.symmetric and fb.symmetric):
        return False
    a, b = fa.wh_rest, fb.wh_rest
    if a == b or len(a) != len(b) or sorted(a) != sorted(b):
        return False
    shared = 1 if a[0] == b[0] else 0  # the question word's own noun: "which team"
    a, b = a[shared:], b[shared:]
    while a and a[-1] == b[-1]:  # what follows alike: "who beat Brazil in the 2002 final"
        a, b = a[:-1], b[:-1]
    if len(a) > WH_SWAP_WORDS:
        return False
    for cut in range(1, len(a)):
        if b == a[cut:] + a[:cut]:
            blocks = (a[:cut], a[cut:])
            return not any(len(x) == 1 and x[0] in _STOPWORD_STEMS for x in blocks)
    return False


@dataclass(frozen=True)
class Comparison:
    conflicts: tuple[str, ...]  # hard vetoes, by name
    novel_words: int  # content words of either side with no counterpart in the other
    content_overlap: float  # Jaccard of stemmed content words

    @property
    def ok(self) -> bool:
        return not self.conflicts


_FACTORIAL = re.compile(r"\d+!(?!=)")
_SPACES = re.compile(r"\s+")


def _model_view(text: str) -> str:
    """The text as the uncased embedder and pair model read it: compatibility characters
    folded (NFKC: "x²" reads as "x2"), case folded, whitespace runs as one space, a trailing
    ``?!.`` dropped."""
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return text.rstrip("?!. ")


def _lowercase_typist(a: str, b: str, ca: str, cb: str) -> bool:
    """Whether the exact forms ``ca``, ``cb`` differ only in the case of prose words and one
    side is typed without any capital, so its case says nothing ("what is dna" / "What is
    DNA?", "... on windows" / "... on Windows"): there the models decide, under the
    verifier's bound. Not for quoted text, code or a question about its own form, whose case
    counts even when typed in lower case."""
    if ca.lower() != cb.lower() or (any(c.isupper() for c in a) and any(c.isupper() for c in b)):
        return False
    return not (literal_spans(a) or literal_spans(b) or about_form(a) or about_form(b))


def _blind_spot(a: str, b: str) -> bool:
    """The sides differ where the models cannot see it, so their scores say nothing about it:
    the texts read the same to the models but not as exact questions (``canonical_query``:
    the case or spacing of quoted text or code, "x²" / "x2", "5!" / "5"), or a quoted text of
    one side differs from one of the other only in case or spacing ('print("Hi")' /
    'print("hi")' in otherwise different wordings)."""
    ca, cb = canonical_query(a), canonical_query(b)
    if ca != cb and _model_view(a) == _model_view(b) and not _lowercase_typist(a, b, ca, cb):
        return True
    qa, qb = set(QUOTED_SPAN.findall(a)), set(QUOTED_SPAN.findall(b))
    fold = {_model_view(q) for q in qa - qb}
    return any(_model_view(q) in fold for q in qb - qa)


def compare(a: str, b: str) -> Comparison:
    fa, fb = features(a), features(b)
    conflicts: list[str] = []
    if _blind_spot(a, b):
        conflicts.append("literal")
    flips = _affix_flips(fa, fb)
    if fa.negations + flips.negated_a != fb.negations + flips.negated_b or _negation_moved(fa, fb):
        conflicts.append("negation")
    if fa.numbers != fb.numbers or set(_FACTORIAL.findall(a)) != set(_FACTORIAL.findall(b)):
        conflicts.append("number")
    if fa.dates != fb.dates:
        conflicts.append("date")
    if _unit_conflict(fa.units, fb.units):
        conflicts.append("unit")
    opposite = {p.split("#")[0] for p in fa.polar} & {p.split("#")[0] for p in fb.polar}
    for pair in opposite:
        sa = {p for p in fa.polar if p.startswith(pair + "#")}
        sb = {p for p in fb.polar if p.startswith(pair + "#")}
        if sa != sb:
            conflicts.append("polarity")
            break
    if flips.paired and "polarity" not in conflicts:
        conflicts.append("polarity")
    symbols = bool(fa.symbols and fb.symbols and fa.symbols != fb.symbols)
    if (symbols or _literals_differ(fa, fb)) and "literal" not in conflicts:
        conflicts.append("literal")  # "what does the ?? operator do" / "the ?. operator"
    if _mood_conflict(fa, fb) or _turned_around(a, b, fa, fb):
        conflicts.append("mood")  # "Is the earth flat?" / "The earth is flat."
    if _tense_conflict(fa, fb):
        conflicts.append("tense")
    if _modality_conflict(fa, fb):
        conflicts.append("modality")  # "Can I take aspirin …?" / "Should I take aspirin …?"
    if _one_word_apart(fa, fb, QUANTIFIERS):
        conflicts.append("quantity")  # "Do all mammals lay eggs?" / "Do any mammals …?"
    if _one_word_apart(fa, fb, CONTRASTS) or _one_word_added(fa, fb, SCOPE_WORDS):
        conflicts.append("contrast")  # "Who will be the next / current president?"
    if fa.tasks and fb.tasks and fa.tasks.isdisjoint(fb.tasks):
        conflicts.append("task")  # "how do you spell X" / "how do you pronounce X"
    # a passive turns subject and object around by itself: "How are exceptions handled in
    # C++?" / "How does C++ handle exceptions?"
    turned = fa.passive != fb.passive
    if fa.relation and fb.relation:
        pass  # "Is a yam the same as a sweet potato?" / "Is a sweet potato the same as a yam?"
    elif _role_swap(fa, fb) or (not turned and (_transposed(fa, fb) or _wh_swapped(fa, fb))):
        conflicts.append("order")
    elif fa.operation and fb.operation and _sequence_turned(fa.number_order, fb.number_order):
        conflicts.append("order")  # an operation the other way round: "10 divided by 2"
    elif _blocks_exchanged(fa, fb):
        conflicts.append("order")  # "How many cups are in a gallon?" / "… gallons … cup?"
    if _sentence_changed(a, b):
        conflicts.append("context")  # "I am vegetarian. What …?" / "I am vegan. What …?"
    if _measure_conflict(fa, fb) and "unit" not in conflicts:
        conflicts.append("unit")  # a conversion the other way round
    names_a, names_b = fa.names - fb.content, fb.names - fa.content
    if names_a and names_b:
        conflicts.append("entity")
    union = fa.content | fb.content
    overlap = len(fa.content & fb.content) / len(union) if union else 1.0
    novel = len(fa.content ^ fb.content)
    return Comparison(tuple(conflicts), novel, overlap)
