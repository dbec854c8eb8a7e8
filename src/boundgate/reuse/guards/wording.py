"""Questions one word or form apart: mood, tense, modality, quantifiers and contrasts,
negation moved, affixes that flip a word ("like" / "dislike"), units and conversions."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..scope import question_openers
from .lexicon import (
    _BE,
    _LISTS,
    ADJECTIVE_ENDINGS,
    AGREEING,
    AUXILIARIES,
    IRREGULAR_PAST,
    LATIN_NEGATING_PREFIXES,
    MODALS,
    NEGATING_PREFIXES,
    NEGATING_SUFFIXES,
    NEGATIONS,
    NUMBER_WORDS,
    PAIRED_PREFIXES,
    PAIRED_SUFFIXES,
    PARTICIPLES,
    SENTENCES_JOINED,
    STOPWORDS,
    TENSES,
    TIME_PREPOSITIONS,
    UNIT_DIMENSIONS,
    UNITS,
    is_superlative,
    stem,
    wordnet_antonym,
)

if TYPE_CHECKING:
    from .extract import Features


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


_REQUEST_MODALS = frozenset(["can", "could", "would", "will"])


def _mood(text: str, toks: list[str]) -> str:
    """One sentence's mood: "question" for a yes/no question ("Is the earth flat?"),
    "statement" for a sentence ending in "." that opens with no auxiliary, question word or
    request ("The earth is flat."; ``scope.question_openers``), else "" (other questions,
    requests, fragments,
    several sentences): a statement asks for another reply (agreement, a correction) than
    the question it turns around."""
    stripped = text.strip()
    if not toks or SENTENCES_JOINED.search(stripped):
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


# what kind of reply a question word asks for, by the words that open it (see _asked_kind;
# the lists in english.toml's [asked_kinds])
_KINDS: dict[str, Any] = _LISTS["asked_kinds"]
_ASKED_AFTER_HOW: dict[str, str] = _KINDS["after_how"]
_ASKED_AFTER_WHAT: dict[str, str] = _KINDS["after_what"]
_WHEN_DATE = frozenset(_KINDS["when_date"])
_WHEN_TIMING = frozenset(_KINDS["when_timing"])
_TIME_COMPOUNDS = frozenset(_KINDS["time_compounds"])
_HOW_MANNER = frozenset(_KINDS["how_manner"])
_REASON_WORDS = frozenset(["why", "cause", "causes", "caused", "causing", "reason", "reasons"])
_ASKER = frozenset(["i", "we"])  # "how do I …": the asker's own doing, an instruction
_SKIPPED = frozenset(_KINDS["skipped"])
_OPENING_PREPOSITIONS = frozenset(_KINDS["opening_prepositions"])
_REQUEST_LEAD = frozenset(_KINDS["request_lead"])
_EXCLUSIVE = {kind: frozenset(others) for kind, others in _KINDS["exclusive"].items()}


def _asked_kind(words: list[str]) -> str:
    """The kind of reply a question asks for, from the question word that opens it:
    "date" (when did / was …, what year), "reason" (why, how come, what caused, what is the
    reason, what led to), "person" (who), "place" (where), "amount" (how many / much / long /
    old / far), "frequency" (how often), "manner" (how do / did / to …), "thing" (what is
    the tallest …); "" when none says ("what is …", "which …"). A question answering
    system's expected answer type (Li & Roth 2002, "Learning question classifiers"), coarse
    enough that paraphrases keep it."""
    # the question word opens the question (after a request's words: "explain why …", "can
    # you tell me when …"), or follows its preposition ("In what year …"); elsewhere it is
    # a relative ("scientists who believe …") or opens a clause
    lead = 0
    while lead < len(words) - 1 and words[lead] in _REQUEST_LEAD:
        lead += 1
    first = lead + (1 if len(words) > lead + 1 and words[lead] in _OPENING_PREPOSITIONS else 0)
    for i in range(lead, min(first + 1, len(words))):
        w = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w in ("who", "whom"):
            return "person"
        if w == "why":
            return "reason"
        if w == "where":
            return "place"
        if w == "when":
            if nxt in _WHEN_TIMING:
                return "timing"  # "when should I take creatine", "when to prune roses"
            return "date" if nxt in _WHEN_DATE else ""  # else a clause or a condition
        if w == "how":
            if kind := _after_how(words, i):
                return kind
            after = words[i + 2] if i + 2 < len(words) else ""
            if nxt == "to" or (nxt in _HOW_MANNER and after in _ASKER):
                return "instruction"  # "how to check …", "how do I fix …"
            return "manner" if nxt in _HOW_MANNER else ""
        if w in ("what", "whats", "which"):
            rest = [x for x in words[i + 1 : i + 4] if x not in _SKIPPED]
            if "time" in rest[:2] and _time_compound(words, i + 1):
                return ""  # "What is the time complexity …", "what time zone …"
            if rest and rest[0] in _ASKED_AFTER_WHAT:
                return _ASKED_AFTER_WHAT[rest[0]]
            if rest[1:2] and _ASKED_AFTER_WHAT.get(rest[1]) == "temperature":
                return "temperature"  # "At what oven temperature …"
            if rest[1:2] and is_superlative(rest[0]) and rest[1] in _ASKED_AFTER_WHAT:
                # "What's the best time / duration …" asks what "What time …" does (a trial:
                # "How long should a nap be?" / "What time of day is best for a nap?")
                return _ASKED_AFTER_WHAT[rest[1]]
            if rest[:2] in (["led", "to"], ["leads", "to"]):
                return "reason"
            if rest and is_superlative(rest[0]):
                return "thing"  # "What is the tallest mountain?" names one, no measure
            return ""
    return _asked_inside(words) if words and words[0] not in question_openers() else ""


def _asked_inside(words: list[str]) -> str:
    """The kind a search-box query asks for with its question word inside ("creatine when
    to take", "exfoliate how often"): "when to" and "how" + ``after_how`` only, which
    seldom open a relative clause."""
    for i, (w, nxt) in enumerate(itertools.pairwise(words)):
        if w == "when" and nxt == "to":
            return "timing"
        if w == "how" and nxt != "come" and (kind := _after_how(words, i)):
            return kind
    return ""


def _after_how(words: list[str], at: int) -> str:
    """The kind "how" at ``words[at]`` asks for by the word after it (``after_how``: "how
    many" an amount, "how long" a duration, "how long ago" a date), else ""."""
    nxt = words[at + 1] if at + 1 < len(words) else ""
    if nxt == "long" and words[at + 2 : at + 3] == ["ago"]:
        return "date"
    return str(_ASKED_AFTER_HOW.get(nxt, ""))


def _time_compound(words: list[str], start: int) -> bool:
    """Whether the first "time" from ``start`` on is followed by a word it makes a compound
    with (``time_compounds``: "time complexity", "time zone")."""
    at = words.index("time", start)
    return at + 1 < len(words) and words[at + 1] in _TIME_COMPOUNDS


def _asks_another_kind(fa: Features, fb: Features) -> bool:
    """Both questions say what kind of reply they ask for, and the kinds rule each other out
    (``_asked_kind``, ``_EXCLUSIVE``): "How did the war end?" / "What year did the war end?",
    "What year did Rome fall?" / "What led to the fall of Rome?"."""
    ka, kb = _asked_kind(fa.words), _asked_kind(fb.words)
    if {ka, kb} == {"reason", "instruction"}:
        # a reason against what the asker should do ("what causes tooth sensitivity" / "how
        # to fix tooth sensitivity"), unless a side asks both ("Why does my Netflix keep
        # buffering? How can I fix it?", "… and how do I stop it?")
        reason, doing = (fa, fb) if ka == "reason" else (fb, fa)
        return "how" not in reason.words and _REASON_WORDS.isdisjoint(doing.words)
    if {ka, kb} == {"timing", "amount"}:
        # an age or a count of days says when ("how old are babies when the soft spot
        # closes" / "when does a baby's fontanelle close", "how many days does a landlord
        # have to return a deposit" / "when does … have to give it back by")
        amount = fa if ka == "amount" else fb
        return not _counts_time(amount.words)
    if {ka, kb} == {"frequency", "amount"}:
        # how often against how much ("How often should I do water changes in a goldfish
        # tank?" / "How much water should I change each time …?", a blind trial's look-alike
        # served at 0.927), unless the amount counts times or time ("how many times a day")
        amount = fa if ka == "amount" else fb
        return not (_counts_time(amount.words) or _counts_times(amount.words))
    return bool(ka and kb and kb in _EXCLUSIVE.get(ka, frozenset()))


_PERIODS = frozenset(["day", "week", "month", "year", "hour", "night", "morning"])


def _counts_times(words: list[str]) -> bool:
    """Whether "how many" asks for a number of times ("how many times …", within two
    words), a count per period ("How many meals a day does a young dog need?") or the
    distance between ("how many miles between oil changes"): a frequency too."""
    for i, (w, nxt) in enumerate(itertools.pairwise(words)):
        if w == "how" and nxt == "many":
            rest = words[i + 2 :]
            per = any(
                x in ("a", "per", "each", "every") and y in _PERIODS
                for x, y in itertools.pairwise(rest)
            )
            return not {"times", "time"}.isdisjoint(rest[:2]) or per or "between" in rest
    return False


_TIME_UNITS = frozenset(["s", "min", "h", "d", "wk", "mo", "y"])


def _counts_time(words: list[str]) -> bool:
    """Whether "how old", or "how many / much" and a unit of time within two words, asks
    for the amount ("how many days", "how many more weeks")."""
    for i, (w, nxt) in enumerate(itertools.pairwise(words)):
        if w == "how" and nxt == "old":
            return True
        if w == "how" and nxt in ("many", "much"):
            return any(UNITS.get(x) in _TIME_UNITS for x in words[i + 2 : i + 4])
    return False


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
    if _span_within(fa, fb.asked_unit) or _span_within(fb, fa.asked_unit):
        return True
    shared = fa.measures.keys() & fb.measures.keys()
    return any(_distance(fa.measures[n]) != _distance(fb.measures[n]) for n in shared)


# the words before a unit of time that make it the span a "how long" is measured within
_SPAN_OF_ONE = frozenset(["a", "an", "one", "per", "each", "every"])


def _span_within(f: Features, counted: str) -> bool:
    """``f`` asks "how long" within one of the unit of time the other side counts ("how long
    can i wear daily contacts in a day" / "how many days can i wear daily contacts", a
    trial's look-alike served at 0.987: hours against days). ``counted``: the other side's
    ``asked_unit``. "How long … in days" asks in that unit and is no conflict."""
    if counted not in _TIME_UNITS or f.asked_unit:
        return False
    w = f.words
    asks_how_long = any(x == "how" and _after_how(w, i) == "duration" for i, x in enumerate(w))
    return asks_how_long and any(
        x in _SPAN_OF_ONE and UNITS.get(n) == counted for x, n in itertools.pairwise(w)
    )


# a speed measures its number in the distance it names: "60 miles in 1 hour" / "60 miles per
# hour" (read "60 mph") measure 60 alike; "30 km/h" / "30 mph" do not
_SPEED_DISTANCE = {"mph": "mi", "km/h": "km"}


def _distance(unit: str) -> str:
    return _SPEED_DISTANCE.get(unit, unit)


def _apart_at(fa: Features, fb: Features) -> int | None:
    """Where the two questions' stems differ when they differ in exactly one place, else
    None."""
    a, b = fa.stems, fb.stems
    if len(a) != len(b):
        return None
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    return diff[0] if len(diff) == 1 else None


def _one_word_apart(fa: Features, fb: Features, groups: dict[str, int]) -> bool:
    """The two questions' words (stems) are the same but one, and the two that differ are of
    ``groups`` and of different groups ("Do all mammals lay eggs?" / "Do any mammals …")."""
    if (i := _apart_at(fa, fb)) is None:
        return False
    x, y = fa.words[i], fb.words[i]
    return x in groups and y in groups and groups[x] != groups[y]


_HIGH_DEGREES = frozenset(_LISTS["high_degrees"])
_LOW_DEGREES = frozenset(_LISTS["low_degrees"])
_ASKER_STATES = frozenset(_LISTS["degree_asker_states"])


def _degrees(w: list[str]) -> dict[str, set[bool]]:
    """The words of ``w`` a degree word grades (``high_degrees``, ``low_degrees``; "a
    little" / "a bit" low), each with whether it is graded high; not a state of the asker
    ("slightly confused", ``degree_asker_states``) nor "very" as "the very first"."""
    out: dict[str, set[bool]] = {}
    for i in range(len(w) - 1):
        x, head = w[i], w[i + 1]
        low = x in _LOW_DEGREES or (x in ("little", "bit") and i > 0 and w[i - 1] == "a")
        high = x in _HIGH_DEGREES and not (i > 0 and w[i - 1] == "the")
        if (low or high) and head not in _ASKER_STATES and head not in STOPWORDS:
            out.setdefault(head, set()).add(high)
    return out


def _degree_apart(fa: Features, fb: Features) -> bool:
    """One side grades a word high ("very dull") and the other grades the same word low
    ("only slightly dull"), and neither both: "What grit should I start with for a very dull
    knife?" / "… for a knife that's only slightly dull?" (a blind trial's look-alike served
    at 0.918). Not a state of the asker ("I'm slightly confused" / "I'm very confused", a
    re-check's paraphrase)."""
    da, db = _degrees(fa.words), _degrees(fb.words)
    shared = da.keys() & db.keys()
    return any(len(da[h]) == 1 and len(db[h]) == 1 and da[h] != db[h] for h in shared)


# each word of ``exclusive_groups``: (its family, its group in the family)
_EXCLUSIVE_GROUPS = {
    w: (f, i)
    for f, family in enumerate(_LISTS["exclusive_groups"])
    for i, group in enumerate(family)
    for w in group
}


def _alternatives_apart(fa: Features, fb: Features) -> bool:
    """Each side names one alternative of a family of ``exclusive_groups``, and not the same
    one, wherever it stands ("… last in the freezer?" / "… good for in the refrigerator?", a
    new user's wrong reuses at 0.98; "Which vegetables are safe …" / "safe fruit treats", a
    blind trial's); a side naming two of a family says nothing of which."""
    ga = {_EXCLUSIVE_GROUPS[w] for w in fa.words if w in _EXCLUSIVE_GROUPS}
    gb = {_EXCLUSIVE_GROUPS[w] for w in fb.words if w in _EXCLUSIVE_GROUPS}
    for family in {f for f, _ in ga} & {f for f, _ in gb}:
        sa, sb = {g for f, g in ga if f == family}, {g for f, g in gb if f == family}
        if len(sa) == len(sb) == 1 and sa != sb:
            return True
    return False


# words that narrow a claim when added, all else the same ("always", "prime"; english.toml)
SCOPE_WORDS = frozenset(_LISTS["narrowing_words"])


def _inserted(a: list[str], b: list[str], n: int) -> tuple[str, ...] | None:
    """The ``n`` words one of ``a``, ``b`` has in one place more than the other, all else the
    same ("is it safe" / "is it always safe": ("always",)); None if they differ otherwise."""
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    if len(long_) != len(short) + n:
        return None
    i = next((i for i, (x, y) in enumerate(zip(short, long_)) if x != y), len(short))  # noqa: B905
    return tuple(long_[i : i + n]) if short[i:] == long_[i + n :] else None


def _other_one_asked(fa: Features, fb: Features) -> bool:
    """The same words but one, and each side's word stands elsewhere in both texts: the same
    setup, asked about the other one ("Alice has 5 apples and gives Bob 2. How many does
    Alice have?" / "… Bob have?", "Bert and Ernie share a room. What color is Bert?" /
    "… Ernie?"; a trial was served 11 such pairs, pair scores 0.92-0.99)."""
    if (i := _apart_at(fa, fb)) is None:
        return False
    x, y = fa.stems[i], fb.stems[i]
    return x in fa.content and y in fb.content and y in fa.stems and x in fb.stems


_AHEAD = frozenset(["a", "an", "few", "couple"])


def _time_preposition_apart(fa: Features, fb: Features) -> bool:
    """One word apart, a preposition of time of another meaning (``TIME_PREPOSITIONS``):
    "Should I use heat on a sprain in / after the first 48 hours?" (a trial was served it at
    0.912). "in" before a count of time is a point that far ahead, as "after" is: "worth in
    / after 5 years" ask one thing (a re-check)."""
    if not _one_word_apart(fa, fb, TIME_PREPOSITIONS):
        return False
    i = _apart_at(fa, fb)
    assert i is not None
    following = fa.words[i + 1] if i + 1 < len(fa.words) else ""
    ahead = following.isdigit() or following in NUMBER_WORDS or following in _AHEAD
    return not ({fa.words[i], fb.words[i]} == {"in", "after"} and ahead)


def _one_word_added(fa: Features, fb: Features, added: frozenset[str]) -> bool:
    """One side is the other with one word of ``added`` more."""
    extra = _inserted(fa.words, fb.words, 1)
    return extra is not None and extra[0] in added


# question words that ask for a detail a yes/no question does not: "When does time end?" /
# "Does time end?" (served in a benchmark run). Not "why" and "how": "Why is X good?" and
# "How can I X?" are asked as "Is X good?" and "Can I X?" (Quora pairs them as duplicates).
DETAIL_WORDS = frozenset(["when", "where", "who", "whom", "what", "which"])


def _asks_for_a_detail(fa: Features, fb: Features) -> bool:
    """One side is the other's yes/no question with a question word in front ("When does
    time end?" / "Does time end?")."""
    extra = _inserted(fa.words, fb.words, 1)
    if extra is None or extra[0] not in DETAIL_WORDS:
        return False
    longer = fa if len(fa.words) > len(fb.words) else fb
    return longer.words[0] == extra[0]


# verbs that put an end to what follows as a gerund: "stop biting", "stop my dog from biting"
_STOP_FORMS = frozenset(["stop", "stops", "stopped", "stopping"])
_KEEPS = frozenset(["keep", "keeps", "kept", "keeping"])
_STOPPING = _STOP_FORMS | frozenset(
    ["quit", "quits", "quitting", "prevent", "prevents", "prevented", "keep", "keeps", "kept"]
)


# words before a stopping verb that make it one sought ("how do I stop", "how to stop")
_STOP_SOUGHT = frozenset(["to", "i", "we", "you"])


def _stopped_for_not(fa: Features, fb: Features) -> int:
    """1 when ``fb`` says "not to V" (or "not V") where ``fa`` says "stop V-ing" / "stop …
    from V-ing" / "keep … from V-ing" of the same verb: one negation of ``fb``'s is matched
    by ``fa``'s stopping verb ("teach a puppy not to bite" / "train my puppy to stop biting"
    was vetoed as a negation, a trial). Only for the verb ``fb`` negates: "stop itching" alone
    against "relieve itching" is not counted. Nor where ``fb`` asks why a thing does not
    happen and ``fa`` how to stop it ("why does my dog not bark" / "how do I stop my dog
    barking": the cause of an absence against a remedy for the thing); "why is my rabbit not
    eating" / "my rabbit stopped eating, why?" and "why do I not dream anymore" / "why did I
    stop dreaming" (both ask why) still match."""
    # "not", and a contracted auxiliary's: "so it doesnt go stale" / "keep it from going
    # stale" (a trial's over-veto, pair 0.943); not a stopping verb negated ("won't stop")
    nots = [
        i
        for i, w in enumerate(fb.words)
        if w == "not"
        or (
            w in NEGATIONS
            and w.endswith("nt")
            and (i + 1 == len(fb.words) or fb.words[i + 1] not in _STOPPING)
        )
    ]
    negated = {
        fb.stems[j]
        for i in nots
        for j in (i + 1, i + 2)
        if j < len(fb.words) and fb.words[j] != "to"
    }
    if not negated:
        return 0
    asks_why = "why" in fb.words[: nots[0]] and "why" not in fa.words
    for i, w in enumerate(fa.words):
        if w not in _STOPPING or (asks_why and (i == 0 or fa.words[i - 1] in _STOP_SOUGHT)):
            continue
        for j in range(i + 1, min(i + 6, len(fa.words))):
            keeps_on = w in _KEEPS and "from" not in fa.words[i + 1 : j]  # "keep V-ing"
            if fa.words[j].endswith("ing") and fa.stems[j] in negated and not keeps_on:
                return 1
    return 0


def _stop_against_keep(fa: Features, fb: Features) -> bool:
    """``fa`` does not stop V-ing where ``fb`` does not keep V-ing (a negation right before
    "stop"; one of the two words before "keep", which stands right before the same -ing word
    or with "on" between), so the negation counts tie while the meanings are opposite: "the
    tap won't stop leaking" / "the tap doesn't keep leaking" was served at 0.98 (a
    re-check). Without the negations "keep V-ing" and "stop V-ing" may ask one thing ("we
    keep fighting, how do couples handle this" / "how can couples stop fighting")."""
    stopped = {
        fa.stems[i + 1]
        for i, w in enumerate(fa.words[:-1])
        if w in _STOP_FORMS
        and i
        and fa.words[i - 1] in NEGATIONS
        and fa.words[i + 1].endswith("ing")
    }
    for j, w in enumerate(fb.words):
        if w not in _KEEPS or not any(x in NEGATIONS for x in fb.words[max(0, j - 2) : j]):
            continue
        k = j + 1 + (j + 1 < len(fb.words) and fb.words[j + 1] == "on")
        if k < len(fb.words) and fb.words[k].endswith("ing") and fb.stems[k] in stopped:
            return True
    return False


_PREVENTION = frozenset(_LISTS["prevention_words"])
_REMEDY = frozenset(_LISTS["remedy_words"])
_CLEAR = frozenset(_LISTS["clear_words"])
_CLEAR_OBJECTS = frozenset(_LISTS["clear_objects"])
_KEPT_FROM = _STOPPING | _PREVENTION | frozenset(["avoid", "avoids", "avoiding", "keeping"])


def _remedy_at(words: list[str], i: int) -> bool:
    """``words[i]`` names a remedy asked for: a ``remedy_words`` word after no word that
    keeps something from happening ("stop Dropbox from removing my files", "keep my glasses
    clear"), and "clear" only before what it clears ("clear the drain")."""
    w = words[i]
    if w not in _REMEDY or not _KEPT_FROM.isdisjoint(words[:i]):
        return False
    return w not in _CLEAR or (i + 1 < len(words) and words[i + 1] in _CLEAR_OBJECTS)


_ONSET = frozenset(_LISTS["onset_words"])
_AVOID = frozenset(["avoid", "avoids", "avoided", "avoiding"])


def _prevents(words: list[str]) -> bool:
    """The question asks to prevent something: a ``prevention_words`` word, "avoid" right
    before an ``onset_words`` word ("avoid getting shin splints"), or "stop" / "keep" and
    "from" before one ("keep from getting shin splints", "stop my dog from getting fleas")."""
    if not _PREVENTION.isdisjoint(words):
        return True
    for i, w in enumerate(words[:-1]):
        if w in _AVOID and words[i + 1] in _ONSET:
            return True
        if w in _STOPPING or w in _KEEPS:
            rest = words[i + 1 : i + 6]
            if "from" in rest and any(x in _ONSET for x in rest[rest.index("from") + 1 :]):
                return True
    return False


def _prevention_against_remedy(fa: Features, fb: Features) -> bool:
    """One question asks how to prevent something and not how to put it right, the other
    how to put it right and not how to prevent it (``prevention_words``, ``remedy_words``
    in english.toml; ``_remedy_at``): "How do I prevent my nozzle from clogging?" / "How do
    I clear a blocked nozzle?" (a trial was served it at 0.941), "Can gum disease be
    prevented / cured?"."""

    def side(f: Features) -> str:
        prevents = _prevents(f.words)
        remedies = any(_remedy_at(f.words, i) for i in range(len(f.words)))
        if prevents == remedies:  # neither, or both ("prevent and treat acne")
            return ""
        return "prevent" if prevents else "remedy"

    a, b = side(fa), side(fb)
    return bool(a and b and a != b)


def _negation_moved(fa: Features, fb: Features) -> bool:
    """The same words, a negation or a negating phrase elsewhere or added: "Why is it not
    good to sleep after eating?" / "Why is it good to not sleep …?", "get rid of acne" /
    "get acne", "is it safe" / "is it anything but safe" (a trial generated these; 0.95-0.97)."""
    a, b = _agreeing(fa), _agreeing(fb)
    if len(a) == len(b) and a != b and sorted(a) == sorted(b):
        kept_a = [w for w in a if w not in NEGATIONS]
        return len(kept_a) < len(a) and kept_a == [w for w in b if w not in NEGATIONS]
    return _inserted(fa.words, fb.words, 2) in _NEGATING_PHRASES


def _agreeing(f: Features) -> list[str]:
    """``f``'s stems, negations as written and a verb's agreement with its subject left out
    ("a guest RSVPs but doesn't show up" / "a guest doesn't RSVP but shows up": a trial was
    served it at 0.925; a stem's "-s" too, which Snowball keeps after no vowel: "rsvps")."""
    return [
        w if w in NEGATIONS else AGREEING.get(w, _without_s(st))
        for w, st in zip(f.words, f.stems, strict=True)
    ]


def _without_s(st: str) -> str:
    return st[:-1] if len(st) > 3 and st.endswith("s") and not st.endswith("ss") else st


_NEGATING_PHRASES = frozenset([("rid", "of"), ("anything", "but")])


def _modality_conflict(fa: Features, fb: Features) -> bool:
    """Questions that differ only in a modal, of different meanings (asking what may be, what
    is advised, what will be): "Can I take aspirin while pregnant?" / "Should I …?", "What
    would be Trump's policy?" / "What should be …?", "How would India be if …?" / "How should
    India be …?" (a trial was served these, 0.95-0.99). Not a request ("Can you share …" /
    "Will you share …" ask the same), nor how someone asking may or should do something
    ("How can I …" / "How should I …", which Quora's labels call one question)."""
    i = _apart_at(fa, fb)
    if i is None or not _one_word_apart(fa, fb, MODALS):
        return False
    after = fa.words[i + 1 : i + 2]
    if i == 0:
        return after != ["you"]
    return not (after and after[0] in _ASKERS)


# "how can I …" / "what should I do …": what the asker may or should do is advice either way
_ASKERS = frozenset(["i", "we", "you", "one"])


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


def _affix_bases(word: str) -> list[str]:
    """The words that ``word`` negates by a negating affix ("unlikely" → "likely",
    "harmless" → "harm"; "incorrect" → "correct" only as WordNet antonyms:
    ``LATIN_NEGATING_PREFIXES``); roots keep at least 3 letters."""
    out = [
        word[len(p) :]
        for p in NEGATING_PREFIXES
        if word.startswith(p)
        and (p not in LATIN_NEGATING_PREFIXES or _latin_negation(word, word[len(p) :]))
    ]
    out += [word[: -len(s)] for s in NEGATING_SUFFIXES if word.endswith(s)]
    return [w for w in out if len(w) >= 3]


def _latin_negation(word: str, base: str) -> bool:
    """Whether ``word`` is ``base`` negated by Latin's in- (``LATIN_NEGATING_PREFIXES``)."""
    return base.endswith(ADJECTIVE_ENDINGS) or wordnet_antonym(word, base)


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


def _asks_how_many(f: Features) -> bool:
    """Whether the question says "how many" or "how much" (of a unit or of anything else:
    "How many naps a day …", "How many yards are in a mile?")."""
    return any(w == "how" and n in ("many", "much") for w, n in itertools.pairwise(f.words))


def _asked_alone(f: Features, g: Features) -> bool:
    """``f`` asks "how many" of a unit that ``g`` neither asks for nor names, nor names
    another unit of its dimension in place of (``_unit_conflict``): "how many miles is a
    marathon" / "marathon distance in km" still differ (a re-check's finding)."""
    if not f.asked_unit or _asks_how_many(g) or f.asked_unit in g.units:
        return False
    dim = UNIT_DIMENSIONS.get(f.asked_unit, f.asked_unit)
    return all(UNIT_DIMENSIONS.get(u, u) != dim for u in g.units - f.units)


_RATE_WORDS = frozenset(["per", "a", "an", "each", "every"])
# the one period a question without one means: "how many hours should I sleep" is per day;
# "… per week", "… a year" say something it does not (a re-check)
_DAY = "d"


def _rate_units(f: Features) -> frozenset[str]:
    """The day ``f`` names as a rate's period, the period a question without one means:
    after "per", "each", "every", or "a" not after a small word ("hours per day", "16 hours
    a day"; not "in a day": a span). Other periods are not dropped ("per week")."""
    w = f.words
    return frozenset(
        UNITS[w[i + 1]]
        for i in range(len(w) - 1)
        if w[i] in _RATE_WORDS
        and UNITS.get(w[i + 1]) == _DAY
        and (w[i] not in ("a", "an") or (i and w[i - 1] not in STOPWORDS))
    )


def _without_rate(units: frozenset[str], rate: frozenset[str]) -> frozenset[str]:
    """``units`` without the rate periods ``rate`` whose dimension keeps another unit there
    ("hours … per day": hours still say the time; "naps a day" against "hours of sleep"
    keeps its day, the one time it names)."""

    def dim(u: str) -> str:
        return str(UNIT_DIMENSIONS.get(u, u))

    rest = units - rate
    return frozenset(u for u in units if u not in rate or not any(dim(r) == dim(u) for r in rest))


def _unit_conflict(fa: Features, fb: Features) -> bool:
    """Both sides name units of one dimension, and not the same ones ("5 km" / "5 miles").
    A unit on one side only is no conflict: "under 15000" and "under 15000 INR" ask the
    same, and a number that differs is the number guard's business. "Degrees" beside a
    named scale says nothing more: "30 degrees Fahrenheit" is "30 fahrenheit". Nor is the
    unit "how many" asks for on one side only, where the other asks for none and does not
    name it: "How many hours of sleep does a 3 year old need?" / "sleep needs for a three
    year old" (a trial's over-veto: hours and years are both times); "How many hours are in
    a day?" / "How many minutes are in a day?" ask for two (``_measure_conflict``)."""
    a, b = fa.units, fb.units
    if _asked_alone(fa, fb):
        a = a - {fa.asked_unit}
    if _asked_alone(fb, fa):
        b = b - {fb.asked_unit}
    # a rate's period on one side only ("hours … per day" / "toddler 2 years sleep hours", a
    # user's trial's over-veto at 0.965): "per day" against "per week" still differ
    rate_a, rate_b = _rate_units(fa), _rate_units(fb)
    if rate_a and not rate_b:
        a = _without_rate(a, rate_a - b)
    elif rate_b and not rate_a:
        b = _without_rate(b, rate_b - a)

    def of(units: frozenset[str], dim: str) -> set[str]:
        named = {u for u in units if UNIT_DIMENSIONS.get(u, u) == dim}
        return named - {"deg"} if len(named) > 1 else named

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
