"""Literal text: code tokens, quoted text, symbols, and differences the uncased models cannot
see (case, spacing, "x²" / "x2")."""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from ..scope import QUOTED_SPAN, about_form, canonical_query, literal_spans
from .lexicon import _PROSE_MARKS, _TYPOGRAPHIC

if TYPE_CHECKING:
    from .extract import Features

_CODE_CHARS = frozenset("()[]{}<>=_^*/\\|&$#@~+!")


# spaces after a comma or bracket before a digit or bracket: "len([1, 2, 3])"
_CODE_SPACE = re.compile(r"(?<=[\d()\[\]{},])\s+(?=[\d()\[\]{}])")


# a short operand at a token's end or start: a number ("2", "2x", "3.5") or one letter,
# brackets aside ("print(2", "3)")
_OPERAND_END = re.compile(r"(?:^|[^\w.])(?:\d[\d.]*[a-zA-Z]?|[a-zA-Z])[)\]}]*$")


_OPERAND_START = re.compile(r"^[(\[{]*(?:\d[\d.]*[a-zA-Z]?|[a-zA-Z])(?![\w.])")


def _closed_up(text: str) -> list[str]:
    """The whitespace tokens of ``text`` with code written without its spaces: an operator
    standing between two short operands joined to them ("print(2 ** 3)", "2x + 3 = 11", "x
    += 1"), spaces after commas in brackets dropped ("len([1, 2, 3])"); operators between
    words stay apart ("between == and ===")."""
    toks = _CODE_SPACE.sub("", text).split()
    out: list[str] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        operator = not any(c.isalnum() for c in t) and not set(t) <= _PROSE_ONLY
        between = out and i + 1 < len(toks) and _OPERAND_END.search(out[-1])
        if operator and between and _OPERAND_START.search(toks[i + 1]):
            out[-1] += t + toks[i + 1]
            i += 2
            continue
        out.append(t)
        i += 1
    return out


_SUM_OR_PRODUCT = re.compile(r"(\d[\d.]*)([+*×])(\d[\d.]*)")


_PROSE_ONLY = frozenset("?!.,;:\"'“”‘’`")


_PROSE_SLASH = re.compile(r"[^\W\d_]+(?:/[^\W\d_]+)+")  # words joined by slashes


_MONEY = re.compile(r"\$?[\d.,]+\$?")


_TOKEN_QUOTES = "\"'“”‘’«»„「」『』`"


def _code_tokens(text: str) -> tuple[str, ...]:
    """The tokens of ``text`` that mix characters of code with letters or digits ("2**3",
    "s[::2]", "x++", "head~3"), case folded and sorted; quotes, a trailing mark or "=" and
    prose brackets ("(in India)") left out. An operator standing alone ("12 * 12", "== and
    ===") is prose's business (``_symbols``): spacing is no difference."""
    out = []
    for raw in _closed_up(unicodedata.normalize("NFKC", text)):
        w = raw.strip(_TOKEN_QUOTES).rstrip("?.,;:!").strip(_TOKEN_QUOTES).rstrip("=")
        if w.count("(") != w.count(")"):
            w = w.removeprefix("(").removesuffix(")")
        elif w.startswith("(") and w.endswith(")") and w[1:-1].isalpha():
            w = w[1:-1]  # a word in brackets
        if not any(c in _CODE_CHARS for c in w) or not any(c.isalnum() for c in w):
            continue
        if _PROSE_SLASH.fullmatch(w) or _MONEY.fullmatch(w):
            continue  # "gay/lesbian", "Lab/Pitbull"; "$1000" / "1000$" (the units' business)
        if m := _SUM_OR_PRODUCT.fullmatch(w):  # "2+3" is "3+2"
            w = m[2].join(sorted((m[1], m[3])))
        out.append(w.casefold().replace("'", '"'))  # print('a') is print("a")
    return tuple(sorted(set(out)))


QUOTED_WORDS = 3  # _literals_differ: the longest quoted text held to its words


def _literals_differ(fa: Features, fb: Features) -> bool:
    """Both sides write code, or both quote text, and not the same: "What is 2**3 in
    Python?" / "What is 2*3 in Python?", "What does s[::2] do?" / "s[2::]", "2>&1" / "1>&2",
    'letters in "banana"' / '"bananas"', 'Is "affect" a verb?' / '"effect"' (a trial was
    served all of these, pair scores 0.93-0.99). A quoted text is the same where its words
    stand together on the other side, quoted or not ('TypeError: \'NoneType\' …' / 'what does
    "TypeError: \'NoneType\' …" mean'). One side without code (a formula against its words:
    "x^2" / "x squared") is left to the models."""
    if fa.code and fb.code and fa.code != fb.code:
        return True
    # a short quoted text is the object of the question ('"banana"'); a long one may be
    # quoted in other words ('"we live in a simulation"' / '"we are living in a simulation"')
    qa = [q for q in fa.quoted if len(q) <= QUOTED_WORDS]
    qb = [q for q in fb.quoted if len(q) <= QUOTED_WORDS]
    if not (qa and qb):
        return False
    return not all(_within(q, fb.words) for q in qa) or not all(_within(q, fa.words) for q in qb)


def _within(part: tuple[str, ...], whole: list[str]) -> bool:
    """Whether the words ``part`` stand together, in order, in ``whole``."""
    n = len(part)
    return any(tuple(whole[i : i + n]) == part for i in range(len(whole) - n + 1))


def _symbols(text: str) -> frozenset[str]:
    """The words of ``text`` made of symbols alone, operators and arguments ("??", "?.",
    "--", "=="), typographic quotes as the keyboard's; punctuation that stands alone in prose
    (``_PROSE_MARKS``) is left out, but not between two operands ("10 / 3", "a - b": an
    operator, which "10 // 3" and "a + b" are not the same as)."""
    words_ = unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHIC).split()
    if words_ and len(words_[-1]) > 1 and words_[-1][-1] in "?？":
        words_[-1] = words_[-1][:-1]  # the question's mark: "how does == differ from ===?"
    words_ = [w.rstrip(",;").strip("`") or w for w in words_]  # `==` is ==
    out = set()
    for i, w in enumerate(words_):
        if any(c.isalnum() for c in w):
            continue
        operands = 0 < i < len(words_) - 1 and _operand(words_[i - 1]) and _operand(words_[i + 1])
        if w not in _PROSE_MARKS or (operands and w in "/-"):
            out.add(w)
    return frozenset(out)


def _operand(word: str) -> bool:
    """A number or a one-letter variable ("10", "3.5", "a", "x?"): what an operator joins."""
    w = word.rstrip("?.!")
    return bool(w) and (w.replace(".", "", 1).isdigit() or (len(w) == 1 and w.isalpha()))


_FACTORIAL = re.compile(r"(\d+)!(?!=)|\bfactorial\s+of\s+(\d+)\b|\b(\d+)\s+factorial\b", re.I)


def factorials(text: str) -> frozenset[str]:
    """The numbers whose factorial ``text`` asks for, however written: "5!", "factorial of
    5", "5 factorial" (a trial's "factorial of 5" / "what's 5!" was vetoed as numbers apart)."""
    return frozenset(next(g for g in m.groups() if g) for m in _FACTORIAL.finditer(text))


_SPACES = re.compile(r"\s+")


def _model_view(text: str) -> str:
    """The text as the uncased embedder and pair model read it: compatibility characters
    folded (NFKC: "x²" reads as "x2"), case folded, accents dropped (their tokenizer strips
    them: "schön" reads as "schon", "résumé" as "resume", "año" as "ano"; a trial was served
    each pair's other answer), whitespace runs as one space, a trailing ``?!.`` dropped."""
    text = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text).casefold())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    text = _SPACES.sub(" ", text).strip()
    return text.rstrip("?!. ")


def _lowercase_typist(a: str, b: str, ca: str, cb: str) -> bool:
    """Whether the exact forms ``ca``, ``cb`` differ only in the case of prose words and one
    side is typed without any capital, so its case says nothing ("what is dna" / "What is
    DNA?", "... on windows" / "... on Windows"): there the models decide, under the
    verifier's bound. Not for quoted text, code or a question about its own form, whose case
    counts even when typed in lower case."""
    if ca.lower() != cb.lower() or (any(c.isupper() for c in a) and any(c.isupper() for c in b)):
        return False
    if _acronym_lowered(a, b) or _acronym_lowered(b, a):
        return False
    return not (literal_spans(a) or literal_spans(b) or about_form(a) or about_form(b))


_CAPS_WORD = re.compile(r"\b[A-Z]{2,}\b")
# function words that are also common acronyms (the World Health Organization, information
# technology, the United States): only these, since capitals are mostly emphasis ("what IS
# the capital of France", "WHY is the sky blue": the rule over all function words vetoed
# them, a re-check's finding)
ACRONYM_FUNCTION_WORDS = frozenset(["who", "it", "us"])
_LOWER_WORD = re.compile(r"\b[a-z]{2,}\b")


def _acronym_lowered(a: str, b: str) -> bool:
    """``a`` writes in capitals a word that is a function word in lower case, and ``b``
    writes it in lower case: "what is the meaning of WHO" / "… of who", "what does IT mean"
    / "what does it mean" (a trial was served both, pair scores 0.98-0.99). There the lower
    case reads as the function word, not as a typist's acronym. Not when ``a`` is written
    in capitals throughout (most of its letters): that is a style, not acronyms ("WHAT IS THE
    CAPITAL OF FRANCE")."""
    letters = [c for c in a if c.isalpha()]
    if sum(c.isupper() for c in letters) > len(letters) / 2:
        return False
    caps = {w.lower() for w in _CAPS_WORD.findall(a)} & ACRONYM_FUNCTION_WORDS
    return bool(caps) and not caps.isdisjoint(_LOWER_WORD.findall(b))


def _blind_spot(a: str, b: str) -> bool:
    """The sides differ where the models cannot see it, so their scores say nothing about it:
    the texts read the same to the models but not as exact questions (``canonical_query``:
    the case or spacing of quoted text or code, "x²" / "x2", "5!" / "5"), or a quoted text of
    one side differs from one of the other only in case or spacing ('print("Hi")' /
    'print("hi")' in otherwise different wordings)."""
    if _model_view(a) == _model_view(b):  # (first: most pairs read apart, so no exact forms)
        ca, cb = canonical_query(a), canonical_query(b)
        if ca != cb and not _lowercase_typist(a, b, ca, cb):
            return True
    qa, qb = set(QUOTED_SPAN.findall(a)), set(QUOTED_SPAN.findall(b))
    fold = {_model_view(q) for q in qa - qb}
    return any(_model_view(q) in fold for q in qb - qa)
