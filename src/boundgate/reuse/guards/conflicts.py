"""``compare``: the conflicts between two questions, each a veto, and the overlap of their content
words. The vetoes live by concept: what surrounds the question in ``context.py``, the texts
rewritten before they are read in ``rewrites.py``, numbers and dates in ``quantities.py``, the
things named in ``names.py``, what is asked to be done in ``tasks.py``; here the antonym
poles (``_pole_added``, ``_both_poles_offered``) and ``compare`` itself."""

from __future__ import annotations

from dataclasses import dataclass

from .blocks import _blocks_exchanged, _direction_reversed, _nouns_crossed
from .context import (
    _askers_swapped,
    _ignorance_dropped,
    _lead_in_changed,
    _near_time_dropped,
    _second_question_changed,
    _sentence_changed,
    _without_hedge,
    narration_dropped,
)
from .extract import (
    _SWITCH_IDS,
    Features,
    _is_content,
    features,
)
from .lexicon import (
    CONTRASTS,
    QUANTIFIERS,
    acronyms_spelled,
    wordnet_adjective_antonym,
)
from .literals import _blind_spot, _literals_differ, factorials
from .names import (
    _adjective_turned,
    _letters_differ,
    _name_made_common,
    _named_alike,
    _not_spelled_apart,
    _siblings_swapped,
)
from .order import (
    _agent_made_object,
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
from .quantities import (
    _count_against_list,
    _counts_swapped,
    _dates_differ,
    _numbers_differ,
    _root_taken,
)
from .rewrites import (
    _compounds_joined,
    _converse,
    _free_hyphenated,
    _less_of_er,
    _powers_glued,
    _textspeak_read,
    _textspeak_spelled,
)
from .tasks import (
    _amount_against_choice,
    _audience_one_sided,
    _check_against_doing,
    _condition_added,
    _examples_asked,
    _phrase_changed,
)
from .wording import (
    SCOPE_WORDS,
    _affix_flips,
    _alternatives_apart,
    _asks_another_kind,
    _asks_for_a_detail,
    _degree_apart,
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


def compare(a: str, b: str) -> Comparison:
    """The conflicts between questions ``a`` and ``b`` (each a veto), how many content words
    of either side have no counterpart in the other, and the Jaccard overlap of their stemmed
    content words. Two words one side hyphenates are hyphenated on the other too
    (``_compounds_joined``). A hedge before one side is left out (``_without_hedge``), so is a
    negated hedge (``_ignorance_dropped``), a near time in a context before one side's
    question (``_near_time_dropped``) and a sentence that tells what the asker did on one side
    only (``narration_dropped``), a digit
    typed for "to" / "for" is spelled (``_textspeak_spelled``) and a comparison turned round
    is read as the other's words (``_converse``); then an acronym of the other side's words is
    read as them (``acronyms_spelled``)."""
    if (unhedged := _without_hedge(a, b)) is not None:
        a, b = unhedged
    a, b = _ignorance_dropped(a), _ignorance_dropped(b)
    a, b = _near_time_dropped(a, b)
    a, b = narration_dropped(a, b)
    a, b = _free_hyphenated(a, b)
    a, b = _powers_glued(a, b)
    if (spelled := _textspeak_spelled(a, b) or _textspeak_read(a, b)) is not None:
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
    if "polarity" not in conflicts and (_less_of_er(fa.words, fb.words) or _degree_apart(fa, fb)):
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
        or _amount_against_choice(fa, fb)
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
        or _alternatives_apart(fa, fb)  # "in the freezer" / "in the refrigerator"
        or _time_preposition_apart(fa, fb)  # "in / after the first 48 hours"
        or _one_word_added(fa, fb, SCOPE_WORDS)
    ):
        conflicts.append("contrast")  # "Who will be the next / current president?"
    if (
        (fa.levels and fb.levels and fa.levels != fb.levels)
        or _audience_one_sided(fa, fb)
        or _condition_added(a, b, fa, fb)
    ):
        # "Explain TCP/IP in simple terms" / "… in depth"; "Explain X to a kindergartner" /
        # "What is X?"; "How long should I stay in a cold plunge?" / "… if I have high blood
        # pressure?"
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
    elif _direction_reversed(fa, fb):
        conflicts.append("order")  # "a playlist from my library" / "my playlist into a library"
    elif _nouns_crossed(fa, fb, a, b):
        conflicts.append("order")  # "a bunion on my toe … into a hammertoe" / the other way
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
