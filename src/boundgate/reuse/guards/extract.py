"""What a question asserts (``Features``), read once per text and cached: negations, numbers,
dates, units, antonym sides, names, roles, tense, mood, code and quoted text."""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from ..scope import QUOTED_SPAN, capitonyms
from .blocks import _SYMMETRIC_RELATIONS, _swap_form
from .lexicon import (
    _ANTONYMS,
    _GLUED,
    _LISTS,
    _ORDINAL_SUFFIXES,
    ALIASES,
    ANSWER_LEVELS,
    DEVICE_ACTIONS,
    DIRECTIONAL,
    DISH_ASPECTS,
    DISH_PAIRING,
    DISH_PAIRING_PHRASES,
    IRREGULAR_GRADES,
    LANGUAGE_TASKS,
    MAX_ROLES,
    MONTHS,
    NEGATING_VERBS,
    NEGATIONS,
    NONCOMMUTATIVE,
    NUMBER_WORDS,
    OFFICES,
    ORDINALS,
    RANKED_MEASURES,
    STOPWORDS,
    SUBJECT_PRONOUNS,
    SYMMETRIC,
    TECH_NAMES,
    TECH_SYMBOL_NAMES,
    TECH_SYMBOLS,
    UNITS,
    WEEKDAYS,
    WORK_ASPECTS,
    is_superlative,
    stem,
    words,
)
from .literals import _code_tokens, _symbols
from .order import _wh_parts
from .wording import _compound, _mood, _passive, _tense_parts, _unit_after


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
    # a length unit's power written as a word, as its glued form ("square meters": "m2"),
    # among ``numbers`` where the other side writes a unit's power too (``_numbers_differ``)
    powers: frozenset[str] = frozenset()
    # (directional word, stem after it, stems of the 3 content words before it): _roles
    roles: frozenset[tuple[str, str, frozenset[str]]] = field(default_factory=frozenset)
    # a question opening with a question word for a subject or object (``WH_PRONOUNS``): that
    # word, then the stems after it without auxiliaries and articles (``_wh_swapped``)
    wh: str = ""
    wh_rest: tuple[str, ...] = ()
    wh_determiner: bool = False  # the question word asks "which thing": "what colour is it"
    superlative: bool = False  # "most", "best", "largest": "which is the largest X"
    tasks: frozenset[int] = field(default_factory=frozenset)  # ``LANGUAGE_TASKS`` groups named
    offices: frozenset[int] = field(default_factory=frozenset)  # ``OFFICES`` groups named
    aspects: frozenset[int] = field(default_factory=frozenset)  # ``DISH_ASPECTS`` groups
    actions: frozenset[int] = field(default_factory=frozenset)  # ``DEVICE_ACTIONS`` groups
    # ``RANKED_MEASURES`` groups a question asking for the top names ("largest population")
    ranked: frozenset[int] = field(default_factory=frozenset)
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
    # the stems of a place or time put first ("In Europe, which river is the longest?")
    fronted: frozenset[str] = frozenset()
    # (possessor, possessed) stems: "my wife's boss" → ("wife", "boss"): _possessives_swapped
    possessives: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    # (member of ``polar``, index in ``words``) for each word naming one (phrases and switch
    # poles left out): ``conflicts._pole_added``
    polar_at: tuple[tuple[str, int], ...] = ()
    # the levels an answer is asked at (``ANSWER_LEVELS``): "in simple terms" is "basic"
    levels: frozenset[str] = field(default_factory=frozenset)
    # stems of lower-case nouns right after an article and before a function word or the
    # end ("a python?", "the apple."), and of words in title case after a sentence's first
    # and no article (not "CSV", nor "the Earth"): the same word both ways is a common noun
    # and a name (``_name_made_common``)
    common: frozenset[str] = field(default_factory=frozenset)
    titled: frozenset[str] = field(default_factory=frozenset)
    letters: frozenset[str] = field(default_factory=frozenset)  # ``letter_names``


def _phrase_stems(phrase: str) -> str:
    return " ".join(stem(w) for w in phrase.split())


# antonym pairs keyed by their stemmed form, so "enabling"/"disabled" match enable/disable
def _graded(word: str) -> list[str]:
    """A one-word antonym with its comparative and superlative (high → higher, highest;
    big → bigger; easy → easier; far → farther, further: ``IRREGULAR_GRADES``), so every
    grade of a pair is opposed. (Not adverbs: "largely", "lately" and "hardly" mean something
    else.)"""
    if word in IRREGULAR_GRADES:
        return [word, *IRREGULAR_GRADES[word]]
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


# pairs that all say a thing is switched on or off: a side of one opposes the other side of
# any ("enable dark mode on my iPhone" / "turn off dark mode on my iPhone", "disable
# comments" / "turn comments on"), counted as the pair "sw" (a re-check: with "on my
# iPhone" read as a preposition nothing else opposed them)
_SWITCHES = (
    ("on", "off"),
    ("enable", "disable"),
    ("activate", "deactivate"),
    ("turn on", "turn off"),
)
_SWITCH_IDS = frozenset(str(i) for i, pair in enumerate(_ANTONYMS) if pair in _SWITCHES)


# comparatives that are also verbs, and the words before them that make them one: "how to
# lower my blood pressure" / "reduce high blood pressure" asked one thing (a trial's
# over-veto read "lower" as the low side of high / low)
_COMPARATIVE_VERBS = frozenset(["lower"])
_VERB_LEADS = frozenset(
    ["to", "can", "could", "should", "must", "will", "would", "i", "you", "we", "they", "help"]
)


def _comparative_as_verb(toks: list[str], at: int) -> bool:
    """Whether ``toks[at]`` is a comparative used as a verb ("to lower", "can I lower")."""
    return toks[at] in _COMPARATIVE_VERBS and at > 0 and toks[at - 1] in _VERB_LEADS


# "far" after these asks or qualifies, it is no side of near / far: "how far is the nearest
# hospital" / "the closest hospital", "so far", "by far the best", "as far as I know"
_FAR_NOT_DISTANT = frozenset(["how", "so", "by", "as", "thus"])

# "over" after these is the visit, no side of over / under: "my cat hides under the bed when
# guests come over" / "… whenever visitors come" (a trial's paraphrase, vetoed)
_COME = frozenset(["come", "comes", "came", "coming"])

_ASKERS = frozenset(["me", "us"])
_PLEASE = frozenset(["please", "pls", "plz"])


def _help_asked(toks: list[str], at: int) -> bool:
    """Whether ``toks[at]`` is "help" asked of the one addressed, no side of help / hurt:
    "could you help me understand whether checking my rate would hurt my score", "help me
    figure out …", "please help us …" (a blind trial's paraphrase of "does checking my rate
    hurt my credit score", vetoed for it). "Does walking help me lose weight" keeps it: the
    helper there is no "you"."""
    if toks[at] != "help" or at + 1 >= len(toks) or toks[at + 1] not in _ASKERS:
        return False
    return at == 0 or toks[at - 1] == "you" or toks[at - 1] in _PLEASE


_GREETED = frozenset(["morning", "afternoon", "evening", "day"])
_GREETINGS = frozenset(["hi", "hello", "hey", "and", "a", "very"])


def _greeting(toks: list[str], at: int) -> bool:
    """Whether ``toks[at]`` is the "good" of a greeting that opens the text, "Good
    afternoon, …", "Hi, good morning …" (a blind trial's polite paraphrase read it against
    the other side's "bad weather"). "Is Monday a good day to …" keeps it."""
    return (
        toks[at] == "good"
        and at + 1 < len(toks)
        and toks[at + 1] in _GREETED
        and all(t in _GREETINGS for t in toks[:at])
    )


# "on" / "off" before a word that starts a noun phrase is a preposition ("location tracking
# on an Android phone", "location services on iphone": a blind trial's over-vetoes against
# "disable" / "turn off"), unless a verb that takes it as its particle comes first ("turn on
# the lights"); before these, or last, it is the state ("is the oven on?", "keep my phone on
# at night", "on or off"). A preposition is a side of its own pair: "on wifi" / "off wifi",
# "on-page" / "off-page" still oppose each other, and no longer "turn off" (``_placed``)
_ON_STATE_NEXT = frozenset(
    "or and at during while when whenever if for in overnight all after before until with "
    "because so but then too now yet still by from via to on off using through into onto "
    "within without inside across over under about again automatically completely "
    "permanently temporarily manually immediately forever please pls right instead".split()
)


def _verb_forms(bases: str, irregular: str = "") -> frozenset[str]:
    """Each base verb with its -s, -ed and -ing forms made by rule (a final "e" dropped, a
    short verb's last consonant doubled, "y" after a consonant made "ie"), and ``irregular``
    forms as given (a regular form that is no word, "cutted", is harmless)."""
    out = set(irregular.split())
    for v in bases.split():
        short = len(v) <= 4 and v[-1] not in "aeiouwy" and v[-2] in "aeiou" and v[-3] not in "aeiou"
        stem = v[:-1] if v.endswith("e") else v + v[-1] if short else v
        if v.endswith("y") and v[-2] not in "aeiou":  # carry: carries, carried
            out |= {v, v[:-1] + "ies", v[:-1] + "ied", v + "ing"}
            continue
        out |= {v, v + ("es" if v.endswith(("sh", "ch", "x", "s")) else "s"), stem + "ing"}
        out.add(v + "d" if v.endswith("e") else stem + "ed")
    return frozenset(out)


# verbs that take "on" / "off" as their particle ("turn off the lights", "shut off the water")
_ON_PARTICLE_VERBS = _verb_forms(
    "turn switch put leave keep log sign power toggle flip try get shut cut pay take call kick "
    "show set wear cool drop pull write tip fend ward scrape wipe clean peel rinse wash pinch "
    "trim tear rip break knock hold brush fall carry",
    "left kept got gotten took taken paid wrote written tore torn broke broken held fell fallen",
)


def _placed(toks: list[str], at: int) -> bool:
    """Whether ``toks[at]`` is "on" or "off" as a preposition: before a word that may start
    a noun phrase, after no verb that takes it as its particle."""
    return (
        toks[at] in ("on", "off")
        and at + 1 < len(toks)
        and toks[at + 1] not in _ON_STATE_NEXT
        and toks[at + 1][:1].isalnum()
        and not (at and toks[at - 1] in _ON_PARTICLE_VERBS)
    )


def _graded_by_word(toks: list[str], stems: list[str]) -> tuple[set[int], set[int]]:
    """Comparatives and superlatives made with a word: the positions of "more" / "less"
    before a member of an antonym pair (they grade it, and are no pair member of their own),
    and the positions of the members "less" and "least" turn around ("most" and "least" stay
    members of their own pair too: "the least expensive to insure" / "costs the most to
    insure" still oppose, a re-check).
    "less strong" is the weak side, as "weaker" is, and opposes "stronger", "more strong" and
    "strong"; "more strong" is "stronger" (a trial: "how to make my coffee less strong" was
    served "... stronger"'s answer); "the least expensive way" is "the cheapest way" (a user's
    trial: vetoed as opposites) and opposes "the most expensive way". A small word after them
    is no member they grade: "spend less on groceries" is not "off groceries" (a trial's
    over-veto of "save money on groceries")."""
    graded: set[int] = set()
    flipped: set[int] = set()
    for at, tok in enumerate(toks[:-1]):
        after = toks[at + 1]
        if (
            tok in _GRADING
            and after not in STOPWORDS
            and after not in _GRADING  # "most/least": each its own member
            and _POLAR_WORDS.get(stems[at + 1])
        ):
            if tok in ("more", "less"):
                graded.add(at)  # "most" / "least" stay members: "least expensive" / "the most"
            if tok in ("less", "least"):
                flipped.add(at + 1)
    return graded, flipped


_GRADING = frozenset(["more", "less", "most", "least"])


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


def _zero_as_verb(toks: list[str], i: int) -> bool:
    """Whether ``toks[i]`` is "zero" as a verb (set to zero: "what distance should I zero my
    deer rifle at", a trial's over-veto read as the number 0): after a subject pronoun or
    "how to". "set it to zero" and "divide by zero" stay the number."""
    if toks[i] != "zero" or not i:
        return False
    return toks[i - 1] in SUBJECT_PRONOUNS or (i > 1 and toks[i - 2 : i] == ["how", "to"])


# words before "may" that make it the month ("in May", "last May", "by May"); otherwise it is
# the verb ("May I ask which planet is nearest to the sun?" was read as a date: an
# adversarial helper's paraphrase, vetoed)
_BEFORE_MONTH = frozenset(
    ["in", "of", "by", "since", "until", "till", "before", "after", "during", "early", "late",
     "mid", "last", "next", "this", "every", "from", "through", "to", "each"]
)  # fmt: skip


def _may_month(toks: list[str], i: int) -> bool:
    """Whether "may" at ``toks[i]`` is the month: after a word of ``_BEFORE_MONTH`` or before
    a number ("May 5", "May 2024", "May 5th")."""
    after = toks[i + 1] if i + 1 < len(toks) else ""
    return (i > 0 and toks[i - 1] in _BEFORE_MONTH) or after[:1].isdigit() or after in ORDINALS


# how often, as one word: a number only before a period ("twice a day"; "charged twice" is
# none); not "once", which "every" says too ("once a week" / "every week")
_HOW_OFTEN = {"twice": "2", "thrice": "3"}
_PER = frozenset(
    ["a", "an", "per", "every", "each", "daily", "weekly", "monthly", "yearly", "annually",
     "hourly", "nightly"]
)  # fmt: skip


# a phrase of place or time put before the question, ended by a comma: "In Europe, …",
# "During a storm, …"
_FRONTED = re.compile(
    r"\s*(?:in|at|on|during|within|across|around|inside|outside|near)\b[^,?.!]{1,60},", re.I
)


def _fronted(text: str, stems: list[str]) -> frozenset[str]:
    """The stems of a phrase of place or time that opens ``text`` before a comma
    (``_FRONTED``), or none."""
    m = _FRONTED.match(text)
    return frozenset(stems[: len(words(m.group(0)))]) if m else frozenset()


def _times_a_number(toks: list[str], at: int) -> bool:
    """Whether a number stands at ``toks[at]`` (after "2 times": a product, "2 times 3")."""
    return at < len(toks) and _number(toks[at]) is not None


# a length unit squared or cubed with its power glued on ("m2", "km²" read as "km2", "cm3"):
# one token, the same as the power written as a word ("square meters", "cubic centimeters"),
# not the number 2 or 3 (a re-check's "square meters in a hectare" / "m2 in one hectare" was
# vetoed as another number); still apart from "m3" ("Apple M2" / "M3" are other chips)
LENGTH_SYMBOLS = frozenset(["mm", "cm", "m", "km", "ft", "yd", "mi", "in"])
AREA_OR_VOLUME = re.compile(r"(?:mm|cm|m|km|ft|yd|mi)[23]")
_POWER_WORDS = {"square": "2", "sq": "2", "cubic": "3"}
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_TIMES_GLUED = re.compile(r"(\d+)x(\d+)")
_POWERS = {"squared": "2", "cubed": "3"}
_TEXTSPEAK = frozenset(_LISTS["textspeak_glued"])


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


# what comes after these is where a thing goes, as after "to": "turn a list into a tuple" /
# "convert a tuple to a list" swap roles (a trial was served it, 0.950)
_DESTINATION = {"into": "to", "onto": "to", "toward": "to", "towards": "to"}


def _roles(toks: list[str], stems: list[str]) -> frozenset[tuple[str, str, frozenset[str]]]:
    """For each directional word: (the word, the stem of the first content word after it,
    the stems of the last three content words before it). ``stems`` are the tokens'."""
    out: list[tuple[str, str, frozenset[str]]] = []
    prior: list[str] = []  # stems of the content words so far
    for i, t in enumerate(toks):
        if t in DIRECTIONAL:
            t = _DESTINATION.get(t, t)
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


# a period named relative to now: "last year" / "this year" / "next year" are three dates
RELATIVE_TIME = {
    "this": 0, "current": 0, "present": 0,
    "last": -1, "previous": -1, "prior": -1,  # not "past": "for the past week" is a span
    "next": 1, "coming": 1, "upcoming": 1, "following": 1,
}  # fmt: skip
RELATIVE_PERIODS = frozenset(
    ["year", "month", "week", "decade", "century", "quarter", "semester", "season", "term"]
)
# "wife's boss", "parents' house": a possessor and the word after it
_POSSESSIVE = re.compile(r"\b([^\W\d_]+)(?:'s|s')\s+([^\W\d_]+)")


def _period(tok: str) -> str:
    """The period ``tok`` names, also as a possessive ("last year's" reads "years"), or ""."""
    if tok in RELATIVE_PERIODS:
        return tok
    return tok[:-1] if tok.endswith("s") and tok[:-1] in RELATIVE_PERIODS else ""


EITHER_CASE = frozenset(_LISTS["either_case_words"])
_ARTICLE_NOUN = re.compile(r"\b(?:[Aa]n?|[Tt]he)\s+([a-z][a-z0-9]+)\b(?:\s+([A-Za-z0-9]+))?")
# a word in title case after a sentence's first, and not after an article ("the Earth")
_TITLED = re.compile(r"(?<![.!?]\s)(?<!^)(?<!\b[Aa] )(?<!\b[Aa]n )(?<!\b[Tt]he )\b([A-Z][a-z]+)\b")


def _dish_aspects(toks: list[str]) -> frozenset[int]:
    """The ``dish_aspects`` groups a question names, by word or by a pairing phrase ("goes
    well with"), and the ``work_aspects`` groups (a book's plot, its themes)."""
    groups = {DISH_ASPECTS[t] for t in toks if t in DISH_ASPECTS}
    groups.update(WORK_ASPECTS[t] for t in toks if t in WORK_ASPECTS)
    if _holds_any(toks, _DISH_PAIRING_INDEX):
        groups.add(DISH_PAIRING)
    return frozenset(groups)


_ACRONYM_PLURAL = re.compile(r"[A-Z]{2,}s")


def _ranked_measures(toks: list[str]) -> frozenset[int]:
    """The ``ranked_measures`` groups a question names when it asks for the top of a ranking
    (a superlative or "most" among its words; "largest population", "most populous", "the
    tallest"); empty when it asks for none."""
    if not any(t == "most" or is_superlative(t) for t in toks):
        return frozenset()
    return frozenset(RANKED_MEASURES[t] for t in toks if t in RANKED_MEASURES)


PhraseIndex = dict[str, tuple[tuple[str, ...], ...]]


def phrase_index(phrases: Iterable[tuple[str, ...]]) -> PhraseIndex:
    """``phrases`` (non-empty token tuples) by their first token, for ``_holds_any``.
    Raises ``ValueError`` for an empty phrase (it would be found in any question)."""
    index: dict[str, list[tuple[str, ...]]] = {}
    for phrase in phrases:
        if not phrase:
            raise ValueError("an empty phrase in a guard's phrase list")
        index.setdefault(phrase[0], []).append(phrase)
    return {first: tuple(found) for first, found in index.items()}


_DISH_PAIRING_INDEX = phrase_index(DISH_PAIRING_PHRASES)
_ANSWER_LEVEL_INDEXES = {level: phrase_index(ps) for level, ps in ANSWER_LEVELS.items()}


def _holds_any(toks: list[str], phrases: PhraseIndex) -> bool:
    """Whether ``toks`` holds one of the indexed ``phrases`` (``phrase_index``) as
    consecutive tokens: each token looks up the phrases it begins (a question's words once,
    where every phrase was tried at every position: a fifth of a cold ``features``)."""
    for i, tok in enumerate(toks):
        for phrase in phrases.get(tok, ()):
            if tuple(toks[i : i + len(phrase)]) == phrase:
                return True
    return False


def _common_nouns(text: str) -> frozenset[str]:
    """Stems of the lower-case words right after an article that end a noun phrase (the next
    word is a function word, or there is none: "a python dict" is no python)."""
    found = _ARTICLE_NOUN.findall(text)
    return frozenset(stem(noun) for noun, after in found if not after or after.lower() in STOPWORDS)


def _levels(toks: list[str]) -> frozenset[str]:
    """The levels whose phrases ``toks`` contains (``ANSWER_LEVELS``)."""
    return frozenset(
        level for level, phrases in _ANSWER_LEVEL_INDEXES.items() if _holds_any(toks, phrases)
    )


def _apostrophes(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().replace("’", "'")


_ONE = frozenset(["a", "an", "one", "1", "each", "every"])


def _counted_unit(toks: list[str]) -> str:
    """The unit a rate without "how many" counts: "cups in a quart?", "cups per quart" count
    cups (``Features.asked_unit``; "How many quarts are in a cup?" counts quarts, so the two
    ask opposite conversions, a trial's wrong reuse); "" if none."""
    # a rate that opens the question ("cups per quart?"); further in, one is given ("… to
    # lose one pound per week", which asks for calories)
    for i, t in enumerate(toks[:2] if len(toks) > 2 else []):
        if t not in UNITS or (i and _number(toks[i - 1]) is not None):
            continue  # "10 miles in km" converts miles: it asks for km
        j = i + 1 + (toks[i + 1] == "are")
        if j + 1 < len(toks) and toks[j] in ("in", "per"):
            one = toks[j + 1] in _ONE
            if toks[j] == "in" and not one:
                continue  # "miles in km": a conversion, not a count per one
            k = j + 1 + one
            if k < len(toks) and toks[k] in UNITS and UNITS[toks[k]] != UNITS[t]:
                return UNITS[t]
    return ""


# a letter standing alone as a word: a name ("vitamin D", "plan B", "hepatitis A", "the key of
# E major", "solve for x"), not part of a word ("don't", "x-ray", "c++", "e.g.") nor "i" or
# "u" ("can u"); "a" only written "A" after a sentence's first word (else the article)
_LETTER = re.compile(r"(?<![\w'’.\-/&#+])([a-z])(?![\w'’\-/&#+]|\.\w)", re.IGNORECASE)
_SENTENCE_START = re.compile(r"(?:^|[.?!:;]\s*)$")


def letter_names(text: str) -> frozenset[str]:
    """The letters ``text`` names, lower case (``_LETTER``): "vitamin d deficiency" → {"d"}."""
    out = set()
    for m in _LETTER.finditer(text):
        ch = m.group(1)
        if ch in "iIuU" or ch == "a":
            continue
        if ch == "A" and _SENTENCE_START.search(text, 0, m.start()):
            continue
        out.add(ch.lower())
    return frozenset(out)


@lru_cache(maxsize=FEATURES_CACHE)
def features(text: str) -> Features:
    toks = words(text)
    stems = [stem(t) for t in toks]
    joined = f" {' '.join(stems)} "
    # the "not" of a polar "X or not" ("91 prime or not?", "whether or not") negates nothing:
    # it asks both ways, as "is 91 prime?" does
    negations = sum(t in NEGATIONS for t in toks) - sum(
        p == "or" and t == "not" for p, t in itertools.pairwise(toks)
    )
    # nor does "yes or no", or an "or no" that ends the question ("ice a sprained ankle yes
    # or no", "should I ice it or no": a user's trial vetoed it against "should I ice …")
    negations -= sum(
        toks[i - 1] == "or" and (i == len(toks) - 1 or (i > 1 and toks[i - 2] == "yes"))
        for i, t in enumerate(toks)
        if t == "no" and i
    )
    negations += sum(t in NEGATING_VERBS and nxt == "to" for t, nxt in itertools.pairwise(toks))
    numbers: set[str] = set()
    powers: set[str] = set()
    dates = set()
    units = set()
    measures: dict[str, str] = {}
    asked_unit = ""
    number_order: list[str] = []
    for i, t in enumerate(toks):
        if i and _compound(toks[i - 1], t) is not None:
            continue  # "five" of "twenty five", counted with "twenty"
        n = _number(t) if not _zero_as_verb(toks, i) else None
        if n is None and t in _HOW_OFTEN and toks[i + 1 : i + 2] and toks[i + 1] in _PER:
            n = _HOW_OFTEN[t]  # "twice a day" / "once a day" (an adversarial helper's pair)
        glued_unit = ""
        if n is None and t[0].isdigit() and "," in t and not _THOUSANDS.fullmatch(t):
            listed = [_number(x) for x in t.split(",") if x]
            numbers.update(x for x in listed if x is not None)  # "1,2,3" is 1, 2 and 3
            continue
        if n is None and (times := _TIMES_GLUED.fullmatch(t)):
            numbers.update(times.groups())  # "7x8" is 7 times 8, "1920x1080" both sides
            number_order.extend(times.groups())
            continue
        if n is None and t in _POWERS and i and (_number(toks[i - 1]) or len(toks[i - 1]) == 1):
            n = _POWERS[t]  # "x squared" is "x^2", "5 cubed" "5^3"
        if n is None and AREA_OR_VOLUME.fullmatch(t):
            numbers.add(t)  # "m2", "km²" (NFKC: "km2"): as "square meters" below; "M2" / "M3"
        elif t in _POWER_WORDS and i + 1 < len(toks) and UNITS.get(toks[i + 1]) in LENGTH_SYMBOLS:
            powers.add(UNITS[toks[i + 1]] + _POWER_WORDS[t])  # "square meters" is "m2"
        elif n is None and (glued := _GLUED.fullmatch(t)):
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
            elif t not in _TEXTSPEAK:
                n = _number(value)  # "w2" is "W-2", "win10" "windows 10", "ps4" / "ps5"
        if n is not None and i + 1 < len(toks):
            n = _compound(t, toks[i + 1]) or n
        if n == "2" and toks[i + 1 : i + 2] == ["times"] and not _times_a_number(toks, i + 2):
            if toks[i + 2 : i + 3] and toks[i + 2] in _PER:
                n = "2"  # "two times a day" is "twice a day", 2 of them
            else:
                continue  # "two times" is "twice", no number ("charged twice" / "billed two times")
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
        elif t in ORDINALS and not (t == "second" and toks[i + 1 : i + 2] == ["hand"]):
            numbers.add("#" + ORDINALS[t])  # "second-hand" is "used", no rank (a trial's)
        if (t in MONTHS and (t != "may" or _may_month(toks, i))) or t in WEEKDAYS:
            dates.add(t[:3])
        elif t in ("date", "day") and i and toks[i - 1] == "current":
            dates.add("tod")  # "the current date" is today's ("get the current date in Python")
        elif (
            i
            and toks[i - 1] in RELATIVE_TIME
            and (period := _period(t))
            # "this term" is a word more often than a school's term ("keep seeing this term
            # on forums - what does single dosing mean": a blind trial's paraphrase, vetoed)
            and not (period == "term" and toks[i - 1] == "this")
        ):
            dates.add(f"{RELATIVE_TIME[toks[i - 1]]:+d} {period}")  # "last year": "-1 year"
        if t in UNITS:
            units.add(UNITS[t])
    if not asked_unit:
        asked_unit = _counted_unit(toks)
    if any(d.isdigit() for d in dates):  # "this year 2017" is 2017
        dates = {d for d in dates if not d.startswith(("+", "-"))}
    polar: set[str] = set()
    polar_at: list[tuple[str, int]] = []
    graded, flipped = _graded_by_word(toks, stems)
    for at, st in enumerate(stems):
        if (
            at in graded
            or (toks[at] == "far" and at and toks[at - 1] in _FAR_NOT_DISTANT)
            or _help_asked(toks, at)
            or _greeting(toks, at)
            or (toks[at] == "over" and at and toks[at - 1] in _COME)
        ):
            continue
        verb = _comparative_as_verb(toks, at)
        placed = "p" if _placed(toks, at) else ""
        for i, side in _POLAR_WORDS.get(st, ()):
            if verb and toks[at] not in _ANTONYMS[i]:
                continue  # "to lower" is no grade of "low": only "raise" / "lower" holds
            member = f"{placed}{i}#{1 - side if at in flipped else side}"
            polar.add(member)
            polar_at.append((member, at))
    for phrase, sides in _POLAR_PHRASES.items():
        if f" {phrase} " in joined:
            polar.update(f"{i}#{side}" for i, side in sides)
    for member in list(polar):
        pair_id, _, pole = member.partition("#")
        if pair_id in _SWITCH_IDS:
            polar.add("sw#" + pole)
    kept = [i for i, t in enumerate(toks) if _is_content(t)]
    sequence = tuple(stems[i] for i in kept)
    raw = re.findall(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-zA-Z0-9]+)", text.strip())
    names = frozenset(
        stem(w)
        # an acronym's plural is the acronym ("explain VPNs" / "What is a VPN?", a trial's
        # over-veto: the stemmer keeps "vpns")
        for name in (n[:-1] if _ACRONYM_PLURAL.fullmatch(n) else n for n in raw)
        for w in ALIASES.get(name.casefold(), (name.casefold(),))
        if w not in STOPWORDS and _number(w) is None  # "II" of "World War II" is a number
    )
    # names written in lower case as often as not ("java" / "JavaScript"), and with symbols
    names = names.union(
        (stem(t) for t in toks if t in TECH_NAMES),
        (TECH_SYMBOL_NAMES[m.lower()] for m in TECH_SYMBOLS.findall(text)),
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
        # "relative" shares "related"'s stem and names no relation both ways alike
        relation=any(
            st in _SYMMETRIC_RELATIONS and not t.startswith("relativ")
            for t, st in zip(toks, stems, strict=True)
        ),
        inverts="of" in toks,
        powers=frozenset(powers),
        tasks=frozenset(LANGUAGE_TASKS[t] for t in toks if t in LANGUAGE_TASKS),
        offices=frozenset(OFFICES[t] for t in toks if t in OFFICES),
        aspects=_dish_aspects(toks),
        actions=frozenset(DEVICE_ACTIONS[t] for t in toks if t in DEVICE_ACTIONS),
        ranked=_ranked_measures(toks),
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
        fronted=_fronted(text, stems),
        possessives=frozenset(
            (stem(owner), stem(owned)) for owner, owned in _POSSESSIVE.findall(_apostrophes(text))
        ),
        polar_at=tuple(polar_at),
        levels=_levels(toks),
        common=_common_nouns(text),
        letters=letter_names(text),
        titled=frozenset(
            stem(w)
            for t in _TITLED.findall(text.strip())
            if (w := t.lower()) in capitonyms() and w not in EITHER_CASE
        ),
        **_tense_parts(toks, stems),
        **_wh_parts(toks, stems),
    )
