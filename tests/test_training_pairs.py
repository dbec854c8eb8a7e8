"""Rule-made training pairs for the pair model (``training/augment.py``): the sibling swap
and hard negatives made from labelled chatbot pairs. No torch needed: the rules are text."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))

import augment

SIBLINGS = {"flu": ["cold"], "cold": ["flu"], "city": ["country"], "country": ["city"]}


def test_a_noun_after_a_determiner_is_swapped_for_a_sibling() -> None:
    mut = augment.Mutator(random.Random(0), {}, [], SIBLINGS)
    assert mut.sibling("How do I get rid of a flu fast?") == "How do I get rid of a cold fast?"
    assert mut.sibling("Is the city safe at night?") == "Is the country safe at night?"


def test_a_plural_keeps_its_number_and_a_bare_singular_is_left() -> None:
    mut = augment.Mutator(random.Random(0), {}, [], SIBLINGS)
    assert mut.sibling("Which cities have a metro?") is None  # "cities" is not "city" + s
    assert mut.sibling("Name big countrys") == "Name big cities"  # plural made by rule
    # "cold" not after a determiner and not a plural: maybe an adjective ("cold water")
    assert mut.sibling("Why is cold water heavier?") is None
    assert mut.sibling("Why is Flu season in winter?") is None  # capitalised: a name here


def test_nouns_are_counted_after_determiners_only() -> None:
    counts = augment.noun_counts(["Is the flu bad?", "A flu shot?", "Is flu bad? the"])
    assert counts["flu"] == 2 and counts["bad"] == 0 and counts["shot"] == 0


def test_chat_pairs_get_hard_negatives_anchored_at_their_own_questions() -> None:
    chat = [("how to cure a flu", "why is my flu so slow to go", 1)]
    made, counts = augment.make_pairs(
        [], random.Random(0), set(), 0.0, 0.0, chat_pairs=chat, chat_hard=2
    )
    assert made and all(y == 0 and a == "how to cure a flu" for a, _, y in made)
    assert all(b != "why is my flu so slow to go" for _, b, _ in made)
    assert sum(n for k, n in counts.items() if k.startswith("chat_")) == len(made) <= 2
