"""Texts rewritten before they are read, so that two spellings of one question read alike:
a digit typed for "to" / "for", "X free" and "X-free", words one side hyphenates, a unit's
power in words or glued, a comparison turned round (``_converse``; ``_less_of_er`` reads "less
X" against X's "-er" as a polarity)."""

from __future__ import annotations

import itertools
import re
import unicodedata

from .extract import (
    AREA_OR_VOLUME,
    LENGTH_SYMBOLS,
    features,
)
from .lexicon import (
    FREE_OF,
    UNITS,
    words,
)

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


# words that show a text is written in textspeak, where a lone "2" / "4" is "to" / "for"
_TEXTSPEAK_MARKERS = frozenset(
    ["u", "r", "ur", "wat", "wut", "lol", "pls", "plz", "tho", "rly", "gonna", "wanna",
     "lil", "kinda", "sorta", "idk", "imo", "ya", "yall", "smth", "sth", "bc", "cuz", "coz",
     "n", "nd", "im", "dont", "cant", "doin", "gettin"]
)  # fmt: skip


# what a "2" / "4" typed for "to" / "for" comes before ("2 the", "4 redoing") or after
# ("supposed 2", "wat 2", "need 4"); before anything else it counts ("2 advil", "4 2 ppl")
_TEXTSPEAK_BEFORE = frozenset(
    ["a", "an", "the", "my", "your", "ur", "u", "you", "me", "him", "her", "them", "us",
     "this", "that", "these", "those", "his", "its", "our", "their", "every", "each", "some"]
)  # fmt: skip
_TEXTSPEAK_AFTER = frozenset(
    ["supposed", "going", "gonna", "need", "needs", "want", "wants", "have", "has", "how",
     "wat", "what", "ok", "okay", "able", "used", "trying", "try", "where", "when", "good",
     "bad", "safe", "best", "tips", "ideas", "way", "time"]
)  # fmt: skip


def _textspeak_read(a: str, b: str) -> tuple[str, str] | None:
    """``a`` and ``b`` with a lone "2" / "4" of a side written in textspeak (two or more of
    ``_TEXTSPEAK_MARKERS``) read as "to" / "for", when the other side has no number and
    the digit stands where that word would: before a determiner, a pronoun or a word in
    "-ing" (``_TEXTSPEAK_BEFORE``), or after a word that takes it (``_TEXTSPEAK_AFTER``):
    "wat kinda staple gun do i need 4 redoing dining chair seats lol", "wat shoes r u
    supposed 2 wear for lawn bowling" (a blind trial's paraphrases, vetoed as other
    numbers). Before any other word it counts ("can u take 2 advil w food lol pls", a
    re-check's look-alike). ``_textspeak_spelled`` reads a digit the other side says as a
    word beside the same word; this reads the rest of such texts. None when nothing
    changes."""
    for x, y, swap in ((a, b, False), (b, a, True)):
        wx = words(x)
        if len(_TEXTSPEAK_MARKERS.intersection(wx)) < 2 or features(y).numbers:
            continue

        def spelled(m: re.Match[str], x: str = x) -> str:
            before = re.findall(r"[a-z]+", x[: m.start()].lower())[-1:]
            after = re.match(r"\s*([a-z]+)\b", x[m.end() :].lower())
            nxt = after.group(1) if after else ""
            at_word = nxt in _TEXTSPEAK_BEFORE or nxt.endswith("ing")
            if at_word or (before and before[0] in _TEXTSPEAK_AFTER and nxt):
                return _TEXTSPEAK[m.group(1)]
            return m.group(0)

        read = _LONE_DIGIT.sub(spelled, x)
        if read != x:
            return (y, read) if swap else (read, y)
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
