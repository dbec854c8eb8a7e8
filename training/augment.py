"""Rule-made training pairs for the pair model (seeded; never from an evaluation list).

Hard negatives (label 0) change what the answer must be while keeping almost every word:
antonym swap (WordNet 3.0 pairs shipped in ``boundgate/reuse/data/antonyms_wordnet.tsv``),
negation on/off, a changed number, year, month or weekday, a changed unit, a changed name
(a capitalised word from the training questions), and swapped roles ("from A to B" /
"from B to A", "A faster than B" / "B faster than A").

Light-edit positives (label 1): the same question in another case, without its question mark,
with contractions expanded or made, or behind a polite prefix ("Can you tell me ...").

Synonym positives (label 1, ``synonym_share``): one or two words swapped for a WordNet 3.0
synonym sharing the word's most frequent sense, inflected alike ("What is the largest
planet?" / "What is the biggest planet?"; ``training/data/synonyms_wordnet.tsv``). Beside the
sibling and antonym swaps they teach which one-word changes keep the meaning.

Chat-style rewrites: the same question as people type it to a chatbot: "How do I X?" as
"how to X", "What is the best way to X?" as "best way to X", "What is X?" as "X?" or
"define X", "How long does it take to X?" as "X how long", with the articles or the question
mark dropped, a greeting in front or a letter typed wrong. They are used three ways, so that
the style itself says nothing about the label: a question against its rewrite (label 1), a
labelled pair with one side rewritten (its label kept), and a hard negative rewritten after
its change (label 0).

Keyword forms (``keyword_share``): the question as typed into a search box, its function
words dropped ("How many holes are played in a round of golf?" as "how many holes played
round golf", "When did the Berlin Wall fall?" as "berlin wall fall when"): the words the
answer depends on stay (negations, numbers, names, "from" / "to", "than", the question word
other than "what"). Used the same three ways as the chat-style rewrites: a question against
its keyword form (label 1), a labelled pair with one side in keyword form (its label kept,
unless the two sides' kept words are then the same: a difference only in the dropped words),
and a hard negative in keyword form after its change (label 0).

For a duplicate pair (q1, q2) a hard negative is (q1, mutate(q2)), so the model sees a true
paraphrase beside a near-copy with the opposite meaning; otherwise it is (q, mutate(q)).
"""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANTONYMS = ROOT / "src/boundgate/reuse/data/antonyms_wordnet.tsv"
NOUNS = ROOT / "src/boundgate/reuse/data/nouns_wordnet.tsv"
SYNONYMS = ROOT / "training/data/synonyms_wordnet.tsv"
# words too broad or too light to swap either way ("totally" / "all", "place" / "put"), and
# function words WordNet lists as nouns or adjectives ("one" / "ace", "nothing" / "zero")
_SYNONYM_STOP = frozenset(
    """all only still even just well near close easy get got put lay set make take have give go
    come run turn hold place way thing part matter one nothing number total being having
    doing going after before about above below over under up down out off away back here
    there now then again later ever also too very much many more most less least few first
    last next same other another such own kind sort lot lots bit someone somebody anyone
    anybody everyone everybody""".split()
)

_AUX_CONTRACT = {
    "is": "isn't",
    "are": "aren't",
    "was": "wasn't",
    "were": "weren't",
    "do": "don't",
    "does": "doesn't",
    "did": "didn't",
    "can": "can't",
    "could": "couldn't",
    "should": "shouldn't",
    "would": "wouldn't",
    "will": "won't",
    "has": "hasn't",
    "have": "haven't",
}
_UNCONTRACT = {v: k for k, v in _AUX_CONTRACT.items()} | {"cannot": "can", "dont": "do"}
_PRONOUNS = {"i", "you", "we", "they", "he", "she", "it", "one", "people"}
_MONTHS = (
    "january february march april may june july august september october november december".split()
)
_DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_NUMWORDS = "one two three four five six seven eight nine ten".split()
_UNITS = [
    ("km", "miles"),
    ("kilometers", "miles"),
    ("kg", "pounds"),
    ("kilograms", "pounds"),
    ("celsius", "fahrenheit"),
    ("meters", "feet"),
    ("liters", "gallons"),
    ("inches", "centimeters"),
    ("dollars", "rupees"),
    ("dollars", "euros"),
    ("hours", "minutes"),
    ("days", "weeks"),
    ("months", "years"),
    ("gb", "mb"),
    ("mbps", "kbps"),
]
_COMPARATIVE = re.compile(
    r"\b([A-Za-z][\w+#.]*) (\w+er|more \w+|less \w+|better|worse) than ([A-Za-z][\w+#.]*)"
)
_FROM_TO = re.compile(r"\bfrom ([A-Za-z][\w+#.]*) to ([A-Za-z][\w+#.]*)")
_CAP_TO = re.compile(r"\b([A-Z][\w]*) to ([A-Z][\w]*)")
_PREFIXES = ["Can you tell me ", "Please tell me ", "I'd like to know ", "Do you know ", "Tell me "]
_LIGHT_CONTRACT = [
    ("what is", "what's"),
    ("i am", "i'm"),
    ("do not", "don't"),
    ("it is", "it's"),
    ("how is", "how's"),
]


_HOW = re.compile(
    r"^how (?:do|can|should|could|would|will) (?:i|you|we|one|someone) (.+?)[?.!]*$", re.I
)
_BEST_WAY = re.compile(
    r"^what(?: is|'s| are) (?:the )?(best|easiest|fastest) (ways?) to (.+?)[?.!]*$", re.I
)
_WHAT_IS = re.compile(r"^what(?: is|'s| are) (?:an? |the )?([^,;:]+?)[?.!]*$", re.I)
_SOME = re.compile(r"^what are (?:some )?(?:of )?(?:the )?(best|good|great|top) (.+?)[?.!]*$", re.I)
_HOW_LONG = re.compile(
    r"^how (long|much time|many (?:hours|days|years|months|weeks|minutes)) "
    r"(?:does|do|will|would) it take (?:for (?:me|you|a person|someone) )?to (.+?)[?.!]*$",
    re.I,
)
_GREETINGS = ["hi, ", "hello! ", "hey ", "Hi there. ", "quick question: ", "question - "]
_SIGN_OFFS = [" thanks", " thank you!", " thx", " please", " pls", "??"]
_ARTICLES = re.compile(r"\b(?:the|a|an) ", re.I)
# keyword forms: words a search-box query leaves out (auxiliaries, articles, pronouns and
# possessives, fillers); "of", "in", "on", "at", "for" are left out at a chance each
_KW_DROP = frozenset(
    """a an the is are was were be been am do does did can could should would will shall may
    might must i me my mine you your yours we us our ours it its they them their one someone
    please there this that these those just really actually""".split()
)
_KW_MAYBE = frozenset("of in on at for".split())
_KW_NEGATIONS = {"cannot": "can not", "won't": "will not", "can't": "can not", "n't": " not"}
_KW_LEADS = re.compile(
    r"^(?:(?:hi|hello|hey)[,!.]* )?(?:(?:can|could) you (?:please )?(?:tell me|explain) )?"
    r"(how (?:many|much|long|often|far|old|big|fast|tall|hot|cold)|how|what|which|who|whom|"
    r"whose|when|where|why)\b ?",
    re.I,
)
_KW_WORD = re.compile(r"[\w'+#$%/.&-]+")


def load_antonyms(vocab: set[str]) -> dict[str, list[str]]:
    """word → antonyms, both members whole tokens in the model's vocabulary (so common)."""
    out: dict[str, list[str]] = {}
    for line in ANTONYMS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        a, b, _ = line.split("\t")
        if a in vocab and b in vocab:
            out.setdefault(a, []).append(b)
            out.setdefault(b, []).append(a)
    return out


_DETERMINERS = frozenset(
    "a an the my your our their his her its this that these those some any each every "
    "which what".split()
)


def noun_counts(questions: list[str]) -> Counter[str]:
    """How often each lower-case word follows a determiner ("a", "the", "my", "which", ...)
    in ``questions``: words that do are nouns in use, whatever else WordNet calls them."""
    out: Counter[str] = Counter()
    for q in questions:
        toks = _tokens(q)
        for (i, w, p), (j, v, _) in itertools.pairwise(toks):
            if j == i + 1 and w in _DETERMINERS and not p:
                out[v] += 1
    return out


def load_siblings(vocab: set[str], nouns: Counter[str], least: int = 5) -> dict[str, list[str]]:
    """noun → its WordNet 3.0 siblings (a hypernym of the first two senses in common, no
    sense in common: "rat" / "mouse", "flu" / "pneumonia", "car" / "truck"), both whole
    tokens of at least 3 letters in the model's vocabulary and following a determiner at
    least ``least`` times in the training questions (``nouns``, from ``noun_counts``). Read
    from the guards' ``nouns_wordnet.tsv``."""
    senses: dict[str, set[str]] = {}
    under: dict[str, list[str]] = {}
    for line in NOUNS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        lemma, own, up = line.split("\t")
        if lemma not in vocab or len(lemma) < 3 or nouns[lemma] < least:
            continue
        senses[lemma] = set(own.split(","))
        for h in up.split(","):
            if h:
                under.setdefault(h, []).append(lemma)
    out: dict[str, set[str]] = {}
    for kin in under.values():
        if len(kin) > 60:  # a broad class ("person", "act"): its members are not look-alikes
            continue
        for a in kin:
            for b in kin:
                if a != b and senses[a].isdisjoint(senses[b]):
                    out.setdefault(a, set()).add(b)
    return {a: sorted(bs) for a, bs in out.items()}


class Synonyms:
    """WordNet 3.0 synonyms by part of speech with the irregular forms to inflect them
    (``training/wordnet_synonyms.py``); only words that are whole tokens of the model."""

    def __init__(self, vocab: set[str], path: Path = SYNONYMS):
        self.by_pos: dict[str, dict[str, list[str]]] = {}
        self.lemma_of: dict[str, str] = {}  # irregular form → lemma
        self.forms: dict[str, list[str]] = {}  # lemma → its irregular forms
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                continue
            pos, a, b = line.split("\t")
            if pos == "exc":
                self.lemma_of.setdefault(a, b)
                self.forms.setdefault(b, []).append(a)
                continue
            syns = [w for w in b.split(",") if w in vocab and w not in _SYNONYM_STOP]
            if a in vocab and a not in _SYNONYM_STOP and syns:
                self.by_pos.setdefault(pos, {})[a] = syns

    def analyses(self, word: str) -> list[tuple[str, str, str]]:
        """(part of speech, lemma, inflection) readings of ``word`` whose lemma has synonyms;
        inflection one of "", "s", "ed", "ing", "er", "est"."""
        cands: list[tuple[str, str, str]] = [(p, word, "") for p in "nvar"]
        if word in self.lemma_of:
            lemma = self.lemma_of[word]
            for end, poss in (("ing", "v"), ("est", "a"), ("er", "a"), ("s", "nv")):
                if word.endswith(end):
                    cands += [(p, lemma, end) for p in poss]
                    break
            else:
                cands += [("v", lemma, "ed"), ("n", lemma, "s")]
        for end, poss in (("s", "nv"), ("ed", "v"), ("ing", "v"), ("er", "a"), ("est", "a")):
            if word.endswith(end) and len(word) > len(end) + 2:
                stem = word[: -len(end)]
                restored = stem + "e" if end != "s" else ""  # "used" → "use"; "stars" ≠ "stare"
                for lemma in (stem, restored, stem[:-1] + "y" if stem.endswith("i") else ""):
                    cands += [(p, lemma, end) for p in poss if lemma]
                if end == "s" and word.endswith(("ses", "xes", "zes", "ches", "shes")):
                    cands += [(p, word[:-2], end) for p in poss]
        out = [(p, lem, e) for p, lem, e in cands if lem in self.by_pos.get(p, {})]
        if any(p == "n" and e == "s" for p, _, e in out):  # "stars": the noun, not "star" (v)
            out = [r for r in out if not (r[0] == "v" and r[2] == "s")]
        return out

    def inflect(self, lemma: str, end: str, pos: str) -> str:
        """``lemma`` with inflection ``end``: an irregular form of WordNet's when one has
        that ending (big → biggest, build → built), else the regular spelling."""
        if not end:
            return lemma
        for form in self.forms.get(lemma, []):
            past = end == "ed" and pos == "v" and not form.endswith(("s", "ing"))
            if form.endswith(end) or past:
                return form
        if end == "s":
            return _plural(lemma)
        if lemma.endswith("e") and end != "s":
            return lemma[:-1] + end if end == "ing" else lemma + end[1:]
        if lemma.endswith("y") and lemma[-2:-1] not in "aeiou" and end != "ing":
            return lemma[:-1] + "i" + end
        return lemma + end


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _kept(text: str) -> frozenset[str]:
    """The words a keyword form keeps, as a set (order and the question mark aside)."""
    return frozenset(w.strip(".'") for w in _KW_WORD.findall(text.lower())) - _KW_DROP - _KW_MAYBE


def _keep_case(old: str, new: str) -> str:
    return new.capitalize() if old[:1].isupper() else new


def _replace_word(q: str, i: int, new: str) -> str:
    words = q.split(" ")
    words[i] = new
    return " ".join(words)


def _tokens(q: str) -> list[tuple[int, str, str]]:
    """(index, core lower-case word, trailing punctuation) for each space-separated word."""
    out = []
    for i, w in enumerate(q.split(" ")):
        m = re.fullmatch(r"([A-Za-z']+)([?.,!:;]*)", w)
        if m:
            out.append((i, m.group(1).lower(), m.group(2)))
    return out


class Mutator:
    def __init__(
        self,
        rng: random.Random,
        antonyms: dict[str, list[str]],
        names: list[str],
        siblings: dict[str, list[str]] | None = None,
        synonyms: Synonyms | None = None,
    ):
        self.rng = rng
        self.antonyms = antonyms
        self.names = names
        self.siblings = siblings or {}
        self.synonyms = synonyms

    def synonym(self, q: str) -> str | None:
        """One lower-case word swapped for a WordNet synonym, inflected alike (a second one
        a third of the time); None when no word has one."""
        if self.synonyms is None:
            return None
        words = q.split(" ")
        cands = []
        for i, w, p in _tokens(q):
            if words[i][:1].islower() or i == 0:
                for reading in self.synonyms.analyses(w):
                    cands.append((i, p, reading))
        if not cands:
            return None
        self.rng.shuffle(cands)
        out, done = q, set()
        for i, p, (pos, lemma, end) in cands:
            if i in done:
                continue
            new = self.synonyms.inflect(self.rng.choice(self.synonyms.by_pos[pos][lemma]), end, pos)
            out = _replace_word(out, i, _keep_case(words[i], new) + p)
            done.add(i)
            if len(done) == 2 or self.rng.random() < 2 / 3:
                break
        return out if out != q else None

    def sibling(self, q: str) -> str | None:
        """One lower-case noun swapped for a sibling ("mouse" → "rat"), plural kept; the noun
        follows a determiner or is a plural, so it is a noun here."""
        words = q.split(" ")
        cands = []
        toks = _tokens(q)
        for k, (i, w, p) in enumerate(toks):
            after_det = k > 0 and toks[k - 1][1] in _DETERMINERS and toks[k - 1][0] == i - 1
            if not words[i][:1].islower() or not (after_det or w.endswith("s")):
                continue
            if w in self.siblings:
                cands.append((i, w, False, p))
            elif w.endswith("s") and w[:-1] in self.siblings:
                cands.append((i, w[:-1], True, p))
        if not cands:
            return None
        i, w, plural, p = self.rng.choice(cands)
        new = self.rng.choice(self.siblings[w])
        return _replace_word(q, i, (_plural(new) if plural else new) + p)

    def antonym(self, q: str) -> str | None:
        words = q.split(" ")
        cands = [(i, w, p) for i, w, p in _tokens(q) if w in self.antonyms]
        if not cands:
            return None
        i, w, p = self.rng.choice(cands)
        return _replace_word(q, i, _keep_case(words[i], self.rng.choice(self.antonyms[w])) + p)

    def negation(self, q: str) -> str | None:
        words = q.split(" ")
        toks = _tokens(q)
        for i, w, p in toks:  # remove a negation if there is one
            if w in _UNCONTRACT:
                return _replace_word(q, i, _keep_case(words[i], _UNCONTRACT[w]) + p)
            if w in ("not", "never") and i > 0:
                return " ".join(words[:i] + words[i + 1 :])
        for k, (i, w, p) in enumerate(toks):
            if w not in _AUX_CONTRACT or p:
                continue
            nxt = toks[k + 1][1] if k + 1 < len(toks) else ""
            if k + 2 < len(toks) and nxt in _PRONOUNS:  # "how can I X" → "how can I not X"
                j = toks[k + 1][0]
                return " ".join([*words[: j + 1], "not", *words[j + 1 :]])
            if i > 0 and toks[k - 1][1] in ("why", "what", "who", "which", "when", "where"):
                return _replace_word(q, i, _AUX_CONTRACT[w])
            if i > 0 and w in ("is", "are", "was", "were", "can", "should", "will"):
                return " ".join([*words[: i + 1], "not", *words[i + 1 :]])
        return None

    def number(self, q: str) -> str | None:
        nums = list(re.finditer(r"\b\d+(?:\.\d+)?\b", q))
        if nums:
            m = self.rng.choice(nums)
            text = m.group(0)
            if re.fullmatch(r"(19|20)\d\d", text):
                new = str(int(text) + self.rng.choice([-3, -2, -1, 1, 2, 3]))
            elif "." in text:
                new = f"{float(text) * self.rng.choice([2, 3, 0.5]):g}"
            else:
                n = int(text)
                new = str(self.rng.choice([n + 1, n + 2, max(0, n - 1), n * 2, n * 10]))
            if new == text:
                new = str(int(float(text)) + 1)
            return q[: m.start()] + new + q[m.end() :]
        words = q.split(" ")
        for pool in (_NUMWORDS, _MONTHS, _DAYS):
            cands = [(i, w, p) for i, w, p in _tokens(q) if w in pool and w != "may"]
            if cands:
                i, w, p = self.rng.choice(cands)
                new = self.rng.choice([x for x in pool if x != w])
                return _replace_word(q, i, _keep_case(words[i], new) + p)
        return None

    def unit(self, q: str) -> str | None:
        words = q.split(" ")
        for i, w, p in _tokens(q):
            for a, b in _UNITS:
                if w in (a, b):
                    return _replace_word(q, i, _keep_case(words[i], b if w == a else a) + p)
        return None

    def name(self, q: str) -> str | None:
        words = q.split(" ")
        cands = [
            (i, w, p) for i, w, p in _tokens(q) if i > 0 and words[i][:1].isupper() and w != "i"
        ]
        if not cands:
            return None
        i, w, p = self.rng.choice(cands)
        new = self.rng.choice(self.names)
        return None if new.lower() == w else _replace_word(q, i, new + p)

    def roles(self, q: str) -> str | None:
        for rx, groups in ((_FROM_TO, (1, 2)), (_COMPARATIVE, (1, 3)), (_CAP_TO, (1, 2))):
            m = rx.search(q)
            if m:
                a, b = m.group(groups[0]), m.group(groups[1])
                if a.lower() == b.lower():
                    continue
                s = m.group(0)
                s = s[: m.start(groups[0]) - m.start()] + b + s[m.end(groups[0]) - m.start() :]
                off = len(b) - len(a)
                st, en = m.start(groups[1]) - m.start() + off, m.end(groups[1]) - m.start() + off
                s = s[:st] + a + s[en:]
                return q[: m.start()] + s + q[m.end() :]
        return None

    def chat(self, q: str) -> str | None:
        """The question as typed to a chatbot: a structural rewrite where one applies, then
        (or else) a surface one; None when nothing changed."""
        rng = self.rng
        new = q
        if m := _HOW.match(q):
            rest = m.group(1)
            new = rng.choice(
                [
                    f"how to {rest}",
                    f"How do I {rest}?",
                    f"how can i {rest}",
                    f"best way to {rest}",
                    f"What's the way to {rest}?",
                    f"{rest} - how?",
                    f"how would I {rest}",
                ]
            )
        elif m := _BEST_WAY.match(q):
            new = rng.choice(
                [
                    f"{m.group(1)} {m.group(2)} to {m.group(3)}?",
                    f"how to {m.group(3)}",
                    f"how do I {m.group(3)}",
                ]
            )
        elif m := _HOW_LONG.match(q):
            new = rng.choice(
                [
                    f"{m.group(2)} how {m.group(1)}",
                    f"how {m.group(1)} to {m.group(2)}",
                    f"how {m.group(1)} for {m.group(2)}?",
                ]
            )
        elif m := _SOME.match(q):
            new = rng.choice(
                [f"{m.group(1)} {m.group(2)}?", f"recommend some {m.group(1)} {m.group(2)}"]
            )
        elif (m := _WHAT_IS.match(q)) and len(m.group(1).split()) <= 4:
            x = m.group(1)
            if x.split()[0].lower() not in _PRONOUNS | {"your", "my", "this", "that", "there"}:
                forms = [f"{x}?", f"explain {x}", f"tell me about {x}"]
                if len(x.split()) <= 2:
                    forms += [f"define {x}", f"{x} meaning"]
                new = rng.choice(forms)
        if new == q or rng.random() < 0.5:
            kind = rng.randrange(4)
            if kind == 0:
                new = _ARTICLES.sub("", new).lower().rstrip("?").rstrip()
            elif kind == 1:
                new = rng.choice(_GREETINGS) + new[:1].lower() + new[1:]
            elif kind == 2:
                new = new.rstrip("?.! ") + rng.choice(_SIGN_OFFS)
            else:
                new = self.typo(new)
        return None if new.strip() == q.strip() or len(new) < 3 else new

    def keywords(self, q: str) -> str | None:
        """The question as a search-box query: lower case, its function words dropped, the
        question word (other than "what" and "which") kept at the start or moved to the end;
        None when fewer than two words remain or nothing was dropped."""
        rng = self.rng
        text = q.strip()
        lead = ""
        if m := _KW_LEADS.match(text):
            lead = m.group(1).lower()
            text = text[m.end() :]
        low = text.lower()
        for a, b in _KW_NEGATIONS.items():
            low = low.replace(a, b)
        kept = []
        for w in _KW_WORD.findall(low):
            w = w.strip(".'")
            if not w or w in _KW_DROP or (w in _KW_MAYBE and rng.random() < 0.6):
                continue
            kept.append(w)
        if len(kept) + bool(lead) < 2:
            return None
        if lead in ("what", "which"):
            lead = "" if rng.random() < 0.8 else lead
        elif lead == "how":
            lead = "how to" if rng.random() < 0.5 else "how"
        if lead and rng.random() < 0.4:
            kept.append(lead)
        elif lead:
            kept.insert(0, lead)
        new = " ".join(kept)
        if rng.random() < 0.2:
            new += "?"
        plain = re.sub(r"[?.!]+$", "", q.strip()).lower()
        return None if new.rstrip("?") == plain or len(new) < 3 else new

    def typo(self, q: str) -> str:
        """One letter swapped with its neighbour or dropped, in a lower-case word of ≥ 5 letters."""
        words = q.split(" ")
        cands = [i for i, w in enumerate(words) if re.fullmatch(r"[a-z]{5,}", w)]
        if not cands:
            return q
        i = self.rng.choice(cands)
        w = words[i]
        j = self.rng.randrange(1, len(w) - 1)
        words[i] = (
            w[:j] + w[j + 1] + w[j] + w[j + 2 :] if self.rng.random() < 0.5 else w[:j] + w[j + 1 :]
        )
        return " ".join(words)

    def light(self, q: str) -> str:
        kind = self.rng.randrange(4)
        if kind == 0:
            return q.lower() if self.rng.random() < 0.5 else q.rstrip("?").rstrip()
        if kind == 1:
            low = q.lower()
            for a, b in _LIGHT_CONTRACT:
                if a in low:
                    return re.sub(re.escape(a), b, q, count=1, flags=re.I)
                if b in low:
                    return re.sub(re.escape(b), a, q, count=1, flags=re.I)
            return q.lower()
        if kind == 2:
            return self.rng.choice(_PREFIXES) + q[:1].lower() + q[1:]
        return q.replace("?", " ?") if "?" in q else q + "?"


def make_pairs(
    train: list[tuple[str, str, int]],
    rng: random.Random,
    vocab: set[str],
    hard_share: float,
    light_share: float,
    chat_share: float = 0.0,
    siblings: bool = False,
    chat_pairs: list[tuple[str, str, int]] | None = None,
    chat_hard: int = 0,
    synonym_share: float = 0.0,
    keyword_share: float = 0.0,
    mirror_share: float = 0.0,
) -> tuple[list[tuple[str, str, int]], dict[str, int]]:
    """Rule-made pairs: about ``hard_share`` × len(train) hard negatives (a third of them
    rewritten chat-style when ``chat_share`` > 0), ``light_share`` × len(train) light-edit
    positives, ``chat_share`` × len(train) chat-style positives and as many labelled pairs
    with one side rewritten chat-style. With ``siblings`` a hard negative may swap a noun for
    a WordNet sibling. With ``chat_hard`` > 0, each pair of ``chat_pairs`` (labelled chatbot
    pairs) gets up to ``chat_hard`` hard negatives made by the same rules. With
    ``mirror_share`` > 0, that share of the hard negatives each get a light-edit positive of
    their anchor: without it the rules made "convert kg to lbs" / "convert lbs to kg"
    negatives and nothing said that a conversion question can have a paraphrase, and the
    shipped members scored "convert celsius to fahrenheit" against itself 0.07 (a re-check).
    Returns the pairs and a count per rule."""
    caps: Counter[str] = Counter()
    for a, b, _ in train:
        for q in (a, b):
            for w in q.split(" ")[1:]:
                m = re.fullmatch(r"([A-Z][a-z]{2,})[?.,]*", w)
                if m:
                    caps[m.group(1)] += 1
    names = [w for w, c in caps.items() if c >= 5]
    sibs = None
    if siblings:
        sibs = load_siblings(vocab, noun_counts([q for a, b, _ in train for q in (a, b)]))
    syns = Synonyms(vocab) if synonym_share else None
    mut = Mutator(rng, load_antonyms(vocab), names, sibs, syns)
    rules: dict[str, Callable[[str], str | None]] = {
        "antonym": mut.antonym,
        "negation": mut.negation,
        "number": mut.number,
        "unit": mut.unit,
        "name": mut.name,
        "roles": mut.roles,
    }
    if siblings:
        rules["sibling"] = mut.sibling
    counts: Counter[str] = Counter()
    out: list[tuple[str, str, int]] = []

    def hard_negative(a: str, b: str, y: int, prefix: str = "") -> None:
        # try rules in a random order; rarer rules first where they apply at all
        order = list(rules)
        rng.shuffle(order)
        order.sort(key=lambda r: r not in ("roles", "unit", "number"))
        anchor, target = (a, b) if y == 1 else (a, a)
        for r in order:
            new = rules[r](target)
            if new and new != target and new.lower() != anchor.lower():
                if chat_share and rng.random() < 1 / 3:
                    styled = mut.chat(new)
                    if styled and styled.lower() != anchor.lower():
                        new = styled
                        counts["chat_hard_negative"] += 1
                elif keyword_share and rng.random() < 1 / 4:
                    short = mut.keywords(new)
                    if short and _kept(short) != _kept(mut.keywords(anchor) or anchor):
                        new = short
                        counts["keyword_hard_negative"] += 1
                out.append((anchor, new, 0))
                counts[prefix + r] += 1
                if mirror_share and rng.random() < mirror_share:
                    same = mut.light(anchor)
                    if same != anchor:
                        out.append((anchor, same, 1))
                        counts["mirror_positive"] += 1
                return

    def synonym_pairs(a: str, b: str, y: int, prefix: str = "") -> None:
        q = a if rng.random() < 0.5 else b
        new = mut.synonym(q)
        if new and new.lower() != q.lower():
            out.append((q, new, 1))
            counts[prefix + "synonym_positive"] += 1
        new = mut.synonym(b)
        if new and new.lower() != a.lower():
            out.append((a, new, y))
            counts[f"{prefix}synonym_restyled_{y}"] += 1

    def keyword_restyled(a: str, b: str, y: int, prefix: str = "") -> None:
        if rng.random() < 0.5:
            a, b = b, a
        short = mut.keywords(b)
        if not short or short.lower() == a.lower():
            return
        if y == 0 and _kept(short) == _kept(mut.keywords(a) or a):
            return  # the two differed only in words the keyword form drops
        out.append((a, short, y))
        counts[f"{prefix}keyword_restyled_{y}"] += 1

    for a, b, y in chat_pairs or []:
        for _ in range(chat_hard):
            hard_negative(a, b, y, "chat_")
        if keyword_share:
            keyword_restyled(a, b, y, "chat_")
        if synonym_share:
            synonym_pairs(a, b, y, "chat_")
    for a, b, y in train:
        if rng.random() < hard_share:
            hard_negative(a, b, y)
        if rng.random() < light_share:
            q = a if rng.random() < 0.5 else b
            new = mut.light(q)
            if new != q:
                out.append((q, new, 1))
                counts["light_positive"] += 1
        if synonym_share and rng.random() < synonym_share:
            synonym_pairs(a, b, y)
        if chat_share and rng.random() < chat_share:
            q = a if rng.random() < 0.5 else b
            new2 = mut.chat(q)
            if new2:
                out.append((q, new2, 1))
                counts["chat_positive"] += 1
        if keyword_share and rng.random() < keyword_share:
            q = a if rng.random() < 0.5 else b
            short = mut.keywords(q)
            if short:
                out.append((q, short, 1))
                counts["keyword_positive"] += 1
        if keyword_share and rng.random() < keyword_share:
            keyword_restyled(a, b, y)
        if chat_share and rng.random() < chat_share:
            new2 = mut.chat(b)
            if new2 and new2.lower() != a.lower():
                out.append((a, new2, y))
                counts[f"chat_restyled_{y}"] += 1
    return out, dict(counts)
