"""``compare``: the conflicts between two questions, each a veto, and the overlap of their content
words (what surrounds the question itself is read in ``context.py``)."""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from .context import (
    _askers_swapped,
    _ignorance_dropped,
    _lead_in_changed,
    _near_time_dropped,
    _second_question_changed,
    _sentence_changed,
    _sentences,
    _without_hedge,
)
from .extract import (
    _SWITCH_IDS,
    AREA_OR_VOLUME,
    FEATURES_CACHE,
    LENGTH_SYMBOLS,
    Features,
    _is_content,
    _number,
    features,
)
from .lexicon import (
    _LISTS,
    CONTRASTS,
    FREE_OF,
    QUANTIFIERS,
    UNITS,
    WEEKDAYS,
    acronyms_spelled,
    name_forms,
    noun_siblings,
    stem,
    wordnet_adjective_antonym,
    words,
)
from .literals import _blind_spot, _literals_differ, factorials
from .order import (
    _agent_made_object,
    _blocks_exchanged,
    _names_turned,
    _of_turned,
    _persons_swapped,
    _pivot_turned,
    _possessives_swapped,
    _possessor_changed,
    _relative_turned,
    _role_swap,
    _sequence_turned,
    _transposed,
    _wh_swapped,
)
from .wording import (
    SCOPE_WORDS,
    _affix_flips,
    _apart_at,
    _asks_another_kind,
    _asks_for_a_detail,
    _measure_conflict,
    _modality_conflict,
    _mood_conflict,
    _negation_moved,
    _one_word_added,
    _one_word_apart,
    _other_one_asked,
    _prevention_against_remedy,
    _stop_against_keep,
    _stopped_for_not,
    _tense_conflict,
    _time_preposition_apart,
    _turned_around,
    _unit_conflict,
)


@dataclass(frozen=True)
class Comparison:
    conflicts: tuple[str, ...]  # hard vetoes, by name
    novel_words: int  # content words of either side with no counterpart in the other
    content_overlap: float  # Jaccard of stemmed content words

    @property
    def ok(self) -> bool:
        return not self.conflicts


# a digit a chatbot user types for a word ("how 2 make pasta", "tips 4 a job interview")
_TEXTSPEAK = {"2": "to", "4": "for"}
_LONE_DIGIT = re.compile(r"(?<![\w.,$£€¥#/+-])([24])(?![\w.,%°/:+-])")


def _free_hyphenated(a: str, b: str) -> tuple[str, str]:
    """``a`` and ``b`` with "X free" of one side written "X-free" where the other side writes
    "X-free" (which the guards read as "without X", ``lexicon.normalise``): "lactose free" /
    "lactose-free" was a negation on one side only. Elsewhere "free" after a space is left
    as written (mostly "at no cost": "the best free course")."""

    def hyphenated(x: str, other: str) -> str:
        for word in {m.group(1) for m in FREE_OF.finditer(other.casefold())}:
            x = re.sub(rf"\b({re.escape(word)}) free\b", r"\1-free", x, flags=re.IGNORECASE)
        return x

    a = hyphenated(a, b)
    return a, hyphenated(b, a)


# what may stand before a noun phrase: two words after one (or first) are a compound's
_NOUN_PHRASE_OPENERS = frozenset(
    ["", "a", "an", "the", "my", "your", "our", "their", "his", "her", "its", "this", "that",
     "these", "those", "some", "any", "no", "every", "each", "for", "of", "with", "in", "on",
     "to", "from", "about", "by", "at", "use", "using", "buy", "buying", "get", "best"]
)  # fmt: skip
_HYPHENATED = re.compile(r"\b([^\W\d_]+)-([^\W\d_]+)\b")


def _compounds_joined(a: str, b: str) -> tuple[str, str]:
    """``a`` and ``b`` with two words of one side written with the hyphen the other side
    joins them with: "anti fatigue mat" / "anti-fatigue mat" (a blind trial's casual
    paraphrase: the guards read "antifatigue" as "fatigue" negated by its prefix on one side
    only). Only where they open a noun phrase (first, or after an article, a possessive, a
    preposition, ``_NOUN_PHRASE_OPENERS``): elsewhere "anti X" is as often a stance ("are vets
    anti flea collars" / "do vets recommend anti-flea collars", a re-check). Words the other
    side does not hyphenate stay as written."""

    def joined(x: str, other: str) -> str:
        for w1, w2 in {(m[1], m[2]) for m in _HYPHENATED.finditer(other)}:
            x = re.sub(
                rf"(?<!\w)((?:\w+\s+)?)({re.escape(w1)})\s+({re.escape(w2)})\b",
                lambda m: (
                    f"{m[1]}{m[2]}-{m[3]}"
                    if m[1].strip().casefold() in _NOUN_PHRASE_OPENERS
                    else m[0]
                ),
                x,
                flags=re.IGNORECASE,
            )
        return x

    a = joined(a, b)
    return a, joined(b, a)


_POWER_WRITTEN = re.compile(r"\b(square|sq|cubic)\s+([a-z]+)\b", re.IGNORECASE)


def _powers_glued(a: str, b: str) -> tuple[str, str]:
    """``a`` and ``b`` with a length unit's power written as a word ("square meters",
    "cubic feet") written glued ("m2", "ft3") on both sides, where either side writes one
    glued ("m2", "km²"): the swaps are then read on one spelling ("How many cubic meters in a
    square meter?" / "How many m2 in a m3?" passed, 0.962, a re-check). Elsewhere the words
    stay (``Features.powers`` reads them)."""
    if not any(
        AREA_OR_VOLUME.fullmatch(w)
        for x in (a, b)
        for w in re.findall(r"\w+", unicodedata.normalize("NFKC", x).casefold())
    ):
        return a, b

    def glued(m: re.Match[str]) -> str:
        symbol = UNITS.get(m.group(2).casefold())
        if symbol not in LENGTH_SYMBOLS:
            return m.group(0)
        return symbol + ("3" if m.group(1).casefold() == "cubic" else "2")

    return _POWER_WRITTEN.sub(glued, a), _POWER_WRITTEN.sub(glued, b)


def _textspeak_spelled(a: str, b: str) -> tuple[str, str] | None:
    """``a`` and ``b`` with a lone "2" or "4" of one side written as the "to" or "for" it
    stands for, when the other side has no such number and says "to" / "for" after the same
    word ("how 2 make pasta" / "How to make pasta?", "convert 5 miles 2 km" / "convert 5 miles
    to km", "is coffee bad 4 u" / "Is coffee bad for you?": vetoed as other numbers) or before
    the same word ("is it ok 2 eat eggs" / "Is it okay to eat eggs?", "wat 2 do in paris" /
    "What to do in Paris?"). A digit the other side does not read as that word next to the
    same word stays a number ("add 2 eggs" / "how to add eggs"), and so does one after the
    word itself ("tips for 4 people" / "tips for people"). None when nothing changes."""
    for x, y, swap in ((a, b, False), (b, a, True)):
        found = _LONE_DIGIT.findall(x)
        if len(found) != 1:
            continue
        digit = found[0]
        word = _TEXTSPEAK[digit]
        if digit in features(y).numbers:
            continue
        wx, wy = words(x), words(y)
        at = [i for i, w in enumerate(wx) if w == digit]
        if len(at) != 1:
            continue
        i = at[0]
        pairs = set(itertools.pairwise(wy))
        after = i + 1 < len(wx) and (word, wx[i + 1]) in pairs and wx[i - 1 : i] != [word]
        if (i > 0 and (wx[i - 1], word) in pairs) or after:
            spelled = _LONE_DIGIT.sub(word, x, count=1)
            return (y, spelled) if swap else (spelled, y)
    return None


def _bases(comparative: str) -> set[str]:
    """What a comparative in "-er" may grade: "denser" dense, "healthier" healthy, "bigger"
    big, "safer" safe, "older" old (one of them is the adjective; the rest are no word)."""
    if not comparative.endswith("er") or len(comparative) < 5:
        return set()
    stem_ = comparative[:-2]
    bases = {stem_, comparative[:-1]}
    if stem_.endswith("i"):
        bases.add(stem_[:-1] + "y")
    if len(stem_) > 2 and stem_[-1] == stem_[-2]:
        bases.add(stem_[:-1])
    return bases


def _less_of_er(wa: list[str], wb: list[str]) -> bool:
    """One side says "less X" where the other says X's "-er", the rest the same words ("Is
    water denser than oil?" / "Is water less dense than oil?": no listed opposite, so the
    polarity guard let it through)."""
    for one, other in ((wa, wb), (wb, wa)):
        if len(other) != len(one) + 1:
            continue
        for i, word in enumerate(one):
            if other[:i] != one[:i]:
                break
            if (
                other[i] == "less"
                and other[i + 2 :] == one[i + 1 :]
                and other[i + 1] in _bases(word)
            ):
                return True
    return False


def _opposite_grades(x: list[str], y: list[str]) -> bool:
    """``x`` and ``y`` (a few words each) grade one scale the opposite ways: every polar pair
    they share (``Features.polar``) has other sides ("bigger" / "smaller", "more expensive" /
    "cheaper", "greater" / "less"), or one is an adjective's "-er" and the other "less" of
    it ("denser" / "less dense", "healthier" / "less healthy")."""
    for one, other in ((x, y), (y, x)):
        if len(one) == 1 and len(other) == 2 and other[0] == "less":
            return other[1] in _bases(one[0])
    px = {p.split("#")[0]: p for p in features(" ".join(x)).polar}
    py = {p.split("#")[0]: p for p in features(" ".join(y)).polar}
    shared = px.keys() & py.keys()
    return bool(shared) and all(px[k] != py[k] for k in shared)


def _converse(a: str, b: str) -> tuple[str, str] | None:
    """``a`` and ``b`` as the same words when one is the other's comparison turned round: the
    two things compared swap places and the comparative is its opposite, the rest the same
    ("Is Jupiter bigger than Earth?" / "Is Earth smaller than Jupiter?", "Is Paris more
    expensive than Berlin?" / "Is Berlin cheaper than Paris?"). Either change alone still
    asks the opposite (the order and polarity guards). Both sides are then given as ``a``'s
    words (each keeps its "?", for the mood guard). None when it is not one."""
    wa, wb = features(a).words, features(b).words  # cached: compare reads them next
    if wa.count("than") != 1 or wb.count("than") != 1:
        return None
    ka, kb = wa.index("than"), wb.index("than")
    qa, qb = wa[ka + 1 :], wb[kb + 1 :]
    for h in range(0, min(ka, kb)):
        if wa[:h] != wb[:h]:
            break
        pa, pb = wa[h:ka], wb[h:kb]
        for t in range(0, min(len(qa), len(qb))):
            if qa[len(qa) - t :] != qb[len(qb) - t :]:
                break
            y, x = qa[: len(qa) - t], qb[: len(qb) - t]
            if not x or not y or x == y or pa[: len(x)] != x or pb[: len(y)] != y:
                continue
            ra, rb = pa[len(x) :], pb[len(y) :]
            for m in range(0, min(len(ra), len(rb))):
                if ra[len(ra) - m :] != rb[len(rb) - m :]:
                    break
                ca, cb = ra[: len(ra) - m], rb[: len(rb) - m]
                if 0 < len(ca) <= 3 and 0 < len(cb) <= 3 and _opposite_grades(ca, cb):
                    said = " ".join(wa)  # b turned round says a's words
                    asked_a, asked_b = (t.rstrip().endswith("?") for t in (a, b))
                    return said + "?" * asked_a, said + "?" * asked_b
    return None


def _name_made_common(fa: Features, fb: Features) -> bool:
    """A name on one side is a common noun after an article on the other: "What is Python?" /
    "What is a python?", "Tell me about Apple." / "Tell me about the apple." (a trial was
    served 15 such pairs, pair scores 0.95-0.99; a difference of case alone is the literal
    guard's)."""
    return bool((fa.titled & fb.common) - fa.common or (fb.titled & fa.common) - fb.common)


def _asks_for_examples(words: list[str]) -> bool:
    """The question asks for examples ("Give me examples of idioms", "an example of a
    simile"), not a filler "for example"."""
    return "examples" in words or any(
        w == "example" and nxt == "of" for w, nxt in itertools.pairwise(words)
    )


_DEFINING = frozenset(["what", "define", "definition", "meaning", "explain"])


def _examples_asked(a: str, b: str, fa: Features, fb: Features) -> bool:
    """One side, a request of one sentence, asks for examples of what the other, a question
    of one sentence, asks to define ("What is an idiom?" / "Give me examples of idioms."; a
    trial was served 7 such pairs, pair scores 0.93-0.97). Not where one side adds "What
    are some examples?" to its question (Quora pairs those as duplicates)."""
    ex_a, ex_b = _asks_for_examples(fa.words), _asks_for_examples(fb.words)
    if ex_a == ex_b or len(_sentences(a)) > 1 or len(_sentences(b)) > 1:
        return False
    asking, other = (fa, fb) if ex_a else (fb, fa)
    # "What are some examples of X?" is how Quora asks "What are some X?": a request for
    # examples ("Give me / list examples of X") against a question of what X is
    return bool(other.words and asking.words) and (
        other.words[0] in _DEFINING and asking.words[0] not in _DEFINING
    )


_ARTICLES = {"an": "a"}


def _siblings_swapped(fa: Features, fb: Features) -> bool:
    """The two questions are one noun apart (articles aside: "an apple" / "a pear") and the
    two nouns are kinds of one thing, not the same thing (``noun_siblings``: "How do I get
    rid of rats / mice?", "How many calories are in an apple / a pear?"; a trial was served
    these at pair scores 0.95-0.99)."""
    a = [_ARTICLES.get(s, s) for s in fa.stems]
    b = [_ARTICLES.get(s, s) for s in fb.stems]
    if len(a) != len(b):
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(diff) != 1:
        return False
    x, y = fa.words[diff[0]], fb.words[diff[0]]
    same_group = x in CONTRASTS and CONTRASTS[x] == CONTRASTS.get(y)  # "women" / "girls"
    return not same_group and noun_siblings(x, y)


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


SPELLED_APART_WORDS = 4  # _not_spelled_apart: the most words a name is written apart in


def _not_spelled_apart(names: frozenset[str], g: Features) -> frozenset[str]:
    """The ``names`` (stems) that the other side ``g`` does not write as words apart: a name
    written as one word is the same name in two to four words ("NullPointerException" /
    "null pointer exceptions", "YouTube" / "you tube")."""
    w = g.words
    apart = {
        stem("".join(w[i:j]))
        for i in range(len(w))
        for j in range(i + 2, min(i + SPELLED_APART_WORDS, len(w)) + 1)
    }
    return names - apart


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


_AUDIENCE_NOUNS = frozenset(_LISTS["audience_nouns"])
_AUDIENCE_LEVELS = frozenset(_LISTS["audience_levels"])


# a person named by a pronoun is an audience only right after "to" / "for": "explain it to
# someone new", not "how to put someone in the recovery position" (a blind trial's
# over-veto against "What is the recovery position?"); "to ordinary people" still is one
_AUDIENCE_PRONOUNS = frozenset(["someone", "somebody", "anyone"])


def _addressed(w: list[str], i: int) -> bool:
    """Whether audience noun ``w[i]`` follows "to" / "for" within four words ("to young
    people", "to a blind person"), or for "someone", "somebody", "anyone" right after it
    ("to someone new", not "to put someone")."""
    for j in range(i - 1, max(-1, i - 5), -1):
        if w[j] in ("to", "for"):
            return w[i] not in _AUDIENCE_PRONOUNS or j + 1 == i
    return False


def _audience(w: list[str]) -> bool:
    """Whether the words name whom an answer is for: "to / for a [young, curious, …] X" with X
    an audience noun, "N year old", "… level" after a level word, "eli5", "like im five"."""
    for i, x in enumerate(w):
        if x in _AUDIENCE_NOUNS and _addressed(w, i):
            return True
        if x == "old" and i >= 2 and w[i - 1] in ("year", "years"):
            return True
        if x == "level" and not _AUDIENCE_LEVELS.isdisjoint(w[max(0, i - 2) : i]):
            return True
    text = " ".join(w)
    return "eli5" in w or "like im five" in text or "like im 5" in text


def _audience_one_sided(fa: Features, fb: Features) -> bool:
    """One side asks to explain a thing to an audience it names, the other names none:
    "Explain recursion to a non-programmer" / "What is recursion in programming?"."""
    sa, sb = _audience(fa.words), _audience(fb.words)
    if sa == sb:
        return False
    asked = fa.words if sa else fb.words
    return "explain" in asked


def _letters_differ(fa: Features, fb: Features) -> bool:
    """Each side names a letter the other does not: "vitamin D" / "vitamin C", "plan B" /
    "plan C", "d major key signature" / "the key of A major" (a trial was served the last at
    a pair score of 0.99; WordNet makes few letters kinds of one thing, so the siblings rule
    saw only some), or the two questions are one letter apart ("hepatitis a" / "hepatitis
    b": there "a" is no article). One side naming a letter alone is left to the other guards
    ("y is the sky blue" is textspeak)."""
    la, lb = fa.letters, fb.letters
    if la - lb and lb - la:
        return True
    i = _apart_at(fa, fb)
    if i is None:
        return False
    x, y = fa.words[i], fb.words[i]
    return len(x) == len(y) == 1 and x.isalpha() and y.isalpha()


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


# what asks to find out whether something holds, before "if" / "whether"
_CHECKS = frozenset(
    stem(w)
    for w in ["check", "test", "tell", "know", "determine", "see", "verify", "find", "figure",
              "identify", "detect", "confirm", "recognise", "recognize", "spot", "notice"]
)  # fmt: skip
# what finds out in other words, on the how-to side: "how do I scan my laptop for viruses",
# "how to pick a ripe avocado" (a re-check's paraphrases of "how can I tell if …", 0.91-0.97)
_FINDING_OUT = _CHECKS.union(
    stem(w)
    for w in ["scan", "measure", "track", "inspect", "diagnose", "monitor", "examine", "pick",
              "choose", "select"]
) - {stem("find"), stem("figure")}  # fmt: skip
_IF = frozenset(["if", "whether"])
# after "find" / "figure", what makes it finding out ("find that someone is lying"), not
# finding a thing ("find a good nitrogen fertilizer")
_FOUND_OUT = frozenset(
    ["out", "that", "if", "whether", "why", "what", "who", "how", "where", "when"]
)
_HOW_AUX = frozenset(["do", "can", "should", "could", "would"])
_ASKING = frozenset(["i", "you", "we", "one", "u"])


def _check_against_doing(fa: Features, fb: Features) -> bool:
    """One side asks how to find out whether something holds ("check / tell / know … if"),
    the other how to do something ("how to …", "how do / can / should I …", "ways to …"),
    asking nothing to be found out: "How do I check if my soil has enough nitrogen?" / "How
    do I add enough nitrogen to my soil?" (a trial was served it at 0.910). Not where the
    other side finds out too, in any words ("… test my soil for nitrogen", "scan my laptop
    for viruses", "pick a ripe avocado", "find out"; ``_FINDING_OUT``), nor where it asks no
    how-to ("does my soil need nitrogen?", "how does love differ from lust?"), nor where it
    asks what to do if something holds ("how do I care for my dog if it is sick")."""

    def checks(f: Features) -> bool:  # "out" aside: "find out if", "figure out whether"
        kept = [(x, st) for x, st in zip(f.words, f.stems, strict=True) if x != "out"]
        return any(st in _CHECKS and y in _IF for (_, st), (y, _) in itertools.pairwise(kept))

    def how_to(f: Features) -> bool:
        w = f.words
        ways = any(x in ("way", "ways") and y == "to" for x, y in itertools.pairwise(w))
        return (
            ways
            or w[:2] == ["how", "to"]
            or (len(w) > 3 and w[0] == "how" and w[1] in _HOW_AUX and w[2] in _ASKING)
        )

    def finds_out(f: Features) -> bool:
        w = f.words
        return not _FINDING_OUT.isdisjoint(f.stems) or any(
            x in ("find", "figure") and y in _FOUND_OUT for x, y in itertools.pairwise(w)
        )

    for f, g in ((fa, fb), (fb, fa)):
        if checks(f) and how_to(g) and not finds_out(g) and _IF.isdisjoint(g.words):
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


_NAME_GOES_ON = re.compile(r"\b([A-Z][a-zA-Z]+)\s+(?=[A-Z])")


def _named_alike(g: Features, text: str) -> frozenset[str]:
    """The content stems and names of ``g`` (read from ``text``) with the names WordNet
    relates to them: "South American" names what "South America" names, "French history" what "the
    history of France" does (``name_forms``). A word a longer name goes on from is that
    name's, not its place's: "the European Union" is not "Europe", nor "the Indian Ocean"
    "India"."""
    forms = name_forms()
    in_names = {stem(w.lower()) for w in _NAME_GOES_ON.findall(text)}
    return g.content.union(g.names, *(forms.get(s, ()) for s in g.content - in_names))


_CAPITALISED = re.compile(r"\b[A-Z][a-zA-Z]+")


def _names_read(text: str) -> list[str]:
    """The capitalised words of ``text`` in order, each stemmed, an adjective WordNet
    relates to a name read as that name ("Japanese" → "japan", ``name_forms``)."""
    forms = name_forms()
    stems = (stem(w.lower()) for w in _CAPITALISED.findall(text))
    return [min(forms.get(s, frozenset()) | {s}) for s in stems]


def _adjective_turned(a: str, b: str) -> bool:
    """Names one side gives by an adjective stand in the other order: "a visa for Japan as a
    US citizen" / "a visa for the US as a Japanese citizen" (read as the same names, the two
    ask each other's question)."""
    na, nb = _names_read(a), _names_read(b)
    shared = set(na) & set(nb)
    first_a = [n for n in dict.fromkeys(na) if n in shared]
    first_b = [n for n in dict.fromkeys(nb) if n in shared]
    return len(shared) > 1 and first_a != first_b


def _both_poles_offered(pair: str, fa: Features, fb: Features) -> bool:
    """Each side offers both poles of antonym pair ``pair`` as a choice joined by "or": the
    same choice in another order ("If the stamps are old, should I soak them off the envelope
    or leave them on?" / "Should I leave old stamps on their envelopes or soak them off?", a
    blind trial's paraphrase at 0.986, read as "on" against "off" because each side has one
    as a preposition and the other as a particle). Poles are counted whatever their reading
    (``pair`` and its prepositional ``p`` form; for ``sw``, every switch pair's)."""
    base = pair.removeprefix("p")
    ids = {i for s in _SWITCH_IDS for i in (s, "p" + s)} if base == "sw" else {base, "p" + base}

    def poles(f: Features) -> set[str]:
        return {pole for m in f.polar for i, _, pole in [m.partition("#")] if i in ids}

    return all("or" in f.words and poles(f) == {"0", "1"} for f in (fa, fb))


def _pole_added(sa: set[str], sb: set[str], fa: Features, fb: Features) -> bool:
    """One side names a pole of an antonym pair besides the poles both name, each named as
    often on both sides, and the added pole qualifies a thing both sides name that no shared
    pole qualifies: it describes something ("introduce a new kitten to an older cat" / "a
    kitten to my older cat") rather than standing where the other side has its opposite
    ("hot tub too hot" / "hot tub too cold": "hot" twice against once), comparing two kinds
    of one thing ("private limited company" / "public and private limited company") or
    asking about both ("input and output devices", "most/least"). Adjectives only (WordNet
    3.0's adjective antonyms): an added noun pole is another party ("tell a boy you like
    him" / "can a boy notice if a girl likes him"). ``sa`` and ``sb`` are the members of one
    pair each side names (``Features.polar``)."""
    shared = sa & sb
    if not shared or shared not in (sa, sb):
        return False
    more, other = (fa, fb) if sa > sb else (fb, fa)

    def count(f: Features, m: str) -> int:
        return sum(1 for n, _ in f.polar_at if n == m)

    def after(f: Features, at: int) -> str:
        return f.stems[at + 1] if at + 1 < len(f.stems) else ""

    if any(count(fa, m) != count(fb, m) or not count(fa, m) for m in shared):
        return False
    shared_at = [at for m, at in more.polar_at if m in shared]
    qualified = {after(f, at) for f in (fa, fb) for m, at in f.polar_at if m in shared}
    return all(
        any(
            m == added
            and all(abs(at - j) > 2 for j in shared_at)
            and any(wordnet_adjective_antonym(more.words[at], more.words[j]) for j in shared_at)
            and (thing := after(more, at)) in other.stems
            and thing not in qualified
            and _is_content(more.words[at + 1])
            for m, at in more.polar_at
        )
        for added in sa ^ sb
    )


# a question asking how a phrase is said in a natural language (english.toml's
# ``natural_languages``), the phrase as group "x": "how do you say X in Japanese", "translate
# X into Italian", "the Japanese word for X", "the meaning of X in Latin", "what does X mean
# in Hindi", "in Hindi, how do you say X", "what is X in German"
_LANGUAGE = r"(?:" + "|".join(_LISTS["natural_languages"]) + r")"
_PHRASE = r"(?P<x>\S+(?:\s+\S+){0,4}?)"  # one to five words: a phrase, not a task
_ASKED_IN_A_LANGUAGE = [
    re.compile(p)
    for p in (
        rf"\b(?:say|said|saying|pronounce|spell|call|translate)\s+{_PHRASE}\s+"
        rf"(?:in|into|to)\s+(?:the\s+)?{_LANGUAGE}\b",
        rf"\b{_LANGUAGE}\s+(?:word|words|term|phrase|expression|translation|name)\s+"
        rf"(?:for|of)\s+{_PHRASE}\s*[?.!]*$",
        rf"\b(?:translation|meaning|pronunciation|spelling)\s+of\s+{_PHRASE}\s+"
        rf"(?:in|into)\s+{_LANGUAGE}\b",
        rf"\bdoes\s+{_PHRASE}\s+(?:mean|translate(?:\s+(?:to|as|into))?)\s+in\s+{_LANGUAGE}\b",
        # "how is X said in Japanese", "how would you say X in …" (a re-check's frames)
        rf"\bhow\s+(?:is|are|was|would\s+you|do\s+you)\s+{_PHRASE}\s+"
        rf"(?:said|written|pronounced|spelled|spelt|called)\s+in\s+{_LANGUAGE}\b",
        rf"\btell\s+(?:someone|somebody|him|her|them|people|my\s+\w+)\s+{_PHRASE}\s+in\s+"
        rf"{_LANGUAGE}\b",
        rf"\b(?:the\s+)?{_LANGUAGE}\s+for\s+{_PHRASE}\s*[?.!]*$",  # "what's the Japanese for X"
        rf"\bin\s+{_LANGUAGE}\s*,?\s+how\s+(?:do|would|can|should|to)\s+(?:(?:i|you|we|one)\s+)?"
        rf"(?:say|pronounce|spell)\s+{_PHRASE}\s*[?.!]*$",
        rf"^(?:what\s+is|what's|whats)\s+{_PHRASE}\s+in\s+{_LANGUAGE}\s*[?.!]*$",
    )
]


# words that are no part of the phrase asked about: articles, and the languages ("translate
# this from Arabic to English" / "translate this to English"); small words are ("thank you"
# / "thank you very much", "how are you" / "how old are you")
_NOT_THE_PHRASE = frozenset({"a", "an", "the", *_LISTS["natural_languages"]})


@lru_cache(maxsize=FEATURES_CACHE)
def phrase_asked(text: str) -> frozenset[str] | None:
    """The words of the phrase ``text`` asks to be said (written, translated, pronounced,
    explained) in a natural language (``_ASKED_IN_A_LANGUAGE``; quotes, articles and
    languages' names left out), or None where it asks no such thing (or the phrase is none
    of those: "what does X translate to in Japanese" is no phrase "to")."""
    low = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    for pattern in _ASKED_IN_A_LANGUAGE:
        m = pattern.search(low)
        if m is not None:
            phrase = frozenset(words(m.group("x"))) - _NOT_THE_PHRASE - {"to", "into", "as", "from"}
            if phrase:
                return phrase
    return None


def _phrase_changed(a: str, b: str) -> bool:
    """Both sides ask how a phrase is said in a natural language (``phrase_asked``) and the
    phrases differ in their content words: the answer is the phrase's ("How do I say you're
    welcome in Japanese?" / "How do I say thank you in Japanese?", a trial's wrong reuse at
    pair score 0.90; "hello" / "goodbye"). The frame may differ ("how do you say X in
    Japanese" / "the Japanese word for X"); another language is the entity guard's."""
    pa, pb = phrase_asked(a), phrase_asked(b)
    return pa is not None and pb is not None and pa != pb


def compare(a: str, b: str) -> Comparison:
    """The conflicts between questions ``a`` and ``b`` (each a veto), how many content words
    of either side have no counterpart in the other, and the Jaccard overlap of their stemmed
    content words. Two words one side hyphenates are hyphenated on the other too
    (``_compounds_joined``). A hedge before one side is left out (``_without_hedge``), so is a
    negated hedge (``_ignorance_dropped``) and a near time in a context before one side's
    question (``_near_time_dropped``), a digit
    typed for "to" / "for" is spelled (``_textspeak_spelled``) and a comparison turned round
    is read as the other's words (``_converse``); then an acronym of the other side's words is
    read as them (``acronyms_spelled``)."""
    if (unhedged := _without_hedge(a, b)) is not None:
        a, b = unhedged
    a, b = _ignorance_dropped(a), _ignorance_dropped(b)
    a, b = _near_time_dropped(a, b)
    a, b = _free_hyphenated(a, b)
    a, b = _powers_glued(a, b)
    if (spelled := _textspeak_spelled(a, b)) is not None:
        a, b = spelled
    if (conversed := _converse(a, b)) is not None:
        a, b = conversed
    blind = _blind_spot(a, b)  # on the texts as typed: a spelled acronym is no blind spot
    a, b = _compounds_joined(a, b)  # (after: the spacing of a word is the models' to see)
    a, b = acronyms_spelled(a, b)
    fa, fb = features(a), features(b)
    conflicts: list[str] = []
    if blind:
        conflicts.append("literal")
    flips = _affix_flips(fa, fb)
    negated_a = fa.negations + flips.negated_a + _stopped_for_not(fa, fb)
    negated_b = fb.negations + flips.negated_b + _stopped_for_not(fb, fa)
    if negated_a != negated_b or _negation_moved(fa, fb):
        conflicts.append("negation")
    if (
        _numbers_differ(fa, fb)
        or factorials(a) != factorials(b)
        or _root_taken(fa, fb)
        or _counts_swapped(fa, fb)
    ):
        conflicts.append("number")
    if _dates_differ(fa, fb):
        conflicts.append("date")
    if _unit_conflict(fa, fb):
        conflicts.append("unit")
    opposite = {p.split("#")[0] for p in fa.polar} & {p.split("#")[0] for p in fb.polar}
    for pair in opposite:
        sa = {p for p in fa.polar if p.startswith(pair + "#")}
        sb = {p for p in fb.polar if p.startswith(pair + "#")}
        if sa != sb and not _pole_added(sa, sb, fa, fb) and not _both_poles_offered(pair, fa, fb):
            conflicts.append("polarity")
            break
    if flips.paired and "polarity" not in conflicts:
        conflicts.append("polarity")
    if "polarity" not in conflicts and _less_of_er(fa.words, fb.words):
        conflicts.append("polarity")
    if "polarity" not in conflicts and (_stop_against_keep(fa, fb) or _stop_against_keep(fb, fa)):
        conflicts.append("polarity")  # "won't stop leaking" / "doesn't keep leaking"
    if "polarity" not in conflicts and _prevention_against_remedy(fa, fb):
        conflicts.append("polarity")  # "prevent a nozzle clogging" / "clear a blocked nozzle"
    symbols = bool(fa.symbols and fb.symbols and fa.symbols != fb.symbols)
    if (symbols or _literals_differ(fa, fb)) and "literal" not in conflicts:
        conflicts.append("literal")  # "what does the ?? operator do" / "the ?. operator"
    if (
        _mood_conflict(fa, fb)
        or _turned_around(a, b, fa, fb)
        or _asks_for_a_detail(fa, fb)
        or _asks_another_kind(fa, fb)
    ):
        conflicts.append("mood")  # "Is the earth flat?" / "The earth is flat."
    if _tense_conflict(fa, fb):
        conflicts.append("tense")
    if _modality_conflict(fa, fb):
        conflicts.append("modality")  # "Can I take aspirin …?" / "Should I take aspirin …?"
    if _one_word_apart(fa, fb, QUANTIFIERS):
        conflicts.append("quantity")  # "Do all mammals lay eggs?" / "Do any mammals …?"
    if (
        _one_word_apart(fa, fb, CONTRASTS)
        or _time_preposition_apart(fa, fb)  # "in / after the first 48 hours"
        or _one_word_added(fa, fb, SCOPE_WORDS)
    ):
        conflicts.append("contrast")  # "Who will be the next / current president?"
    if (fa.levels and fb.levels and fa.levels != fb.levels) or _audience_one_sided(fa, fb):
        # "Explain TCP/IP in simple terms" / "… in depth"; "Explain X to a kindergartner" /
        # "What is X?"
        conflicts.append("contrast")
    if (
        (fa.tasks and fb.tasks and fa.tasks.isdisjoint(fb.tasks))
        or _examples_asked(a, b, fa, fb)
        or _count_against_list(fa, fb)
        or _check_against_doing(fa, fb)
        or _phrase_changed(a, b)
    ):
        conflicts.append("task")  # "how do you spell X" / "how do you pronounce X"
    if fa.offices and fb.offices and fa.offices.isdisjoint(fb.offices):
        conflicts.append("office")  # "Who is the president of X?" / "… the prime minister …"
    if fa.actions and fb.actions and fa.actions.isdisjoint(fb.actions):
        conflicts.append("action")  # "factory reset my phone" / "restart my phone"
    if (fa.aspects and fb.aspects and fa.aspects.isdisjoint(fb.aspects)) or (
        fa.ranked and fb.ranked and fa.ranked.isdisjoint(fb.ranked)
    ):
        # "recipe for lasagne" / "calories in lasagne"; "largest state by size" / "largest
        # population"
        conflicts.append("aspect")
    # a passive turns subject and object around by itself: "How are exceptions handled in
    # C++?" / "How does C++ handle exceptions?"
    turned = fa.passive != fb.passive
    if fa.relation and fb.relation:
        pass  # "Is a yam the same as a sweet potato?" / "Is a sweet potato the same as a yam?"
    elif (
        _role_swap(fa, fb)
        or (not turned and (_transposed(fa, fb) or _wh_swapped(fa, fb)))
        or _agent_made_object(fa, fb)
        or _possessives_swapped(fa, fb)
        or _possessor_changed(fa, fb)
        or _persons_swapped(fa, fb)
        or _relative_turned(fa, fb)
        or _pivot_turned(fa, fb)
        or (not turned and (_of_turned(fa, fb) or _names_turned(fa, fb)))
    ):
        conflicts.append("order")
    elif fa.operation and fb.operation and _sequence_turned(fa.number_order, fb.number_order):
        conflicts.append("order")  # an operation the other way round: "10 divided by 2"
    elif _blocks_exchanged(fa, fb):
        conflicts.append("order")  # "How many cups are in a gallon?" / "… gallons … cup?"
    if _askers_swapped(a, b) and "order" not in conflicts:
        conflicts.append("order")  # "freelancer here, …" / "client here, …"
    if _sentence_changed(a, b) or _lead_in_changed(a, b) or _second_question_changed(a, b):
        conflicts.append("context")  # "I am vegetarian. What …?" / "I am vegan. What …?"
    if _measure_conflict(fa, fb) and "unit" not in conflicts:
        conflicts.append("unit")  # a conversion the other way round
    names_a, names_b = fa.names - _named_alike(fb, b), fb.names - _named_alike(fa, a)
    # read as the same names only by an adjective WordNet relates to a name
    unrelated_a, unrelated_b = fa.names - fb.content - fb.names, fb.names - fa.content - fa.names
    lifted = unrelated_a and unrelated_b and not (names_a and names_b)
    if lifted and _adjective_turned(a, b):
        conflicts.append("order")  # read as the same names only by an adjective
    if names_a and names_b:
        names_a, names_b = _not_spelled_apart(names_a, fb), _not_spelled_apart(names_b, fa)
    if (
        (names_a and names_b)
        or _other_one_asked(fa, fb)
        or _name_made_common(fa, fb)
        or _siblings_swapped(fa, fb)
        or _letters_differ(fa, fb)
    ):
        conflicts.append("entity")  # "… How many does Alice have?" / "… Bob have?"
    union = fa.content | fb.content
    overlap = len(fa.content & fb.content) / len(union) if union else 1.0
    novel = len(fa.content ^ fb.content)
    return Comparison(tuple(conflicts), novel, overlap)
