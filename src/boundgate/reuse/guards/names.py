"""Vetoes on the things a question names: names one side alone gives, a name made a common
noun, sibling nouns swapped ("rats" / "mice"), letters ("vitamin D" / "vitamin C"), names read
through the adjectives WordNet relates to them."""

from __future__ import annotations

import re

from .extract import (
    Features,
)
from .lexicon import (
    CONTRASTS,
    name_forms,
    noun_siblings,
    stem,
)
from .wording import (
    _apart_at,
)


def _name_made_common(fa: Features, fb: Features) -> bool:
    """A name on one side is a common noun after an article on the other: "What is Python?" /
    "What is a python?", "Tell me about Apple." / "Tell me about the apple." (a trial was
    served 15 such pairs, pair scores 0.95-0.99; a difference of case alone is the literal
    guard's)."""
    return bool((fa.titled & fb.common) - fa.common or (fb.titled & fa.common) - fb.common)


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
