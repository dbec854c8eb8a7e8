"""Who does what to whom: roles and operands swapped ("from Boston to New York" / "to
Boston from New York", "Who taught Plato?" / "Who did Plato teach?"); two stretches of words
exchanged ("cups in a gallon" / "gallons in a cup") are ``blocks``'s."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from .blocks import _MUTUAL_VERBS, _differing_span
from .lexicon import (
    _BE,
    _STOPWORD_STEMS,
    AGREEING,
    ARTICLES,
    AUXILIARIES,
    IRREGULAR_PAST,
    PARTICIPLES,
    STOPWORDS,
    SUBJECT_PRONOUNS,
    TYPE_NAMES,
    UNITS,
    WH_PRONOUNS,
    WH_SWAP_WORDS,
    is_superlative,
    name_forms,
    stem,
)

if TYPE_CHECKING:
    from .extract import Features


def _sequence_turned(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """The same two or more numbers in another order ("10 divided by 2" / "2 divided by 10")."""
    return len(set(a)) >= 2 and sorted(a) == sorted(b) and a != b


def _wh_parts(toks: list[str], stems: list[str]) -> dict[str, Any]:
    """``wh``, ``wh_rest``, ``wh_determiner`` and ``superlative`` of ``Features`` (none
    unless the question opens with one of ``WH_PRONOUNS``)."""
    if len(toks) < 3 or (toks[0] not in WH_PRONOUNS and toks[0] not in AUXILIARIES):
        return {}  # a question word for a subject or object, or a yes/no question's verb
    # auxiliaries and articles come and go; an adverb may stand anywhere ("quickly")
    # an irregular past as its present: "which company bought Instagram" / "which company did
    # Instagram buy" (a trial's finding: 0.917, let through)
    rest = tuple(
        stem(IRREGULAR_PAST[t]) if t in IRREGULAR_PAST else st
        for t, st in zip(toks[1:], stems[1:], strict=True)
        if t not in AUXILIARIES
        and t not in ARTICLES
        and not (len(t) > 4 and t.endswith("ly"))
        and not t[0].isdigit()  # numbers' order is the operations' business
    )
    # "what colour is the sky", "which credit card is the best": the question word and its
    # noun are the complement of "is"
    first_aux = next((t for t in toks[1:] if t in AUXILIARIES), "")
    determiner = toks[1] not in AUXILIARIES and first_aux in ("is", "are", "was", "were")
    superlative = any(is_superlative(t) for t in toks)
    return {"wh": toks[0], "wh_rest": rest, "wh_determiner": determiner, "superlative": superlative}


def _role_swap(fa: Features, fb: Features) -> bool:
    """After the same directional word each side names what the other names before it: the
    roles are swapped ("from London to Paris" / "from Paris to London", "is X faster than Y"
    / "is Y faster than X", "convert a string to an int" / "an int to a string"), while a
    mere reordering ("the best way to learn programming" / "learn to program") is not."""
    pairs_a = {(d, x) for d, x, _ in fa.roles}
    pairs_b = {(d, x) for d, x, _ in fb.roles}
    for d, xa, before_a in fa.roles:
        if (d, xa) in pairs_b:  # the other side has this role too: not swapped
            continue
        for d2, xb, before_b in fb.roles:
            swapped = xa != xb and xa in before_b and xb in before_a
            if d == d2 and swapped and (d, xb) not in pairs_a:
                return True
    return False


# what may stand between a verb and its object: "killed the king", "fired his manager"
_DETERMINERS = frozenset(
    ["the", "a", "an", "my", "your", "his", "her", "its", "our", "their", "this", "that"]
)
VERB_PREFIX = 3  # _same_verb: letters a participle and a verb form share at least
_VOWELS = str.maketrans("", "", "aeiou")


def _same_verb(participle: str, form: str) -> bool:
    """Whether ``form`` may be a form of the verb whose participle is ``participle``: the same
    stem or base ("killed" / "kill", "taught" / "teach"), the first ``VERB_PREFIX`` letters
    ("eaten" / "eat", "written" / "write"), or the same consonants, as a strong verb's forms
    have ("sunk" / "sank", "begun" / "began")."""
    if participle == form:
        return True
    base_p = IRREGULAR_PAST.get(participle, stem(participle))
    base_f = IRREGULAR_PAST.get(form, stem(form))
    if base_p == base_f:
        return True
    if len(form) >= VERB_PREFIX and participle[:VERB_PREFIX] == form[:VERB_PREFIX]:
        return True
    skeleton = participle.translate(_VOWELS)
    return len(skeleton) >= VERB_PREFIX and skeleton == form.translate(_VOWELS)


def _agents(toks: list[str]) -> list[tuple[str, str]]:
    """(participle, agent) of each passive with "by" after a form of "be": "Who was killed by
    Brutus" → ("killed", "brutus"); the agent is the first word after "by" and its
    determiners."""
    if _BE.isdisjoint(toks):
        return []
    out = []
    for i, t in enumerate(toks):
        if t != "by" or i == 0 or i + 1 >= len(toks):
            continue
        participle = toks[i - 1]
        if not (participle in PARTICIPLES or participle.endswith(("ed", "en"))):
            continue
        j = i + 1
        while j < len(toks) - 1 and toks[j] in _DETERMINERS:
            j += 1
        out.append((participle, toks[j]))
    return out


def _agent_made_object(fa: Features, fb: Features) -> bool:
    """One side is passive with an agent and the other, active, has that agent right after
    the same verb, as its object: the roles are reversed ("Who was killed by Brutus?" / "Who
    killed Brutus?", "Which diseases are caused by bacteria?" / "Which diseases cause
    bacteria?"), where "Whom did Brutus kill?" keeps them. A trial was served 29 such pairs
    (pair scores 0.92–0.99): the passive exempts a pair from the other order checks."""
    for x, y in ((fa, fb), (fb, fa)):
        if y.passive:
            continue
        for participle, agent in _agents(x.words):
            toks = y.words
            for j, t in enumerate(toks):
                if t != agent:
                    continue
                k = j - 1
                while k >= 0 and toks[k] in _DETERMINERS:
                    k -= 1
                if k >= 0 and toks[k] not in AUXILIARIES and _same_verb(participle, toks[k]):
                    return True
    return False


def _possessives_swapped(fa: Features, fb: Features) -> bool:
    """The same two words as possessor and possessed, the other way round: "my wife's boss" /
    "my boss's wife", "my teacher's daughter" / "my daughter's teacher" (a trial was served
    11 such pairs, pair scores 0.93–0.97)."""
    return any((owned, owner) in fb.possessives for owner, owned in fa.possessives)


_SPEAKERS_OWN = frozenset(["my", "our", "your"])
_FIRST_PERSON_OWN = frozenset(["my", "our"])
_OF_FOR = frozenset(["of", "for"])
# possessors that say "not the speaker's": "someone else's", "somebody else's", "others'"
_OTHERS = frozenset(stem(w) for w in ["else", "others"])
# ... and "someone's" against the speaker's own ("my", "our"), not against "your", which with
# it is anyone's ("can sun signs affect someone's personality" / "… your personality", a
# Quora duplicate); a blind trial's "be interviewed as a guest on someone's podcast" /
# "interview a guest on my podcast" was served
_SOMEONE = frozenset(stem(w) for w in ["someone", "somebody"])


def _speakers_own(g: Features, owners: frozenset[str] = _SPEAKERS_OWN) -> set[str]:
    """The stems of the things ``g`` gives the speaker or the one addressed ("my son", "your
    account"; ``owners``: the possessive words that count)."""
    return {g.stems[i + 1] for i, w in enumerate(g.words[:-1]) if w in owners}


def _possessor_changed(fa: Features, fb: Features) -> bool:
    """A thing one side gives the speaker (or the one addressed) and the other a party both
    sides name: "what happens if my opponent touches my piece" / "… if I touch my
    opponent's piece", "does my fishing license cover my son" / "does my son's fishing
    license cover me" (trials served one such pair at 0.934 and left one at 0.865), or one
    party's and another's, both named on both sides. Only "my", "our" and "your" stand for
    the speaker: "his phone" may be the son's."""

    def owned_by_owner(g: Features, owner: str, owned: str) -> bool:
        """ "the questions for your Apple ID": the owner after the owned, behind "of"/"for"."""
        at = [k for k, st in enumerate(g.stems) if st == owner]
        return any(
            owned in g.stems[:k] and not _OF_FOR.isdisjoint(g.words[max(0, k - 3) : k]) for k in at
        )

    def changed(f: Features, g: Features) -> bool:
        owned_by_speaker = _speakers_own(g)
        owners_in_g = {owned: owner for owner, owned in g.possessives}
        return any(
            (
                owned in owned_by_speaker
                and (owner, owned) not in g.possessives
                and owner in g.stems
                and not owned_by_owner(g, owner, owned)
            )
            # the same thing another party's, each party named on both sides: "does the
            # moon's gravity cause earth's tides" / "does earth's gravity cause tides on the
            # moon" (a trial was served it, 0.974)
            or (
                (other := owners_in_g.get(owned, owner)) != owner
                and other not in _STOPWORD_STEMS
                and owner in g.stems
                and other in f.stems
            )
            for owner, owned in f.possessives
            if owner not in _SPEAKERS_OWN and owner not in _STOPWORD_STEMS
        )

    def not_the_speakers(f: Features, g: Features) -> bool:
        """ "when someone else's toddler has a meltdown" / "when my toddler …" (a blind
        trial's look-alike, served at 0.904): a thing one side says is another's and the other
        side the speaker's only ("if my dog bites someone else's dog" / "… another dog" is
        no change)."""
        owned_by_speaker = _speakers_own(g) - _speakers_own(f)
        owned_by_me = _speakers_own(g, _FIRST_PERSON_OWN) - _speakers_own(f)
        return any(
            (owner in _OTHERS and owned in owned_by_speaker)
            or (owner in _SOMEONE and owned in owned_by_me)
            for owner, owned in f.possessives
        )

    return (
        changed(fa, fb) or changed(fb, fa) or not_the_speakers(fa, fb) or not_the_speakers(fb, fa)
    )


RELATIVIZERS = frozenset(["that", "who", "whom", "which"])


def _relative_clause(form: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
    """(antecedent, clause) of the first relative clause in a swap form: the word before
    "that" / "who" / "whom" / "which" (not at the start) and the words after it; None
    without one."""
    i = next((i for i, w in enumerate(form) if i and w in RELATIVIZERS), None)
    if i is None or i + 1 >= len(form):
        return None
    return form[i - 1], form[i + 1 :]


def _relative_turned(fa: Features, fb: Features) -> bool:
    """Subject and object of a relative clause the other way round: the same antecedent
    with the clause's words in another order ("the player who Kasparov beat" / "the player
    who beat Kasparov", "the animal that cats are afraid of" / "that is afraid of cats"), or
    antecedent and a word of the clause exchanged ("the dog that bit the mailman" / "the
    mailman that the dog bit"). A trial was served 21 such pairs, pair scores 0.94-0.99."""
    a, b = (tuple("that" if w in RELATIVIZERS else w for w in f.swap_form) for f in (fa, fb))
    ra, rb = _relative_clause(a), _relative_clause(b)
    if ra is None or rb is None or sorted(a) != sorted(b):
        return False
    (xa, ca), (xb, cb) = ra, rb
    if xa == xb:
        return ca != cb and sorted(ca) == sorted(cb)
    return xa in cb and xb in ca


def _as_names(sequence: tuple[str, ...]) -> tuple[str, ...]:
    """``sequence`` (content stems) with a people's or place's adjective as the name WordNet
    relates it to (``name_forms``: "american" → "america", "japanes" → "japan"), so a
    people and a place exchanged are two words exchanged: "do Americans need a visa to
    visit Mexico" / "do Mexicans need a visa to visit America" (chat set I, 0.873)."""
    forms = name_forms()
    return tuple(
        min(forms[st] | {st}, key=len) if st in forms and len(forms[st]) == 1 else st
        for st in sequence
    )


def _transposed(fa: Features, fb: Features) -> bool:
    """The same content words (a people's adjective as its place's name, ``_as_names``), with
    two of them exchanged around at least one that stays in
    place: subject and object swapped ("can a landlord sue a tenant" / "can a tenant sue a
    landlord"). Two neighbours trading places ("capital of France" / "France's capital"), a
    word moved elsewhere ("learn Python quickly" / "quickly learn Python"), things joined by
    "and" or "or", compounds inverted by "of", and sentences with directional words
    (``_role_swap``) are left alone."""
    if len(fa.sequence) != len(fb.sequence) or len(fa.sequence) < 3:
        return False
    a, b = _as_names(fa.sequence), _as_names(fb.sequence)
    if sorted(a) != sorted(b):
        return False
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if len(diff) != 2:
        return False
    i, j = diff
    if j - i < 2 or a[i] != b[j] or a[j] != b[i]:
        return False
    if not {a[i], a[j]}.isdisjoint(fa.fronted | fb.fronted):
        return False  # a place put first: "In Europe, which river is the longest?" (a helper's)
    # with directional words, _role_swap judges what they govern ("from Boston to New York" /
    # "to Boston from New York") and common nouns moved around them are as often a rewording
    # ("best site to book a hotel" / "best hotel booking site"); two names exchanged that no
    # directional word governs are roles swapped ("do Americans need a visa to visit Mexico":
    # "to" governs "visit", which stays)
    if fa.roles or fb.roles:
        governed = _as_names(tuple(x for _, x, _ in fa.roles | fb.roles))
        forms = name_forms()
        if a[i] in governed or a[j] in governed or a[i] not in forms or a[j] not in forms:
            return False
    # "X and Y", "X or Y", "X vs Y", "between X and Y": the order carries no role; nor in
    # "the surface of the sun" / "the sun's surface is how hot" ("of" inverts compounds),
    # unless both sides say "of": "the relative minor of C major" / "the relative major of C
    # minor" (a trial was served it, 0.965)
    if fa.symmetric and fb.symmetric:
        return False
    if fa.inverts != fb.inverts:
        return False
    # a verb and its object made a compound: "breed villagers in minecraft" / "minecraft
    # villager breeding" (a trial's over-veto, 0.961)
    if a[i] in _ADVERB_STEMS or a[j] in _ADVERB_STEMS:
        return False  # "how often should I change my oil" / "oil change how often" (0.992)
    if any(_verb_placed(f, w) for f in (fa, fb) for w in (a[i], a[j])):
        return False  # "how do i fix a flat tire on my bike" / "bike flat tire fix how" (0.990)
    return not (_gerund_turned(fa, fb, a[i]) or _gerund_turned(fa, fb, a[j]))


# words after which a word is a verb: "how do i fix", "how to fix"
_BEFORE_VERBS = SUBJECT_PRONOUNS | {"to"}


def _verb_placed(f: Features, st: str) -> bool:
    """Whether a word of stem ``st`` follows a subject pronoun or "to" in ``f``, or "get" after
    one ("how do I get rid of"): the verb of the question, which a search-box form moves to the
    end ("bike flat tire fix how", a trial's over-veto) and a sentence put first moves behind
    its topic ("my calathea has spider mites, how do I get rid of them", another trial's)
    without any two parties exchanging roles."""
    w = f.words
    return any(
        k
        and s == st
        and (
            w[k - 1] in _BEFORE_VERBS or (k > 1 and w[k - 1] == "get" and w[k - 2] in _BEFORE_VERBS)
        )
        for k, s in enumerate(f.stems)
    )


# adverbs of how often, how long or how far: moved to the end of a search-box form they trade
# places with a noun without any role changing (a trial's over-veto)
_ADVERB_STEMS = frozenset(
    stem(w)
    for w in ["often", "always", "usually", "sometimes", "frequently", "rarely", "ever", "again",
              "soon", "long", "far", "much"]
)  # fmt: skip


# words that sequence or convert what is on either side of them: "nap after lunch" / "lunch
# after a nap", "stretch before running" / "run before stretching", "word to pdf"
_PIVOTS = frozenset(["after", "before", "to", "into"])
# words between a pivot and what it joins that say nothing of which is which: "eat right after"
_PIVOT_SKIPPED = frozenset(
    stem(w)
    for w in ["right", "just", "immediately", "straight", "soon", "shortly", "directly", "long",
              "much", "many", "also", "even", "only", "still", "first"]
)  # fmt: skip


def _around_pivots(f: Features) -> set[tuple[str, str, str]]:
    """(pivot, the nearest content stem before it, the nearest after it) for each pivot word
    with content words on both sides; a unit as its symbol, however it is written ("kg",
    "kilograms"; a trial's "convert kg to lbs" / "convert pounds to kilograms" passed)."""

    def content(j: int) -> bool:
        st = f.stems[j]
        return st not in _STOPWORD_STEMS and st not in _PIVOT_SKIPPED and f.words[j].isalpha()

    def key(j: int) -> str:
        w = f.words[j]
        return UNITS.get(w) or (stem(TYPE_NAMES[w]) if w in TYPE_NAMES else f.stems[j])

    out = set()
    for i, w in enumerate(f.words):
        if w not in _PIVOTS:
            continue
        before = next((key(j) for j in range(i - 1, -1, -1) if content(j)), None)
        after = next((key(j) for j in range(i + 1, len(f.words)) if content(j)), None)
        if before is not None and after is not None and before != after:
            # "into" converts as "to" does: "a String into an integer" / "int to string"
            out.add(("to" if w == "into" else w, before, after))
    return out


def _pivot_turned(fa: Features, fb: Features) -> bool:
    """The two things around "after", "before", "to" or "into" exchanged, whatever the rest of
    the wording: "Is it bad to eat right after sleeping?" / "sleep after eating bad?",
    "Should I run before stretching?" / "stretch before running?" (a trial's ensemble served
    both at 0.90-0.99: the other order guards need the same words on both sides, and a
    search-box form has fewer). Over every labelled set it newly vetoed no duplicate."""
    turned = {(p, y, x) for p, x, y in _around_pivots(fb)}
    return bool(_around_pivots(fa) & turned)


def _names_turned(fa: Features, fb: Features) -> bool:
    """The same content words on both sides (one more on one side at most), two names
    exchanged around a word between them that stays: "If Pakistan attack to India what will
    happen?" / "What happen if India attack on Pakistan?" (Quora's, served at 0.9+), with
    other small words on each side, which the other order guards need alike. Names only
    (capitalised mid-sentence, or known as names): common nouns moved around a word are as
    often a rewording ("hotel booking site" / "site to book a hotel"). Not where things are
    joined by "and", "or", "vs", nor (the caller's) a passive on one side only ("Did Germany
    invade Poland?" / "Was Poland invaded by Germany?")."""
    if fa.symmetric or fb.symmetric:
        return False
    a, b = Counter(fa.sequence), Counter(fb.sequence)
    if sum(((a - b) + (b - a)).values()) > 1:
        return False
    names = fa.names & fb.names
    sa, sb = fa.sequence, fb.sequence
    around_b = {(sb[i], sb[i + 1], sb[i - 1]) for i in range(1, len(sb) - 1)}
    return any(
        sa[i] not in _MUTUAL_VERBS
        and (sa[i], sa[i - 1], sa[i + 1]) in around_b
        and sa[i - 1] != sa[i + 1]
        and {sa[i - 1], sa[i + 1]} <= names
        and a[sa[i - 1]] == a[sa[i + 1]] == 1
        for i in range(1, len(sa) - 1)
    )


_PREPOSITIONS = frozenset(
    ["for", "in", "on", "to", "with", "from", "by", "at", "about", "into", "than", "per"]
)


def _of_uninverted(f: Features) -> tuple[str, ...] | None:
    """``f``'s content stems with its one "of" compound turned as a search-box form writes it:
    "the relative major of C minor" → "C minor relative major" (None without exactly one
    "of" between content words)."""
    if f.words.count("of") != 1 or not _PREPOSITIONS.isdisjoint(f.words):
        return None  # other prepositions: which words the "of" joins is not known
    at = f.words.index("of")
    content = [
        i for i, w in enumerate(f.words) if w not in STOPWORDS and not w.replace(".", "").isdigit()
    ]
    head = [f.stems[i] for i in content if i < at]
    tail = [f.stems[i] for i in content if i > at]
    return tuple(tail + head) if head and tail else None


def _of_turned(fa: Features, fb: Features) -> bool:
    """A question with one "of" against its search-box form without it, two of the same words
    exchanged once the "of" compound is turned ("What is the relative major of C minor?" / "C
    major relative minor", 0.991 to a user's trial; the order guards compared questions of
    one shape, or the same words). The exchanged words must have a word between them, as
    for ``_transposed`` ("the capital of France" / "France capital" turn alike)."""
    for f, g in ((fa, fb), (fb, fa)):
        if "of" in g.words or g.symmetric or f.symmetric or not _PREPOSITIONS.isdisjoint(g.words):
            continue
        a, b = _of_uninverted(f), g.sequence
        if a is None or len(a) != len(b) or len(a) < 3 or sorted(a) != sorted(b):
            continue
        diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(diff) == 2 and diff[1] - diff[0] >= 2:
            i, j = diff
            return a[i] == b[j] and a[j] == b[i]
    return False


def _gerund_turned(fa: Features, fb: Features, st: str) -> bool:
    """The word of stem ``st`` is written as its "-ing" form on one side only."""

    def gerund(f: Features) -> bool:
        return any(s == st and w.endswith("ing") for w, s in zip(f.words, f.stems, strict=True))

    return gerund(fa) != gerund(fb)


def _wh_swapped(fa: Features, fb: Features) -> bool:
    """Both ask "what" (or "who", "which") of the same words, but the question word is the
    subject on one side and the object on the other: after the question word (and its own
    noun, "which team"), one side's words are the other's in two blocks exchanged ("what does
    inflation cause" / "what causes inflation", "what is glass made of" / "what is made of
    glass", "which team did Brazil beat" / "which team beat Brazil"). Left to the models: a
    passive with "by" ("what is caused by inflation": a word more), a question word that asks
    "which thing" of "is" ("what colour is the sky" / "what is the sky colour"), two
    neighbours trading places beside a superlative ("the best diet for muscle building" /
    "for building muscle"), one small word moved ("what is dating in Australia like" /
    "like in Australia"), an adverb moved ("learn Python quickly" / "quickly learn Python"),
    things joined by "and" or "or", and reorderings of more than ``WH_SWAP_WORDS`` words. A
    superlative further off is read ("What is the best substitute for butter in baking?" /
    "What is butter the best substitute for in baking?", "What is the most common cause of
    anemia?" / "What is anemia the most common cause of?": an adversarial helper was served
    seven such pairs at 0.94-0.99)."""
    if not fa.wh or fa.wh != fb.wh or fa.wh_determiner or fb.wh_determiner:
        return False
    if fa.symmetric and fb.symmetric:
        return False
    a, b = fa.wh_rest, fb.wh_rest
    if a == b or len(a) != len(b) or sorted(a) != sorted(b):
        return False
    shared = 1 if a[0] == b[0] else 0  # the question word's own noun: "which team"
    a, b = a[shared:], b[shared:]
    while a and a[-1] == b[-1]:  # what follows alike: "who beat Brazil in the 2002 final"
        a, b = a[:-1], b[:-1]
    if len(a) > WH_SWAP_WORDS or ((fa.superlative or fb.superlative) and len(a) <= 2):
        return False
    for cut in range(1, len(a)):
        if b == a[cut:] + a[:cut]:
            blocks = (a[:cut], a[cut:])
            return not any(len(x) == 1 and x[0] in _STOPWORD_STEMS for x in blocks)
    return False


# personal pronouns by person: who does what to whom when the nouns around them stay put
# ("u", "ur": chat's spellings; not "id", which is also the document)
_PERSONS = {
    **dict.fromkeys(["i", "me", "my", "mine", "myself", "im", "ive"], "1"),
    **dict.fromkeys(["you", "your", "yours", "yourself", "youre", "youve", "u", "ur"], "2"),
    **dict.fromkeys(
        ["he", "him", "his", "himself", "hes", "she", "her", "hers", "herself", "shes",
         "they", "them", "their", "theirs", "themselves", "theyre", "someone", "somebody",
         "someones", "somebodys"],
        "3",
    ),
    **dict.fromkeys(["we", "us", "our", "ours", "ourselves", "weve"], "4"),
}  # fmt: skip


# a pronoun and its verb in one word: the verb stays among the other words ("he is 45 and
# I'm 25" / "I'm 45 and he is 25": a trial was served it at 0.975)
_CONTRACTED = {
    "im": "be", "hes": "be", "shes": "be", "youre": "be", "theyre": "be", "ive": "have",
    "youve": "have", "weve": "have",
}  # fmt: skip


def _person_tokens(f: Features) -> list[str]:
    """``f``'s words as the pronoun guard reads them: a personal pronoun as "@" and its
    person, a contracted verb after it, other words as stems with their agreement left out,
    no articles; two pronouns joined by "and" / "or" left out with the joining word, since
    their order says nothing ("the age gap between me and her" / "between her and me")."""
    toks: list[str] = []
    for w, st in zip(f.words, f.stems, strict=True):
        if w in _PERSONS:
            toks.append("@" + _PERSONS[w])
            if w in _CONTRACTED:
                toks.append(_CONTRACTED[w])
        elif w not in ARTICLES:
            toks.append(AGREEING.get(w, st))
    out: list[str] = []
    i = 0
    while i < len(toks):
        joined = toks[i + 1 : i + 2] and toks[i + 1] in _JOINED and toks[i + 2 : i + 3]
        if joined and toks[i][:1] == toks[i + 2][:1] == "@":
            i += 3
            continue
        out.append(toks[i])
        i += 1
    return out


_JOINED = frozenset(["and", "or", "nor"])


def _conjuncts_turned(a: list[str], b: list[str]) -> bool:
    """Where ``a`` and ``b`` differ, ``b`` is ``a``'s two sides of an "and" / "or" / "but"
    the other way round: "if I get nervous around him and he gets nervous around me" / "if
    he gets nervous around me and I get nervous around him" (a re-check's paraphrase)."""
    start, end = _differing_span(a, b)
    return any(
        a[k] in (*_JOINED, "but") and b[start:end] == [*a[k + 1 : end], a[k], *a[start:k]]
        for k in range(start + 1, end - 1)
    )


def _persons_swapped(fa: Features, fb: Features) -> bool:
    """Every other word the same and in place, and the same persons named by pronouns on both
    sides (two or more), in another order: who does what to whom turned round ("can I tell
    if someone read my iMessage" / "can someone tell if I read their iMessage", "how do I
    tell my sister she can't be my bridesmaid" / "... I can't be her bridesmaid": chat sets
    F and I, 0.95 and 0.90). One person named for another throughout ("how do I reset my
    password" / "how do you reset your password") is the same question asked of someone
    else, as a chatbot's users write it: not a swap; nor what two sides do to each other
    alike ("for me to date him" / "for him to date me", ``_MUTUAL_VERBS``), nor two clauses
    joined by "and" the other way round (``_conjuncts_turned``)."""
    ta, tb = _person_tokens(fa), _person_tokens(fb)
    pa = [t for t in ta if t[:1] == "@"]
    pb = [t for t in tb if t[:1] == "@"]
    rest = [t for t in ta if t[:1] != "@"]
    if rest != [t for t in tb if t[:1] != "@"] or pa == pb or len(pa) != len(pb):
        return False
    if len(set(pa)) < 2 or set(pa) != set(pb) or not _MUTUAL_VERBS.isdisjoint(rest):
        return False
    return not _conjuncts_turned(ta, tb)
