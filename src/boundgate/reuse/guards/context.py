"""Readings of what surrounds the question itself: a sentence beside one both sides share,
an instruction on form or manner before it, who asks, a second question joined by "and"
(the ``context`` and ``order`` conflicts of ``compare``), and a hedge before a question,
which ``compare`` leaves out before it reads the two sides."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from .extract import FEATURES_CACHE, _is_content, features
from .lexicon import (
    _LISTS,
    _STOPWORD_STEMS,
    IRREGULAR_PAST,
    NEGATIONS,
    opener,
    self_described,
    stem,
    words,
)


def _sentence_changed(a: str, b: str) -> bool:
    """A sentence beside one both texts share says something else, or stands on one side
    only: a template with its context or its instruction changed or added asks something
    else ("I am vegetarian. What should I eat for dinner?" / "I am vegan. …", "What is the
    capital of Italy? Answer in one word." / "… Answer in detail.", "What is DNA?" / "What is
    DNA? Give the answer as JSON.": a trial was served all of these, pair scores 0.95-0.98,
    the shared sentence outweighing the other). Sentences moved around, changed only in small
    words and endings ("the journal" / "a journal", "need" / "needed"), or a greeting or
    thanks added, are no change; a changed or added *question* is left to the models (it may
    be a paraphrase: "What is their main job?" / "What are their functions?"), and so is a
    sentence that tells what the asker did, added on one side only
    (``_narrates``: "I had my wisdom teeth removed earlier this week. How can I tell if I
    have a dry socket?")."""
    sa, sb = _sentences(a), _sentences(b)
    if len(sa) + len(sb) < 3 or abs(len(sa) - len(sb)) > 1 or set(sa).isdisjoint(sb):
        return False
    changed_a = [x for x in sa if x not in sb]
    changed_b = [x for x in sb if x not in sa]
    if any(q for _, q in changed_a + changed_b):
        return False
    if len(sa) != len(sb) and (changed_a if len(sa) < len(sb) else changed_b):
        return False  # not one sentence added, the rest reworded across sentences
    if len(sa) != len(sb) and all(_narrates(ws) for ws, _ in changed_a + changed_b):
        return False  # what the asker did, added: the pair model's to read

    def content(changed: list[tuple[tuple[str, ...], bool]]) -> set[str]:
        return _content_stems(w for ws, _ in changed for w in ws)  # "needed" as "need"

    added = content(changed_a) ^ content(changed_b)
    return bool(added) and not added <= _COURTESY_STEMS


# a sentence that tells what the asker did ("I had my wisdom teeth removed earlier this
# week.", "My nephew gave me a Rubik's cube for my birthday."), added on one side only, is left
# to the pair model: it reads background that does not change the answer together (blind
# trial T23's context paraphrases, 0.76-0.99) and events that do apart ("My toddler swallowed
# a button battery." 0.45, "My dog ate chocolate." 0.01). What the asker is, has, lives with
# or is doing ("I'm a truck driver.", "I have diabetes.", "My dog is a chihuahua.", "I'm
# driving in New York City.") stays a change: who asks is often the answer (a re-check of the
# forty-ninth session, and this session's: a, d scored "I'm a beginner. How much weight
# should I lift?" 0.95; bench/RESULTS.md).
_SUBJECTS = frozenset(["i", "we"])
_HAVE_CONTRACTED = frozenset(["ive", "weve"])
_NARRATING_ADVERBS = frozenset(["just", "already", "recently", "finally", "also", "only", "even"])
_PARTICIPLES = frozenset(["got", "done", "made", "seen", "gotten", "tried"])
_COPULAS = frozenset(["is", "are", "was", "were", "has", "have", "had"])


def _past(word: str) -> bool:
    """A verb's past tense: "-ed" (not "-eed": "need", "feed") or an irregular past ("gave",
    "lost", "had", "got")."""
    return (
        (word.endswith("ed") and not word.endswith("eed"))
        or word in IRREGULAR_PAST
        or word in ("had", "got", "made", "did")
    )


def _narrates(ws: tuple[str, ...]) -> bool:
    """Whether a sentence's words tell what the asker did: "I" or "we" then a past ("I lost a
    race", "I just got"), "I've" then a participle ("I've got band rehearsal") or "been" and
    "-ing" ("I've been knitting scarves"; not "I've been diagnosed", "I've had"), or "my"/"our"
    and at most three words then a past, of something done to the asker ("My teacher gave me",
    "My friends have been talking me into"; not "My dog is", "My budget is", nor what befell
    another: "My dog ate a whole bunch of grapes an hour ago and is vomiting." read with "Can
    dogs eat grapes?" 0.87 by a, d, a new user's look-alike). Not what the asker is doing:
    "I'm driving in New York City.", "I'm running Ubuntu." say where and with what, which
    change the answer (a helper's 80 look-alikes of this form, three served with it)."""
    rest = [w for w in ws if w not in _NARRATING_ADVERBS]
    if len(rest) < 3:
        return False
    first, verb = rest[0], rest[1]
    if first in _SUBJECTS:
        return (_past(verb) and verb != "had") or (verb == "had" and rest[2] in ("my", "a", "an"))
    if first in _HAVE_CONTRACTED:  # "I've been knitting", not "I've been diagnosed", "I've had"
        if verb == "been":
            return rest[2].endswith("ing")
        return verb in _PARTICIPLES or (_past(verb) and verb != "had")
    if first in ("my", "our") and ("me" in rest or "us" in rest):  # done to the asker
        for i, w in enumerate(rest[1:5], start=1):
            if w in ("have", "has") and i + 1 < len(rest) and rest[i + 1] == "been":
                return True
            if w in _COPULAS:
                return False
            if i > 1 and _past(w):
                return True
    return False


def narration_dropped(a: str, b: str) -> tuple[str, str]:
    """``a`` and ``b`` with a sentence that tells what the asker did (``_narrates``) left out
    where only one side has it, the rest of both is questions and it names nothing the other
    side asks about that its own questions leave out: "I just dropped my phone in the pool
    and it won't turn on. How long should I leave my phone in rice?" is read by the guards as
    "How long should I leave my phone in rice?" (its "won't" no negation). The sentence is
    the pair model's to read, with its negations and numbers (``_sentence_changed``), so
    ``compare`` reads the questions without it. Not "My friend told me black holes don't
    exist. Is this true?" against "Is it true that black holes really don't exist?" (a Quora
    duplicate: the sentence is the question's subject)."""
    sa, sb = _sentences(a), _sentences(b)
    if abs(len(sa) - len(sb)) != 1:
        return a, b
    longer, mine, other = (a, sa, sb) if len(sa) > len(sb) else (b, sb, sa)
    told = [i for i, (_, question) in enumerate(mine) if not question]
    if len(told) != 1 or not all(q for _, q in other) or not _narrates(mine[told[0]][0]):
        return a, b
    told_stems = _content_stems(mine[told[0]][0])
    kept_stems = _content_stems(w for i, (ws, _) in enumerate(mine) if i != told[0] for w in ws)
    if told_stems & _content_stems(w for ws, _ in other for w in ws) - kept_stems:
        return a, b  # the sentence names what the other side asks about: not background
    kept = " ".join(p for i, p in enumerate(_sentence_texts(longer)) if i != told[0])
    return (kept, b) if longer is a else (a, kept)


def _content_stems(ws: Iterable[str]) -> set[str]:
    """The stems of the content words among ``ws``, stopwords' stems left out."""
    return {st for w in ws if _is_content(w) and (st := stem(w)) not in _STOPWORD_STEMS}


LEAD_IN_WORDS = 5  # _lead_in: the longest phrase before a ", " read as a lead-in
INSTRUCTION_WORDS = 8  # _lead_in: the longest instruction before a ": "
# what opens an instruction on form or manner before ": " or ", " (english.toml)
INSTRUCTION_VERBS = frozenset(_LISTS["instruction_verbs"])
_MANNER_PREPOSITIONS = frozenset(["in", "as", "like", "with", "using"])
_STANCE = frozenset(_LISTS["stance_adverbs"])  # "Honestly, …": no lead-in


def _lead_in(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(lead-in, body) of ``text``: an instruction on form or manner before its first ": "
    ("Be concise: …", "Summarize this: …", "ELI5: …") or ", " ("In rhyme, tell me why …",
    "Poetically, what is the sun?", "In one word, …"): opening with an instruction verb
    (``instruction_verbs``) or with "in", "as", "like", "with" or "using" (at most
    ``INSTRUCTION_WORDS`` words before ": ", ``LEAD_IN_WORDS`` before ", "), or before a
    comma one word in "-ly". Else no
    lead-in, and all of the text as the body. (A topic label, "Social Studies: What is …?",
    and a question before its options, "Which is better, A or B?", are no lead-ins.)"""
    for mark, longest in ((": ", INSTRUCTION_WORDS), (", ", LEAD_IN_WORDS)):
        head, found, tail = text.partition(mark)
        lead = words(head)
        if not found or not lead or len(lead) > longest:
            continue
        adverb = (
            mark == ", " and len(lead) == 1 and lead[0].endswith("ly") and lead[0] not in _STANCE
        )
        if lead[0] in INSTRUCTION_VERBS or lead[0] in _MANNER_PREPOSITIONS or adverb:
            return tuple(lead), tuple(words(tail))
    return (), tuple(words(text))


def _lead_in_changed(a: str, b: str) -> bool:
    """The same question or text after a lead-in that one side adds or changes: an
    instruction on form or manner asks for another answer ("Be concise: what is a neural
    network?" / "What is a neural network?", "ELI5: …", "In one word, …" / "In detail, …",
    "Summarize this: <text>" / "Expand this: <text>"; a trial was served 16 such pairs, pair
    scores 0.92-0.98)."""
    (la, ba), (lb, bb) = _lead_in(a), _lead_in(b)
    # without a lead-in, the body is all of the text
    return la != lb and ba == bb and len(ba) >= 3


# who asks, said before the question: "as a freelancer, …", "I'm a nurse, …" (and "X here,
# …", read as "as a X, …" by ``self_described``)
_ASKER = re.compile(
    r"^\s*(?:as|i['’]?m|i\s+am)\s+(?:an?|the)\s+((?:[^\W\d_][\w'-]*\s+){0,3}?[^\W\d_][\w'-]*)"
    r"\s*[,:.!?–—-]",
    re.IGNORECASE,
)


def _asker(text: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """(stems of who asks, stems of the rest) when ``text`` opens by saying who asks."""
    text = self_described(text)
    m = _ASKER.match(text)
    if m is None:
        return None
    return (
        frozenset(stem(w) for w in words(m.group(1)) if _is_content(w)),
        frozenset(stem(w) for w in words(text[m.end() :]) if _is_content(w)),
    )


def _askers_swapped(a: str, b: str) -> bool:
    """Each side says who asks, and each names the other's asker in its question: "freelancer
    here, my client hasn't paid my invoice" / "client here, a freelancer says I haven't paid
    their invoice" (a trial was served it once "X here" was read as "as a X", 0.929)."""
    wa, wb = _asker(a), _asker(b)
    if wa is None or wb is None or not wa[0] or not wb[0] or wa[0] == wb[0]:
        return False
    return not wa[0].isdisjoint(wb[1]) and not wb[0].isdisjoint(wa[1])


# a second question joined by "and": "What is gout and what causes it?"
_SECOND_QUESTION = re.compile(
    rf"^(.+?),?\s+and\s+({opener(yes_no=False)}.+)$",
    re.IGNORECASE,
)


def _second_question_changed(a: str, b: str) -> bool:
    """The same first question with another second one joined by "and": "What is inflation
    and what causes it?" / "… and how is it measured?" (a trial was served 7 such pairs, pair
    scores 0.95-0.97). A second question on one side only ("What is X?" / "What is X and
    why?") is left to the models: Quora pairs it as a duplicate 43 times in quora_train."""
    ma, mb = _SECOND_QUESTION.match(a.strip()), _SECOND_QUESTION.match(b.strip())
    if ma is None or mb is None or words(ma[1]) != words(mb[1]) or len(words(ma[1])) < 2:
        return False
    second_a, second_b = ({stem(w) for w in words(m[2]) if _is_content(w)} for m in (ma, mb))
    return second_a != second_b


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
        "lol",
        "haha",
        "thx",
        "ty",
        "curious",
        "wondering",
    ]
)


@lru_cache(maxsize=FEATURES_CACHE)
def _sentence_texts(text: str) -> tuple[str, ...]:
    """The sentences of ``text`` as written (split after ``.?!``, a space and a capital),
    those without a word left out."""
    return tuple(p for p in _SENTENCE_BREAK_KEEP.split(text.strip()) if words(p))


@lru_cache(maxsize=FEATURES_CACHE)
def _sentences(text: str) -> tuple[tuple[tuple[str, ...], bool], ...]:
    """The sentences of ``text`` (``_sentence_texts``): each as its words, and whether it is
    a question (ends in "?")."""
    return tuple((tuple(words(p)), p.rstrip().endswith("?")) for p in _sentence_texts(text))


# a sentence ends at ".?!" before a space and a capital, a digit does not start one ("0! 1?")
_SENTENCE_BREAK_KEEP = re.compile(r"(?<=[.?!])\s+(?=[A-Z\"'“(])")


HEDGE_STEMS = frozenset(stem(w) for w in _LISTS["hedge_words"])
_PREAMBLE_END = re.compile(r"(?:[,:.?!]|\bbut)\s+")


# a clause that says only that the asker does not know ("no idea", "not sure", "idk"): its
# negation asks nothing of the answer
_IGNORANCE_STEMS = frozenset(
    stem(w) for w in ["idea", "clue", "sure", "know", "understand", "understood", "idk", "dunno"]
)
_CLAUSE_SPLIT = re.compile(r"([,;:.?!]+(?:\s+|$)|\s+but\s+)")
_QUESTION_STEM = stem("question")
# what asking may be to the one asked: "if you don't mind", "if it's not too much trouble",
# "if it isn't a bother" (a blind trial's polite paraphrase, vetoed for its "not")
_IMPOSING = frozenset(["mind", "trouble", "bother"])
# any text that ``words`` reads a negation in matches (a cheap test before reading it)
_NEGATION_HINT = re.compile(r"\b(?:" + "|".join(sorted(NEGATIONS)) + r")\b|n['’]t\b", re.IGNORECASE)
# a negated instruction on the answer is no hedge ("don't explain, …")
_INSTRUCTION_STEMS = frozenset(stem(w) for w in _LISTS["instruction_verbs"])
_HEDGES = HEDGE_STEMS | _COURTESY_STEMS | _IGNORANCE_STEMS


def _ignorance_dropped(text: str) -> str:
    """``text`` without its negated hedges: clauses that only say the asker does not know or
    excuse the question ("what tension should I string my racquet at, no idea lol", "not
    sure, but is …", "If you don't mind me asking, how often …": blind trials' paraphrases,
    vetoed for the hedge's negation, however the rest was worded). Such a clause is set off
    by punctuation or "but"; has a negation and a word of not knowing, "if … mind" or
    "question" ("I hope this isn't a silly question, but …"); and its content words are all
    hedges, courtesy or words of not knowing (``hedge_words``; "if it's not too much trouble"
    too), none an instruction ("don't explain, …" is kept). What is left must hold three
    words or more. "I don't know my password, how do I reset it?" keeps its clause
    ("password" is content), as do "without asking her out" and "I can't get her off my
    mind"."""
    if _NEGATION_HINT.search(text) is None:
        return text  # nothing negated: no such clause (most questions)
    parts = _CLAUSE_SPLIT.split(text)
    kept: list[str] = []
    for k in range(0, len(parts), 2):
        toks = words(parts[k])
        stems = {stem(w) for w in toks if _is_content(w) and w not in NEGATIONS}
        excuses = (
            not _IGNORANCE_STEMS.isdisjoint(stems)
            or ("if" in toks and not _IMPOSING.isdisjoint(toks))
            or _QUESTION_STEM in stems  # "I hope this isn't a silly question"
        )
        if (
            toks
            and excuses
            and not NEGATIONS.isdisjoint(toks)
            and stems - _STOPWORD_STEMS <= _HEDGES
            and _INSTRUCTION_STEMS.isdisjoint(stems)
        ):
            continue
        kept.append(parts[k] + (parts[k + 1] if k + 1 < len(parts) else ""))
    left = "".join(kept)
    return left if len(kept) * 2 < len(parts) + 1 and len(words(left)) >= 3 else text


# a near time a context before the question names, which does not change what it asks:
# one to come ("tonight", "next week", "this year") or just past ("yesterday", "last
# weekend": when what the context tells happened)
_PAST = r"earlier today|yesterday|last night|the other day|last (?:week|weekend)"
_NEAR_TIME = re.compile(
    rf"\b(?:tonight|today|tomorrow|later today|this (?:morning|afternoon|evening)"
    rf"|(?:this|next) (?:week|weekend|month|year)|{_PAST})\b",
    re.IGNORECASE,
)
# the near times just past, which stay a date in some questions (below)
_NEAR_PAST = re.compile(rf"\b(?:{_PAST})\b", re.IGNORECASE)
# a question whose answer turns on how long ago it was ("is it too late …", "can it still …")
# or another side that says when too ("I just …", "… days ago"): a past time then stays
_TIMING_ASKED = re.compile(
    r"\b(?:too late|still|yet|already|anymore|any more|in time|how long ago)\b", re.IGNORECASE
)
_WHEN_SAID = re.compile(
    r"\b(?:just|ago|recently|earlier|a while back|a moment|moments)\b", re.IGNORECASE
)
# the end of a context that a question follows: "…, can players …", "… - how do I …"
_QUESTION_FOLLOWS = re.compile(
    rf"(?:[,:;.!]|\s[-–—])\s+(?=(?:(?:so|but|and)\s+)?{opener('any')})", re.IGNORECASE
)
_ASKS = re.compile(rf"\s*{opener()}", re.IGNORECASE)


def _near_time_dropped(a: str, b: str) -> tuple[str, str]:
    """``a`` and ``b`` without a near time ("tonight", "next week", "yesterday", "last
    weekend") in a context before one side's question, when the other side names no time:
    "We're playing Catan for the first time tonight - can players trade during someone
    else's turn?", "Date night next week with a new sitter - how do I get a babysitter ready
    …", "We had an argument at the courts yesterday about this. Is it a fault when …" (blind
    trials' paraphrases, vetoed as another date). A day in the words that say who asks is
    still read as a date: it often says when ("Sunday churchgoer here, is street parking
    free?", a re-check), and so is a time just past where the question turns on how long ago
    it was ("… last night. Is it too late to …", "can it still …") or the other side says
    when too ("My toddler just swallowed …", a re-check's look-alikes). The context is a
    statement (no question word first, no "?") ended by punctuation or a dash before a
    question; a time in the question itself ("can I swim today") is read as before, as are
    months, seasons and years anywhere."""

    def dropped(x: str, y: str) -> str:
        if _NEAR_TIME.search(x) is None or (m := _QUESTION_FOLLOWS.search(x)) is None:
            return x
        context = x[: m.start()]
        if _ASKS.match(context) or "?" in context or features(y).dates:
            return x
        if _NEAR_PAST.search(context) and (
            _TIMING_ASKED.search(x[m.start() :]) or _WHEN_SAID.search(y)
        ):
            return x  # how long ago it was may be the answer (a re-check)
        return _NEAR_TIME.sub("", context) + x[m.start() :]

    return dropped(a, b), dropped(b, a)


def _without_hedge(a: str, b: str) -> tuple[str, str] | None:
    """``a`` and ``b`` with a hedge before one of them dropped, when the rest is the other
    one's words: "If you don't mind me asking, what is a black hole?" / "What is a black
    hole?", "Not sure if this is a dumb question but why …?", "I never understood this: why
    …?" (a trial's paraphrases, vetoed for the hedge's negation). A hedge is a clause ending
    in ",", ":", ".", "?", "!" or "but" whose content words are all ``hedge_words`` or
    courtesy ("I don't have an oven, how do I bake bread?" keeps its clause). None when
    neither side has one."""
    for x, y, swap in ((a, b, False), (b, a, True)):
        wy = words(y)
        if len(wy) < 3:
            continue
        for m in _PREAMBLE_END.finditer(x):
            body = x[m.end() :]
            if words(body) != wy:
                continue
            stems = {
                stem(w) for w in words(x[: m.start()]) if _is_content(w) and w not in NEGATIONS
            }
            if stems - _STOPWORD_STEMS <= HEDGE_STEMS | _COURTESY_STEMS:
                return (y, body) if swap else (body, y)
    return None
