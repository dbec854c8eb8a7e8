"""Vetoes on what a question asks to be done: examples against a definition, an audience named
on one side, a condition added to one side, an amount against a choice of the same thing,
finding out against doing, a phrase asked in a natural language."""

from __future__ import annotations

import itertools
import re
import unicodedata
from functools import lru_cache

from .context import (
    _sentences,
)
from .extract import (
    FEATURES_CACHE,
    Features,
)
from .lexicon import (
    _LISTS,
    _STOPWORD_STEMS,
    SENTENCES_JOINED,
    stem,
    words,
)


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


# what opens a condition: "… if I have high blood pressure", "when it is raining", "as
# long as I …" (as swap-form stems)
_CONDITIONS = tuple(
    tuple(stem(w) for w in c.split())
    for c in ["if", "when", "while", "unless", "as long as", "assuming", "provided",
              "given that", "in case", "even if"]
)  # fmt: skip
# a condition's words that say nothing about the case asked of: "if possible", "if that
# makes sense", "if anyone knows", "if I recall correctly", "if I'm looking for ideas"
_COURTESY_CONDITION = frozenset(
    stem(w)
    for w in ["possible", "sense", "make", "makes", "know", "knows", "mind", "anyone",
              "anybody", "help", "matter", "matters", "ok", "okay", "please", "thanks",
              "recall", "remember", "happen", "offhand", "free", "spare", "moment", "minute",
              "feel", "kind", "answer", "answering", "explain", "tell", "like", "idea",
              "ideas", "suggestion", "suggestions", "curious", "wondering", "interested",
              "familiar", "correctly", "right", "yes", "no", "so", "not"]
)  # fmt: skip
# a pronoun and its verb written as one word ("I'm" is "im")
_CONTRACTED = frozenset(["im", "ive", "id", "youv", "theyr", "theyv", "weve", "hes", "shes"])
# a condition's words that say nothing of its own about the case asked of
_NOT_THE_CASE = _STOPWORD_STEMS | _COURTESY_CONDITION | _CONTRACTED
# a condition the assistant is its subject of is a courtesy: "if you have a spare moment"
_ADDRESSED = frozenset(["you", "u", "ya", "youre", "youd", "youve"])
# a question a condition changes the answer of asks what to do or whether something holds:
# it opens with one of these ("Can I …", "Is it safe …") or says "should" early ("How long
# should I …"); a fact asked of ("Who wrote …", "What does X mean …", "How many calories
# are in …") is the same whatever the asker's case
_ADVICE_OPENERS = frozenset(
    ["can", "could", "should", "is", "are", "do", "does", "will", "would", "may", "must",
     "am", "shall"]
)  # fmt: skip


def _asks_advice(w: list[str]) -> bool:
    """Whether words ``w`` ask what to do or whether something holds (``_ADVICE_OPENERS``,
    not a request to the assistant, "Could you …"; or "should" among the first five)."""
    if w and w[0] in _ADVICE_OPENERS and w[1:2] != ["you"]:
        return True
    return "should" in w[:5]


def _condition_added(a: str, b: str, fa: Features, fb: Features) -> bool:
    """One side is the other's question with a condition added before or after it in the
    same sentence, with a word of its own that says what case is asked about ("How
    long should I stay in a 45°F cold plunge?" / "… if I have high blood pressure?", a blind
    trial's look-alike served at 0.941; 30 look-alikes of the blind trials' development
    pairs had it): the answer for that case may not be the general one, where the question
    asks what to do or whether something holds (``_asks_advice``). Not a second sentence
    ("Do scientists pray? If yes, what do they pray for?", a Quora duplicate), a condition
    said to the assistant ("if you have a spare moment") or one of courtesy ("if I recall
    correctly"; a re-check's paraphrases)."""
    form_a, form_b = fa.swap_form, fb.swap_form
    if len(form_a) == len(form_b):
        return False
    longer, shorter = (form_a, form_b) if len(form_a) > len(form_b) else (form_b, form_a)
    if SENTENCES_JOINED.search((a if longer is form_a else b).strip()):
        return False
    if not _asks_advice(fb.words if longer is form_a else fa.words):
        return False
    extra = len(longer) - len(shorter)
    if longer[extra:] == shorter:
        clause = longer[:extra]  # "if I have …, how long …"
    elif longer[: len(shorter)] == shorter:
        clause = longer[len(shorter) :]
    else:
        return False
    opener = next((c for c in _CONDITIONS if clause[: len(c)] == c), None)
    if opener is None or not _ADDRESSED.isdisjoint(clause[len(opener) : len(opener) + 1]):
        return False
    rest = clause[len(opener) :]
    return any(w not in _NOT_THE_CASE for w in rest)


_MEASURE_STEMS = frozenset(stem(w) for w in _LISTS["measure_nouns"])


def _amount_asked_of(w: list[str]) -> str | None:
    """The stem of the noun "how much" / "how many" asks the amount of ("how much oil"), or
    None."""
    for i in range(len(w) - 2):
        if w[i] == "how" and w[i + 1] in ("much", "many"):
            return stem(w[i + 2])
    return None


def _chosen(w: list[str]) -> set[str]:
    """The stems of the nouns "what" / "which" ask to choose among ("what oil", "which
    brand of oil" names "brand")."""
    return {stem(w[i + 1]) for i in range(len(w) - 1) if w[i] in ("what", "which", "whats")}


def _amount_against_choice(fa: Features, fb: Features) -> bool:
    """One side asks how much or how many of a thing, the other which or what one, of the
    same noun and no amount: "What oil is best for seasoning cast iron?" / "How much oil
    should I use when seasoning cast iron?" (a blind trial's look-alike served at 0.976;
    "What flour works best …" / "How much flour …", a re-check's at 0.971). Not a noun
    that names a measure ("What dose is best?" / "How much …?", ``measure_nouns``)."""
    for x, y in ((fa.words, fb.words), (fb.words, fa.words)):
        noun = _amount_asked_of(x)
        if noun is None or noun in _MEASURE_STEMS or noun in _STOPWORD_STEMS:
            continue
        if _amount_asked_of(y) is None and noun in _chosen(y):
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
