"""Blocks exchanged: one question's words are the other's with two stretches traded around
words that stay in place ("How many cups are in a gallon?" / "How many gallons are in a
cup?", "get from Boston to New York" / "get to Boston from New York"), read on each side's
swap form (``_swap_form``) and in other readings of it; and two things made one from the
other the other way round ("make a playlist from my library" / "turn my playlist into a
library"). The rest of who does what to whom is ``order``."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .lexicon import (
    _BE,
    _STOPWORD_STEMS,
    AGREEING,
    ARTICLES,
    AUXILIARIES,
    DIRECTIONAL,
    IRREGULAR_PAST,
    IRREGULAR_PLURALS,
    SYMMETRIC,
    WH_WORDS,
    nouns,
    stem,
)

if TYPE_CHECKING:
    from .extract import Features

# what two sides do to each other alike: "When India faces Australia" / "Australia faces
# India" (a re-check's over-veto, 0.986)
_MUTUAL_VERBS = frozenset(
    stem(w)
    for w in ["face", "faces", "meet", "meets", "play", "plays", "marry", "fight", "fights",
              "date", "dates", "battle", "draw", "tie", "versus", "vs"]
)  # fmt: skip


# words between two exchanged blocks that leave their order without a role: "Python or Java",
# "2 plus 3", "between London and Paris" (SYMMETRIC), "2 times 3"
_COMMUTATIVE = frozenset(["plus", "times", "multiplied", "added", "+", "*", "x", "×", "&"])


_SWAP_DROPPED = frozenset(["one", "all", "every", "each"])
# possessive pronouns (as stems): a second reading of a swap leaves them out, since they may
# name again a party the question names ("Is the bride expected to pay for her bridesmaids'
# dresses?" / "Are the bridesmaids expected to pay for the bride's dress?", a trial was
# served it at 0.947), where in "my kid bit another kid" / "another kid bit my kid" they tell
# the parties apart
_POSSESSIVE_STEMS = frozenset(stem(w) for w in ["my", "your", "his", "her", "its", "our", "their"])


_KIND = {"type": "kind", "types": "kind", "sort": "kind", "sorts": "kind", "kinds": "kind"}
# a pronoun as object is the same person as subject: "my employer owes me money" / "I owe my
# employer money" exchange "my employer" and "I" (a trial was served 18 such pairs); not
# "her", which is also a possessive
_CASE = {"me": "i", "him": "he", "us": "we", "them": "they"}


# relations that hold both ways: two things exchanged around them ask the same (a trial's
# paraphrases: "Is baking soda the same as baking powder?", "Are tomatoes related to potatoes?")
_SYMMETRIC_RELATIONS = frozenset(
    stem(w)
    for w in ["same", "similar", "related", "equal", "equivalent", "identical", "different",
              "compatible", "married", "alike", "unlike"]
)  # fmt: skip


_JOINING_STEMS = frozenset(stem(w) for w in SYMMETRIC | _COMMUTATIVE)

# words that open a subordinate clause, as stems: a question turned round about one of its
# clauses has moved that clause from one end to the other, its roles kept
_SUBORDINATORS = frozenset(
    stem(w)
    for w in ["if", "when", "whenever", "while", "although", "though", "because", "since",
              "unless", "once", "before", "after", "until"]
)  # fmt: skip


SWAP_WINDOW = 16  # _blocks_exchanged: the longest differing stretch it judges


def _swap_form(toks: list[str], stems: list[str]) -> tuple[str, ...]:
    """The stems of a text as swaps are judged on: articles, "one" and quantifiers left out,
    forms of "be" as one, irregular plurals and pasts as their base ("teeth" → "tooth",
    "taught" → "teach"), "type" / "sort" as "kind", "me" as "i"; so "How many cups are in a
    gallon?" /
    "How many gallons are in one cup?" and "Is a whale a type of fish?" / "Is a fish a kind
    of whale?" are swaps (a trial was served both). "one" before a word in "-ed" stays: it
    is a compound's ("switch from bowling one-handed to bowling two-handed", a blind trial's
    look-alike served at 0.95)."""
    out = []
    for i, (t, st) in enumerate(zip(toks, stems, strict=True)):
        compound = t == "one" and i + 1 < len(toks) and toks[i + 1].endswith("ed")
        if t in ARTICLES or (t in _SWAP_DROPPED and not compound):
            continue
        if t in _BE:
            out.append("be")
        elif t in ("do", "does", "did"):
            out.append("do")  # "How does inflation affect rates?" / "How do rates affect …"
        else:
            base = IRREGULAR_PLURALS.get(t) or IRREGULAR_PAST.get(t) or _KIND.get(t) or _CASE.get(t)
            out.append(stem(base) if base else AGREEING.get(t, st))
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
    "France's capital" differ in more than order anyway). Read as written, then in the other
    readings of ``_SWAP_READINGS`` (a verb of placing left out, possessive pronouns left out,
    a light verb left out), and before a clause both sides end with
    (``_tail_clause_left_out``)."""
    a, b = fa.swap_form, fb.swap_form
    if _exchanged(a, b, fa, fb) or _modifier_moved(fa, fb) or _repeat_left_out(fa, fb):
        return True
    if _tail_clause_left_out(fa, fb):
        return True
    for read in _SWAP_READINGS:
        read_a, read_b = read(a), read(b)
        if (read_a, read_b) != (a, b) and _exchanged(read_a, read_b, fa, fb):
            return True
    return False


def _possessives_left_out(form: tuple[str, ...]) -> tuple[str, ...]:
    """A swap form without its possessive pronouns (``_POSSESSIVE_STEMS``), which may name
    again a party the question names."""
    return tuple(w for w in form if w not in _POSSESSIVE_STEMS)


_SOURCE_WORDS = frozenset(["from"])  # "X from Y" (or "out of Y"): Y is made into X
_TARGET_WORDS = frozenset(["into", "to"])  # "X into Y": X is made into Y
_ARROW_WORDS = _SOURCE_WORDS | _TARGET_WORDS
# verbs that make one thing of another, which "from" / "into" give a direction ("how far is
# the earth from the sun" / "distance earth to sun" have none: a distance goes both ways)
_MAKING_STEMS = frozenset(
    stem(w)
    for w in ["make", "made", "turn", "convert", "change", "transform", "generate", "create",
              "build", "produce", "get", "extract", "export", "render", "compile", "translate",
              "derive"]
)  # fmt: skip
# verbs after which "X to Y" makes X into Y; after the others "to" points ("make a QR code to
# my menu", "get a link to my page" are "… from my menu", "… from my page": a re-check)
_CONVERTING_STEMS = frozenset(
    stem(w)
    for w in ["turn", "convert", "change", "transform", "translate", "export", "render",
              "compile"]
)  # fmt: skip


def _arrows(form: tuple[str, ...]) -> set[tuple[str, str, bool]] | None:
    """(what is made, what it is made from or into, whether the second is its source) for
    each "from", "out of", "into" or "to" between two content words of a swap form,
    possessives left out: "a playlist from my library" (playlist, library, True), "whiskey
    made from beer" (whiskey, beer, True: a verb of making before it, and a "be" before
    that, are stepped over), "turn my notes into a summary" (note, summary, False), and a
    question opening "From X, …" made of its last content word (X source). "to" counts only
    after a verb of converting. None when the form says both "from" and "into" / "to" (a
    whole route: ``_exchanged`` judges those)."""
    bare = [w for w in form if w not in _POSSESSIVE_STEMS]
    for i in range(len(bare) - 1, 0, -1):
        if bare[i - 1] == "out" and bare[i] == "of":
            bare[i - 1 : i + 1] = ["from"]
    has_source = not _SOURCE_WORDS.isdisjoint(bare)
    if has_source and not _TARGET_WORDS.isdisjoint(bare):
        return None
    converting = not _CONVERTING_STEMS.isdisjoint(bare)
    out = set()
    fronted = len(bare) > 2 and bare[0] == "from"
    if fronted and bare[1] not in _STOPWORD_STEMS and bare[-1] not in _STOPWORD_STEMS:
        out.add((bare[-1], bare[1], True))  # "From a GIF, how do I get an MP4?"
    for i in range(1, len(bare) - 1):
        word, after = bare[i], bare[i + 1]
        if word not in _ARROW_WORDS or (word == "to" and not converting):
            continue
        j = i - 1
        if bare[j] in _MAKING_STEMS and j > 0:
            j -= 1  # "whiskey made from beer", "whiskey turned into beer"
            if bare[j] == "be" and j > 0:
                j -= 1  # "can tofu be made from soy milk"
        before = bare[j]
        if before in _STOPWORD_STEMS or after in _STOPWORD_STEMS:
            continue
        out.add((before, after, word in _SOURCE_WORDS))
    return out


def _direction_reversed(fa: Features, fb: Features) -> bool:
    """Two things made one from the other on one side and the other way round on the other,
    each side with a verb of making: the same order with "from" against "into" ("make a
    playlist from my Spotify library" / "turn my playlist into a Spotify library": "X from Y"
    makes Y into X), or the two exchanged across the same word ("From a GIF, how do I get an
    MP4?" / "make a gif from an mp4 video"). A new-user trial was served four such pairs at
    pair scores 0.92-0.96 ("generate a summary from my meeting notes" / "turn a summary into
    meeting notes"); a re-check one more ("From my lecture notes, how do I create
    flashcards?" / "How do I turn flashcards into lecture notes?" 0.946)."""
    if _MAKING_STEMS.isdisjoint(fa.swap_form) or _MAKING_STEMS.isdisjoint(fb.swap_form):
        return False
    arrows_a, arrows_b = _arrows(fa.swap_form), _arrows(fb.swap_form)
    if not arrows_a or not arrows_b:
        return False
    return any(
        (x, y, not source) in arrows_b or (y, x, source) in arrows_b
        for x, y, source in arrows_a
        if x != y
    )


def _modifier_moved(fa: Features, fb: Features) -> bool:
    """Two blocks exchanged (``_exchanged``) once one word both sides say once, in other
    places and before another content word on each, is left out: a modifier that qualifies both
    blocks went with the other one ("turn an origami crease pattern into step-by-step folding
    instructions" / "turn step-by-step origami folding instructions into a crease pattern", a
    blind trial's look-alike served at 0.99). Not a verb moved ("the eiffel tower was built
    in which year" / "in which year was the eiffel tower built")."""
    a, b = fa.swap_form, fb.swap_form
    if a == b or len(a) != len(b) or sorted(a) != sorted(b):
        return False

    def modifies(form: tuple[str, ...], i: int) -> bool:
        return i + 1 < len(form) and form[i + 1] not in _STOPWORD_STEMS

    for word in set(a) - _STOPWORD_STEMS:
        i, j = a.index(word), b.index(word)
        if a.count(word) != 1 or i == j:
            continue
        if not (modifies(a, i) and modifies(b, j)) or a[i + 1] == b[j + 1]:
            continue  # not a modifier, or one of a compound that moved whole ("foot fault")
        if _exchanged(a[:i] + a[i + 1 :], b[:j] + b[j + 1 :], fa, fb):
            return True
    return False


# verbs that put one thing over or on another: "put wallpaper over paint" is "wallpaper over
# paint", as "paint over wallpaper" is paint put over wallpaper
_PLACING_STEMS = frozenset(
    stem(w)
    for w in ["put", "apply", "use", "brush", "lay", "install", "spread", "roll", "spray",
              "place", "add"]
)  # fmt: skip
_ON_TOP = frozenset(["over", "on", "onto"])


def _placed(form: tuple[str, ...]) -> tuple[str, ...]:
    """A swap form with a verb of placing left out before the one to three content words it
    puts over or on something ("can i put wallpaper over paint" → "can i wallpaper over
    paint"), so that the material said as a verb on the other side ("can i paint over
    wallpaper") is read as the thing put on top: a new user was served seven such pairs at
    pair scores 0.90-0.98 ("Can I put linoleum over tile?" / "Can I tile over linoleum?",
    "Can I paint over stain?" / "Can I apply stain over paint?")."""
    for i, w in enumerate(form):
        if w not in _PLACING_STEMS:
            continue
        for k in range(i + 2, min(i + 5, len(form))):
            if form[k] in _ON_TOP:
                if _STOPWORD_STEMS.isdisjoint(form[i + 1 : k]):
                    return form[:i] + form[i + 1 :]
                break
    return form


# verbs that may carry a block on one side only: "do a heavy workout", "take a nap", "get a
# haircut", "have a glass of wine"
_LIGHT_VERBS = frozenset(["do", stem("take"), stem("get"), stem("have")])
_LIGHT_AFTER = frozenset(["to", "i", "you", "we", "they"])
# things done at once may be named in either order ("drink coffee while fasting" / "do
# intermittent fasting while drinking coffee", a re-check's paraphrases)
_AT_ONCE = frozenset(stem(w) for w in ["while", "whilst", "during"])


def _light_verbs_left_out(form: tuple[str, ...]) -> tuple[str, ...]:
    """A swap form without a light verb (``_LIGHT_VERBS``) after "to" or a subject pronoun,
    which may carry one of the blocks on one side only ("okay to use a sauna right after a
    heavy workout" / "okay to do a heavy workout right after using a sauna", a blind trial's
    look-alike served at 0.987; "Should I do cardio before lifting weights?" / "Should I lift
    weights before cardio?", "take a nap after drinking coffee" / "drink coffee after a
    nap", a re-check's at 0.95-0.98); not "do" as an auxiliary ("at what temperature does
    water boil …" / "… water boils … at what temperature", a paraphrase), nor about things
    done at once (``_AT_ONCE``)."""
    if not _AT_ONCE.isdisjoint(form):
        return form
    return tuple(
        w
        for i, w in enumerate(form)
        if w not in _LIGHT_VERBS or i == 0 or form[i - 1] not in _LIGHT_AFTER
    )


# the other readings ``_blocks_exchanged`` judges a pair in, each of both sides' swap forms
_SWAP_READINGS = (_placed, _possessives_left_out, _light_verbs_left_out)

# what opens a clause about the noun before it: "the humans who handle them", "the hermit
# crabs they handle"
_RELATIVE_WORDS = frozenset(["who", "whom", "which", "that"])
_CLAUSE_SUBJECTS = frozenset(stem(w) for w in ["i", "you", "we", "they", "he", "she"])


def _relative_cut(form: tuple[str, ...]) -> int | None:
    """Where a clause about the noun before it opens in a swap form (a relative word, or a
    subject pronoun right after a content word), past its first three words; None if none."""
    for i in range(3, len(form)):
        if form[i] in _RELATIVE_WORDS:
            return i
        if form[i] in _CLAUSE_SUBJECTS and form[i - 1] not in _STOPWORD_STEMS:
            return i
    return None


def _tail_clause_left_out(fa: Features, fb: Features) -> bool:
    """Two blocks exchanged (``_exchanged``) before a clause about the last of them that
    both sides end with in their own order ("Can hermit crabs pass diseases to the humans
    who handle them?" / "Can humans pass diseases to the hermit crabs they handle?", a
    blind trial's look-alike served at 0.963): the clauses' words, relative words aside,
    must be the same."""
    a, b = fa.swap_form, fb.swap_form
    cut_a, cut_b = _relative_cut(a), _relative_cut(b)
    if cut_a is None or cut_b is None:
        return False
    tail_a = Counter(w for w in a[cut_a:] if w not in _RELATIVE_WORDS)
    tail_b = Counter(w for w in b[cut_b:] if w not in _RELATIVE_WORDS)
    return tail_a == tail_b and _exchanged(a[:cut_a], b[:cut_b], fa, fb)


def _repeat_left_out(fa: Features, fb: Features) -> bool:
    """Two blocks exchanged (``_exchanged``) once one of the two times a content word is said
    on one side, which the other side says once, is left out: a word both blocks shared went
    along with one of them ("use regular stained glass for kiln fusing projects" / "use kiln
    fusing glass for regular stained glass projects", "adapt a bread machine recipe for
    baking in a regular oven" / "adapt a regular oven bread recipe for baking in a bread
    machine"; a blind trial's look-alikes, served at 0.99)."""
    a, b = fa.swap_form, fb.swap_form
    if abs(len(a) - len(b)) != 1:
        return False
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    extra = Counter(longer) - Counter(shorter)
    if len(extra) != 1 or Counter(shorter) - Counter(longer):
        return False
    (word,) = extra
    if word in _STOPWORD_STEMS or word not in shorter:
        return False
    for i, w in enumerate(longer):
        if w != word:
            continue
        left_out = longer[:i] + longer[i + 1 :]
        pair = (left_out, shorter) if longer is a else (shorter, left_out)
        if _exchanged(*pair, fa, fb):
            return True
    return False


# the words two things are crossed over ("a bunion on my big toe … into a hammertoe"); not
# "with", which joins as often as it directs ("mix bleach with vinegar")
_CROSSING_STEMS = frozenset(
    stem(w) for w in ["for", "to", "into", "onto", "on", "in", "from", "by", "at", "than"]
)
# a second clause or sentence: a comma, colon, semicolon, dash, or a sentence ended before
# more text ("In winter, is it alright to give garden birds bread?" moves freely)
_CLAUSE_BREAK = re.compile(r"[,:;\u2013\u2014]|\s-\s|[.!?]\s+\S")


def _nouns_crossed(fa: Features, fb: Features, a: str, b: str) -> bool:
    """Two nouns each side says once, with one and the same preposition between them on both
    sides, in the opposite order: "Can a bunion on my big toe push my second toe into a
    hammertoe?" / "Can a hammertoe on my second toe push my big toe into a bunion?", "What
    harmonica key do I need to jam with a guitarist playing in G?" / "What key does a
    guitarist need to play in to jam with my G harmonica?" (trials were served both, 0.97 and
    0.99), where the words around them differ, so ``_exchanged`` does not see a swap. Only
    for two questions that each open with a question word or an auxiliary and are one clause
    (``_CLAUSE_BREAK``), with no "and", "or", "vs" or "between": a search-box form or a
    fronted clause puts the same things in any order ("ideal brewing temp for coffee water",
    "In a 10 gallon tank, can guppies be kept with a betta?")."""
    if fa.symmetric or fb.symmetric or not fa.words or not fb.words:
        return False
    if any(f.words[0] not in WH_WORDS and f.words[0] not in AUXILIARIES for f in (fa, fb)):
        return False
    if _CLAUSE_BREAK.search(a.strip()) or _CLAUSE_BREAK.search(b.strip()):
        return False
    rows = nouns().rows
    named = {st for f in (fa, fb) for w, st in zip(f.words, f.stems, strict=True) if w in rows}
    ta, tb = fa.swap_form, fb.swap_form

    def once(form: tuple[str, ...]) -> set[str]:
        return {w for w in form if form.count(w) == 1 and w in named} - _STOPWORD_STEMS

    anchors = once(ta) & once(tb) - _CROSSING_STEMS
    for x in anchors:
        for y in anchors - {x}:
            ia, ja, ib, jb = ta.index(x), ta.index(y), tb.index(x), tb.index(y)
            if (
                ia < ja
                and jb < ib
                and not _CROSSING_STEMS.isdisjoint(set(ta[ia + 1 : ja]) & set(tb[jb + 1 : ib]))
            ):
                return True
    return False


# verbs that join two things alike, either way round; not "add" or "pour" ("add water to
# acid" / "add acid to water") nor "replace" ("replace butter with oil")
_COMBINING_STEMS = frozenset(
    stem(w) for w in ["mix", "combine", "blend", "pair", "connect", "link", "sync", "merge"]
)
_COMBINING_WORDS = frozenset(["with", "to", "and"])


def _combined(form: tuple[str, ...], start: int, middle: tuple[str, ...]) -> bool:
    """Whether two blocks exchanged at ``start`` of ``form`` around ``middle`` are the two
    things a verb of combining joins ("mix bleach with vinegar", "connect my laptop to my
    TV"): ``middle`` is "with", "to" or "and" (and possessives) and the verb stands just
    before the first block, possessives aside."""
    if not set(middle) - _POSSESSIVE_STEMS <= _COMBINING_WORDS:
        return False
    i = start - 1
    while i >= 0 and form[i] in _POSSESSIVE_STEMS:
        i -= 1
    return i >= 0 and form[i] in _COMBINING_STEMS


def _differing_span(a: Sequence[str], b: Sequence[str]) -> tuple[int, int]:
    """(first, one past the last) index where ``a`` and ``b``, of one length and not equal,
    differ."""
    start = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    end = len(a) - next(i for i, (x, y) in enumerate(zip(a[::-1], b[::-1], strict=True)) if x != y)
    return start, end


def _exchanged(a: tuple[str, ...], b: tuple[str, ...], fa: Features, fb: Features) -> bool:
    """``_blocks_exchanged`` on one reading ``a``, ``b`` of the two sides' swap forms."""
    if a == b or len(a) != len(b) or sorted(a) != sorted(b):
        return False
    start, end = _differing_span(a, b)
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
            copula = set(middle) <= AUXILIARIES and bool({first[0], last[0]} & WH_WORDS)
            carried = roles_kept and not DIRECTIONAL.isdisjoint(first + last)
            # "Python or Java", "6 multiplied by 9" (stems: "multipli"); not "and" joining
            # clauses ("John has 3 apples and gives Mary 2")
            joined = len(middle) <= 2 and not _JOINING_STEMS.isdisjoint(middle)
            # what two sides do to each other alike: "for me to date him" / "for him to date
            # me" (a re-check's paraphrase, 0.974)
            mutual = len(middle) <= 2 and not _MUTUAL_VERBS.isdisjoint(middle)
            # two things a verb joins alike, before them: "mix bleach with vinegar" / "mix
            # vinegar with bleach", "pair my AirPods with my phone" / "pair my phone with my
            # AirPods" (a re-check's over-vetoed paraphrases)
            combined = _combined(a, start, middle)
            # the whole question turned round about a subordinate clause that opens one of
            # the blocks: "Is it a foot fault if I step on the baseline while serving?" /
            # "While serving, if I step on the baseline, is it a foot fault?" (a blind
            # trial's paraphrase, 0.991); not one clause's words ("is it safe to drive if
            # I drink" / "if I drive, is it safe to drink": the clause's verb stays put)
            moved = (start, end) == (0, len(a)) and bool({first[0], last[0]} & _SUBORDINATORS)
            return not (copula or carried or joined or mutual or combined or moved)
    return False
