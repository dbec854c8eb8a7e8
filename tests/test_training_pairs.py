"""Rule-made training pairs for the pair model (``training/augment.py``): the sibling swap,
the synonym swap and hard negatives made from labelled chatbot pairs. No torch needed: the
rules are text."""

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


def _synonyms(tmp_path: Path) -> augment.Synonyms:
    data = tmp_path / "synonyms.tsv"
    data.write_text(
        "# test\na\tlarge\tbig\na\tbig\tlarge\nv\tbuild\tconstruct\nv\tconstruct\tbuild\n"
        "n\tcar\tautomobile\nn\tchild\tkid\nv\tstare\tgaze\nr\tabout\tapproximately\n"
        "exc\tbiggest\tbig\nexc\tbuilt\tbuild\nexc\tchildren\tchild\n",
        encoding="utf-8",
    )
    vocab = {"large", "big", "build", "construct", "car", "automobile", "child", "kid", "stare"}
    return augment.Synonyms(vocab | {"gaze", "about", "approximately"}, data)


def test_a_word_is_swapped_for_a_synonym_inflected_alike(tmp_path: Path) -> None:
    mut = augment.Mutator(random.Random(0), {}, [], None, _synonyms(tmp_path))
    assert mut.synonym("What is the largest planet?") == "What is the biggest planet?"
    assert mut.synonym("Which is the biggest moon?") == "Which is the largest moon?"
    assert mut.synonym("Who built the pyramids?") == "Who constructed the pyramids?"
    assert mut.synonym("how are cars built") in (
        "how are automobiles built",
        "how are cars constructed",
        "how are automobiles constructed",
    )
    assert mut.synonym("games for children") == "games for kids"  # an irregular plural read


def test_no_synonym_for_function_words_or_false_stems(tmp_path: Path) -> None:
    mut = augment.Mutator(random.Random(0), {}, [], None, _synonyms(tmp_path))
    assert mut.synonym("what do people think about China") is None  # "about" is a stop word
    assert mut.synonym("why are stars hot") is None  # "stars" is not "stare" + s
    assert mut.synonym("Is Paris nice?") is None


def test_synonym_pairs_keep_the_label_of_the_pair_they_come_from(tmp_path: Path) -> None:
    chat = [("biggest city in japan", "which japanese city is the largest", 1)]
    chat += [("largest desert", "smallest desert", 0)]
    made, counts = augment.make_pairs(
        [],
        random.Random(0),
        {"large", "big"},
        0.0,
        0.0,
        chat_pairs=chat,
        synonym_share=1.0,
    )
    assert ("largest desert", "smallest desert", 0) not in made
    assert ("biggest city in japan", "which japanese city is the biggest", 1) in made
    assert all(y == 0 for _, b, y in made if "smallest" in b)
    assert counts.get("chat_synonym_restyled_1") == 1


def test_a_keyword_form_drops_function_words_and_keeps_what_the_answer_needs() -> None:
    for seed in range(20):
        mut = augment.Mutator(random.Random(seed), {}, [])
        short = mut.keywords("When did the Berlin Wall fall?")
        assert short is not None
        assert set(short.rstrip("?").split()) == {"when", "berlin", "wall", "fall"}
        neg = mut.keywords("Why doesn't my dog eat dry food?")
        assert neg is not None and "not" in neg.split()  # a negation is kept
        roles = mut.keywords("Is it cheaper to fly from London to Paris?")
        assert roles is not None and "from london to paris" in roles  # roles kept
        assert "is" not in roles.split() and "it" not in roles.split()
    assert augment.Mutator(random.Random(0), {}, []).keywords("What is it?") is None


def test_keyword_restyled_pairs_keep_their_label_unless_only_dropped_words_differed() -> None:
    train = [
        ("Can I sell my car?", "Can you sell my car?", 0),
        ("What is the boiling point of water?", "At what temperature does water boil?", 1),
    ]
    restyled = 0
    for seed in range(30):
        made, _ = augment.make_pairs(train, random.Random(seed), set(), 0.0, 0.0, keyword_share=1.0)
        for a, b, y in made:
            if "car" in a and "car" in b:
                # the two differ only in pronouns, which the keyword form drops: never a pair
                # whose two sides read the same words yet keep the label "different"
                assert y == 1 or augment._kept(a) != augment._kept(b)
            if "water" in a and "water" in b:
                assert y == 1
                restyled += "boil" in a + b and "boiling" in a + b
    assert restyled


def test_mirror_positives_pair_each_hard_negatives_anchor_with_a_light_edit() -> None:
    """A re-check: the rules made "convert kg to lbs" / "convert lbs to kg" negatives and
    nothing said that such a question has paraphrases; the members scored "convert celsius
    to fahrenheit" against itself 0.07. With ``mirror_share`` 1 every hard negative's anchor
    also gets a light-edit positive."""
    train = [
        (f"How do I convert {n} kg to lbs?", f"How many lbs is {n} kg?", 1) for n in range(2, 40)
    ]
    made, counts = augment.make_pairs(train, random.Random(0), set(), 1.0, 0.0, mirror_share=1.0)
    negatives = [(a, b) for a, b, y in made if y == 0]
    positives = [(a, b) for a, b, y in made if y == 1]
    assert negatives and counts["mirror_positive"] == len(positives) > 0
    anchors = {a for a, _ in negatives}
    assert all(a in anchors and b != a for a, b in positives)
    plain, plain_counts = augment.make_pairs(train, random.Random(0), set(), 1.0, 0.0)
    assert "mirror_positive" not in plain_counts and all(y == 0 for _, _, y in plain)


def test_teacher_targets_round_trip_without_question_text(tmp_path: Path) -> None:
    import gzip

    import pairdata

    train = [("How do I cook rice?", "How to cook rice?", 1), ("Who is A?", "Who is B?", 0)]
    mined = [("What is a cat?", "What is a dog?", 0.25)]
    path = tmp_path / "targets.tsv.gz"
    pairdata.write_targets(path, train, [0.9, 0.125], mined, ["a comment"])
    pairdata.write_targets(tmp_path / "again", train, [0.9, 0.125], mined, ["a comment"])
    assert (tmp_path / "again").read_bytes() == path.read_bytes()  # same targets, same bytes
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    assert "cat" not in text and "rice" not in text
    questions = {q for a, b, _ in train for q in (a, b)} | {"What is a cat?", "What is a dog?"}
    probs, got = pairdata.read_targets(path, train, questions)
    assert probs == [0.9, 0.125]
    assert got == mined


def test_teacher_targets_refuse_other_training_data(tmp_path: Path) -> None:
    import pairdata
    import pytest

    train = [("How do I cook rice?", "How to cook rice?", 1)]
    path = tmp_path / "targets.tsv.gz"
    pairdata.write_targets(path, train, [0.5], [("What is a cat?", "What is a dog?", 0.25)])
    with pytest.raises(ValueError, match="another quora_train"):
        pairdata.read_targets(path, [("How do I cook rice?", "How to cook rice?", 0)], [])
    with pytest.raises(ValueError, match="names no known question"):
        pairdata.read_targets(path, train, ["What is a cat?"])
