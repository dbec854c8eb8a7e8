"""Reuse scope: what must be identical for a stored answer to serve a request.

A stored answer is filed under a *scope key*, a SHA-256 over the canonical JSON of everything
that may change the answer except the wording of the last user message:

- the tenant;
- the model name and its version (gguf file hash, or the upstream model name);
- the shape (chat or text completion), the system prompt and every earlier turn, verbatim;
- output-shaping parameters: ``response_format``, ``stop`` (sorted), ``seed`` where given,
  ``top_p``, and any other passthrough parameter except who asks
  (``user``, ``safety_identifier``) and how an upstream stores, bills or caches the request
  (``store``, ``metadata``, ``service_tier``, ``prompt_cache_key``,
  ``prompt_cache_retention``).

The index is partitioned by scope key (one ANN index per scope), so a lookup can only ever
see entries of its own scope: cross-scope reuse is impossible by construction, not by a
filter that could be forgotten. Only the last user message is matched by meaning.

The completion-token limit is not in the scope: whether a stored answer is one a request with
its ``max_tokens`` could have received is ``answer_fits``'s to say, answer by answer. Scopes
made before that held the limit's class (``max_tokens_class``); a key carries the scope of its
class too (``ReuseKey.legacy``), where answers stored and documents bound then are found.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from importlib import resources
from typing import Any

import rfc8785

from ..backends.base import GenerationRequest

# The classes of ``max_tokens`` that older scopes held (``ReuseKey.legacy``): stored answers
# and bound documents of those scopes are still found by requests of their class.
MAX_TOKENS_CLASSES = (64, 256, 1024, 4096)
# Parameters that don't shape the answer's content (or are handled elsewhere): who asks
# ("user", "safety_identifier"), how it is delivered, stored or billed by an OpenAI upstream
# ("store", "metadata", "service_tier", "prompt_cache_key", "prompt_cache_retention"). A
# client tagging each request with its own metadata would otherwise never be reused.
_NOT_SHAPING = frozenset(
    {
        "user",
        "safety_identifier",
        "stream",
        "stream_options",
        "n",
        "boundgate",
        "temperature",
        "store",
        "metadata",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
    }
)


# parameters at OpenAI's documented default change nothing the model does: sent or left out,
# one scope (a helper's audit: `"logit_bias": {}` or `"presence_penalty": 0` missed every
# answer stored without them)
_DEFAULTS: dict[str, Any] = {
    "logit_bias": {},
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "response_format": {"type": "text"},
    "modalities": ["text"],
    "logprobs": False,
    "parallel_tool_calls": True,
}


def _shaping(k: str, v: Any) -> bool:
    """Whether passthrough parameter ``k`` with value ``v`` is in the scope."""
    if k in _NOT_SHAPING or v is None:
        return False
    if k not in _DEFAULTS:
        return True
    default = _DEFAULTS[k]
    if isinstance(v, bool) != isinstance(default, bool):
        return True  # `"presence_penalty": false` is no 0 (what the upstream makes of it)
    return bool(v != default)


def max_tokens_class(n: int) -> int:
    """The class of limit ``n`` that scopes made before the limit left them held: the
    smallest of ``MAX_TOKENS_CLASSES`` at or above it, else 2³⁰."""
    for c in MAX_TOKENS_CLASSES:
        if n <= c:
            return c
    return 1 << 30


_SAFE_INT = 2**53 - 1  # JCS serialises numbers as IEEE doubles: larger integers are refused


def _jcs_safe(obj: Any) -> Any:
    """``obj`` with what JCS cannot serialise spelled as text: integers beyond ±(2^53 − 1)
    (a valid int64 ``seed``) and non-finite floats (``NaN``, which Python's JSON parser
    accepts). Distinct values stay distinct; values JCS can hold are left alone."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj if -_SAFE_INT <= obj <= _SAFE_INT else f"int:{obj}"
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else f"float:{obj}"
    if isinstance(obj, dict):
        return {str(k): _jcs_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jcs_safe(v) for v in obj]
    return obj


def _canonical(obj: Any) -> str:
    """RFC 8785 (JCS), the canonical form documents are signed in: a scope rebuilt from a
    document's JSON (where 1.0 reads back as 1) hashes like the original."""
    return rfc8785.dumps(_jcs_safe(obj)).decode()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


_SPACE = re.compile(r"\s+")
# a line break of any kind inside a text makes it a text of lines, kept as written: "\r"
# alone, U+2028 or "\x1c" in one line were read as spaces by the prose form, and Python
# code with "\r" line ends was served the answer to its other indentation (a re-check)
_LINE_BREAK = re.compile("[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
# Quoted text, whose every character counts: fenced code, "…" (even over lines), '…', “…”,
# ‘…’, «…», „…“, 「…」, 『…』, `…`. The exact form keeps it as written; the guards' literal
# check compares it (guards/literals.py).
QUOTED = (
    r"""```.*?```|(?<!\w)"[^"]*"|(?<!\w)'[^'\n]*'(?!\w)|“[^”]*”|‘[^’\n]*’|«[^»]*»"""
    r"""|„[^“”]*[“”]|「[^」]*」|『[^』]*』|`[^`\n]*`"""
)
QUOTED_SPAN = re.compile(QUOTED, re.DOTALL)
# Spans whose every character counts: quoted text and tokens with characters of code or
# formulas (print(x), a_b, x^2, C++, 5!). A code token or a factorial starts only where a
# token can (after a space, the start, or a quote that ended a span): tried from every
# position, a long run of characters without spaces took quadratic time (a 40 KB DNA
# sequence 24 s, on the event loop).
_TOKEN_START = r"""(?<![^\s"'”’»“」』`])"""
LITERAL = re.compile(
    QUOTED + rf"""|{_TOKEN_START}\S*[()\[\]{{}}<>=_^*/\\|&$#@%~+][^\s]*|(?<!\d)\d+!+""",
    re.DOTALL,
)
_TRAILING = "?.。？ \t"
_QUOTES = "\"'“‘«„「『`"


_SENTENCE_END = ".!?。？！"
# The material of an instruction: what follows its first colon ("Translate into French: You
# are coming?", "Count the capitals in: Hello World"), which the answer is about, letter by
# letter. A colon followed by a space or a letter ("French:You"), or a full-width colon (the
# usual one in Chinese and Japanese); not one in a time, a URL or a C++ name ("10:30",
# "http://", "std::vector").
_MATERIAL = re.compile(r"(?<!:):(?!:)(?=\s|[^\W\d_])|：")
# One line longer than this is a paste, not a typed question: it is matched as written (NFC,
# outer spaces dropped). This also bounds the literal-span search, whose regular expression
# is quadratic on some inputs (a long run of unclosed quotes).
LONG_LINE_CHARS = 1000
_LETTERS = re.compile(r"[^\W\d_]+")
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*")
_APOSTROPHE = re.compile(r"(?<=\w)’(?=\w)")


@functools.cache
def _exact_form_lists() -> dict[str, list[str]]:
    """``data/exact_form.toml``: the hand-written word lists of the exact form."""
    path = resources.files("boundgate.reuse").joinpath("data/exact_form.toml")
    return {k: list(v) for k, v in tomllib.loads(path.read_text("utf-8")).items()}


@functools.cache
def names() -> frozenset[str]:
    """Names that are no common word, lower case ("france", "spanish", "monday"): the words
    WordNet 3.0 lists only capitalised, ``data/names_wordnet.txt``
    (``training/wordnet_names.py``)."""
    path = resources.files("boundgate.reuse").joinpath("data/names_wordnet.txt")
    lines = path.read_text("utf-8").splitlines()
    return frozenset(w for w in lines if w and not w.startswith("#"))


def _title_case(text: str) -> bool:
    """Whether ``text`` is written in title case, most of its words after the first
    capitalised ("How To Cook Rice"): its capitals then say nothing of which word is meant."""
    cores = [m.group() for m in _LETTERS.finditer(text)][1:]
    if len(cores) < 2:
        return False
    return sum(c[0].isupper() for c in cores) >= 0.6 * len(cores)


@functools.cache
def capitonyms() -> frozenset[str]:
    """Words that are both a common word and a name, lower case ("polish" / "Polish"): from
    WordNet 3.0, ``data/capitonyms_wordnet.txt`` (``training/wordnet_capitonyms.py``), and
    the names of products, companies and languages that are common words ("rust" / "Rust",
    "windows" / "Windows"; ``case_names`` in ``data/exact_form.toml``)."""
    path = resources.files("boundgate.reuse").joinpath("data/capitonyms_wordnet.txt")
    lines = path.read_text("utf-8").splitlines()
    wordnet = {w for w in lines if w and not w.startswith("#")}
    return frozenset(wordnet | set(_exact_form_lists()["case_names"]))


@functools.cache
def form_words() -> tuple[frozenset[str], tuple[str, ...]]:
    """Words and phrases that make a question about its own text's form ("capitalized",
    "how many spaces"; ``form_words`` and ``form_phrases`` in ``data/exact_form.toml``)."""
    lists = _exact_form_lists()
    return frozenset(lists["form_words"]), tuple(f" {p} " for p in lists["form_phrases"])


@functools.cache
def question_openers() -> frozenset[str]:
    """Words a question or a request opens with ("what", "how", "explain"), lower case: in a
    line with code they are still prose (``question_openers`` in ``data/exact_form.toml``)."""
    return frozenset(_exact_form_lists()["question_openers"])


@functools.cache
def unit_symbols() -> frozenset[str]:
    """Units' symbols of up to three letters, lower case ("mm", "kb", "hz"): the keys of the
    guards' ``[units]`` table (``data/english.toml``). After a number their case may be all
    that tells two units apart ("5 Mm" is a megametre, "5 mm" a millimetre)."""
    path = resources.files("boundgate.reuse").joinpath("data/english.toml")
    units = tomllib.loads(path.read_text("utf-8"))["units"]
    return frozenset(u for u in units if len(u) <= 3)


@functools.cache
def abbreviations() -> frozenset[str]:
    """Abbreviations whose dot ends no sentence ("vs", "etc", "dr"; ``data/exact_form.toml``)."""
    return frozenset(_exact_form_lists()["abbreviations"])


def _ends_sentence(word: str) -> bool:
    """Whether ``word`` ends a sentence: it ends in ``.``, ``!``, ``?`` (or a full-width one),
    and is not an abbreviation ("vs.", "e.g.", "U.S.", a single letter's "J.")."""
    if not word or word[-1] not in _SENTENCE_END:
        return False
    if word[-1] != ".":
        return True
    body = word.rstrip(".")
    return not ("." in body or len(body) == 1 or body.lower() in abbreviations())


@functools.cache
def text_operations() -> tuple[frozenset[str], frozenset[str]]:
    """Verbs that make a request act on the text that follows ("reverse", "proofread"), and
    the words that may come before them ("please", "can you"; ``text_operations`` and
    ``text_operation_openers`` in ``data/exact_form.toml``)."""
    lists = _exact_form_lists()
    return frozenset(lists["text_operations"]), frozenset(lists["text_operation_openers"])


def about_form(text: str) -> bool:
    """Whether a text asks about its own letters, case, spaces or punctuation
    (``form_words``: "Is Hello capitalized?", "Does my message end with an exclamation
    mark"), or acts on the text that follows without a colon to mark it
    (``text_operations``: "Reverse the string Hello", "Proofread this sentence i like
    london"): then every character of it counts."""
    words, phrases = form_words()
    found = _LETTERS.findall(text.lower())
    joined = f" {' '.join(found)} "
    if not words.isdisjoint(found) or any(p in joined for p in phrases):
        return True
    colon = _MATERIAL.search(text)
    if colon is not None and text[colon.end() :].strip():
        return False  # "Translate into French: ...": the material after the colon counts
    verbs, openers = text_operations()
    for word in found:
        if word in verbs:
            return True
        if word not in openers:
            return False
    return False


def _prose_word(
    word: str, sentence_start: bool, after_number: bool = False, titled: bool = False
) -> str:
    """A word of prose in its exact form: lower case, unless its case may say which word it
    is. Kept as written: a word with an upper-case letter after its first ("MB" / "Mb", "CO" /
    "Co", "iPhone"), a capitalised word after a sentence's first word but a name that is no
    common word (``names``: "France" / "france", "Spanish" / "spanish" are forgiven; "Bill" /
    "bill", "Will" / "will", "Double" / "double" in Java, "True" / "true" in Python, and a
    word WordNet does not know are not: a trial was served each pair's other answer), a
    capitonym even in a text written in title case ("Polish" / "polish", "Turkey" /
    "turkey", "Rust" / "rust"; ``capitonyms``; the other words of "How To Cook Rice" are
    forgiven), a word of one letter ("Σ" / "σ"), and a unit's symbol right after a number
    wherever it stands ("5 Mm" / "5 mm"; ``unit_symbols``). The pronoun I ("I" / "i") is
    forgiven. ``lower`` rather than ``casefold``: "Maße" is not "Masse"."""
    if any(c.isupper() for c in word[1:]):
        return word
    low = word.lower()
    if low == word:
        return low
    core = _LETTERS.search(low)
    if core is None or core.group() == "i":
        return low
    if after_number and core.group() in unit_symbols():
        return word
    if sentence_start:
        return low
    if len(core.group()) == 1 or core.group() in capitonyms():
        return word
    return low if titled or core.group() in names() else word


def _strip_end(text: str) -> str:
    """Drop trailing spaces, ``?``, ``.`` and a ``!`` of exclamation; a ``!`` after a digit,
    another ``!`` or a one-letter word is a factorial and stays ("5!", "5!!", "n!"), and so
    does a last word made of punctuation alone ("git add .", "the operator ??" / "?."), unless
    it is one ``?``, ``.`` or ``!`` after a space ("What is this ?")."""
    last = text.rstrip(" \t").rsplit(" ", 1)[-1]
    if " " in text.strip() and len(last) > 1 and not any(c.isalnum() for c in last):
        return text.rstrip(" \t")  # an argument or an operator: "ls ..", "??", "?."
    while text:
        if text[-1] == "." and text.rstrip(".")[-1:].isspace():
            return text  # a dot of its own is an argument: "git add ."
        if text[-1] in _TRAILING:
            text = text[:-1]
        elif text[-1] in "!！":
            before = text[:-1]
            if before and (
                before[-1].isdigit()
                or before[-1] == "!"
                or (before[-1].isalpha() and (len(before) == 1 or not before[-2].isalnum()))
            ):
                return text
            text = before
        else:
            return text
    return text


def canonical_query(text: str, *, verbatim: bool = False) -> str:
    """Exact-match form of a question: two questions with the same form share an answer
    without any other check, so only differences that cannot change the answer are removed.

    Unicode NFC (canonical equivalence only: "x²" stays apart from "x2"). A text of several
    lines (code, data, a pasted document; a line break of any kind inside it, ``\\r`` or U+2028
    as well as ``\\n``) keeps every line as written, ``\\r\\n`` read as ``\\n`` and blank outer
    lines dropped: indentation, case and each other break count; so does one line of more than
    ``LONG_LINE_CHARS`` (outer spaces dropped). A text that asks about its own form, its
    letters, case, spaces or punctuation (``form_words``: "Is Hello capitalized?", "How many
    spaces are in a   b?"), is kept as written, outer blank lines or spaces dropped. One line
    of prose: runs of whitespace as one space, words in lower case unless their case may say
    which word they are (``_prose_word``: "Polish" is not "polish", "Rust" is not "rust", "5
    Mm" is not "5 mm", "France" is "france"; a sentence ends at ".", not at "vs." or "e.g."),
    a trailing ``?``, ``.`` or exclamation mark dropped (``_strip_end``; not a last word made
    of punctuation: "the operator ??"). Kept exactly as written: literal spans (``LITERAL``:
    quoted text, code, formulas; a line holding code or a formula keeps its case and spacing
    throughout, and its end when it ends in code: "\\d+?" is not "\\d+") and the material of
    an instruction, everything after its first colon ("Translate into French: You are
    coming?" is not "...coming."; "Count the spaces in: cat    dog"). ``verbatim`` (text
    completions, whose continuation depends on every character and on how it is encoded:
    "é" precomposed or as "e" and an accent are different tokens): the text as it is."""
    if verbatim:
        return text
    text = unicodedata.normalize("NFC", text)
    if _LINE_BREAK.search(text.strip()):
        if about_form(text):  # "does the second line end with spaces?"
            return text.strip("\n")
        # lines keep their ends: two trailing spaces break a Markdown line, a space after a
        # Python continuation "\\" is a SyntaxError (a trial was served each pair's other
        # answer); a line ends at "\n" (or "\r\n") only: str.splitlines() also ends one at
        # U+2028, "\x1c", "\x85" …, which made '{"a": "x\u2028y"}' (valid JSON) the exact
        # form of '{"a": "x\ny"}' (not valid), and the one was served the other's answer
        return text.replace("\r\n", "\n").strip("\n")
    text = text.strip()
    if len(text) > LONG_LINE_CHARS:
        return text
    if about_form(text):  # "Is Hello capitalized?", "How many spaces are in a   b?"
        return text
    material = ""
    colon = _MATERIAL.search(text)
    if colon is not None and text[colon.end() :].strip():
        text, material = text[: colon.start()], text[colon.end() :].lstrip()
    literals = list(LITERAL.finditer(text))
    # a text that holds code or a formula keeps its case and spacing throughout
    code = any(m.group()[0] not in _QUOTES for m in literals)
    titled = _title_case(text)

    def prose(part: str, before: str) -> str:
        if code and not before and part:
            # a line with code keeps its case, but its opening question word is prose
            # ("What is C++?" / "what is C++?"); a first word that may be code stays
            first, sep, rest = part.partition(" ")
            if first.lower() in question_openers() and sep:
                return first.lower() + sep + rest
        if code or not part:
            return part
        prior = before.rstrip().rsplit(" ", 1)[-1]
        start = not before.strip() or _ends_sentence(prior)
        number = _NUMBER.fullmatch(prior) is not None
        out = []
        # a typographic apostrophe in a word is the keyboard's ("What’s" / "What's")
        for w in _APOSTROPHE.sub("'", _SPACE.sub(" ", part)).split(" "):
            out.append(_prose_word(w, start, number, titled))
            if w:
                start = _ends_sentence(w)
                number = _NUMBER.fullmatch(w) is not None
        return " ".join(out)

    out: list[str] = []
    pos = 0
    for m in literals:
        out.append(prose(text[pos : m.start()], text[:pos]))
        out.append(m.group())
        pos = m.end()
    out.append(prose(text[pos:], text[:pos]))
    head = "".join(out).strip()
    if material:
        return f"{head}: {material}"
    if code and literals and literals[-1].end() == len(text):
        return head  # it ends in code: "\\d+?", "print(x)?"
    return _strip_end(head)


def literal_spans(text: str) -> tuple[str, ...]:
    """The literal spans of ``text`` (see ``canonical_query``), in order, as written (NFC)."""
    return tuple(m.group() for m in LITERAL.finditer(unicodedata.normalize("NFC", text)))


@dataclass(frozen=True)
class ReuseKey:
    scope: str  # sha256 hex of the scope
    query: str  # the text matched by meaning (last user message or the prompt)
    exact: str  # sha256 hex of scope + canonical query
    form: str  # that canonical query (``canonical_query``)
    scope_doc: dict[str, Any]  # what the scope hash covers, minus the tenant (for documents)
    max_tokens: int = 0  # the request's completion-token limit (0: none to check)
    verbatim: bool = False  # a text completion's prompt: exact reuse only, every character
    greedy: bool = False  # temperature 0: only an answer decoded greedily could be its own
    # the same request's key in the scope of its ``max_tokens`` class, as scopes were made
    # before the limit left them: answers stored and documents bound then are found there
    legacy: ReuseKey | None = None


def answer_fits(finish_reason: str, completion_tokens: int, max_tokens: int) -> bool:
    """Whether a stored answer is one a request with ``max_tokens`` could have received.

    A complete answer (``stop``) fits any limit above its length: at exactly its length the
    model stops at the limit before it can end by itself, so that request gets the same
    tokens with ``finish_reason`` ``length``, not this answer. An answer cut by its own limit
    (``length``) is what a request gets only at exactly that limit (the same model, greedy
    decoding: the same tokens up to the cut). ``max_tokens`` 0 means no limit to check.
    """
    if max_tokens <= 0:
        return True
    if finish_reason == "length":
        return completion_tokens == max_tokens
    return completion_tokens < max_tokens


def _nothing_to_match(query: str, form: str) -> bool:
    """A question with nothing to match: blank, or only format characters (a byte-order mark,
    a zero-width space: a trial's "\\ufeff\\ufeff" was stored), or one whose exact form
    (``form``, its ``canonical_query``) is empty ("?" and "..." would share one answer). ""
    and " " are not one question, nor any other."""
    return not form or all(c.isspace() or unicodedata.category(c) == "Cf" for c in query)


def reuse_key(
    req: GenerationRequest, *, tenant: str, model_version: str, endpoint: str
) -> ReuseKey | None:
    """The key of a request, or None if it has no single user question to match."""
    if req.messages is not None:
        if not req.messages or req.messages[-1].role != "user":
            return None
        query = req.messages[-1].content
        # every earlier turn, with its participant name and tool calls where given; and the
        # asker's own name (a trial: "What is my name?" from Carol got an answer to no name)
        context = [m.fields() for m in req.messages[:-1]]
        if req.messages[-1].name:
            context.append(["name", req.messages[-1].name])
    else:
        if req.prompt is None:
            return None
        query = req.prompt
        context = []
    verbatim = req.messages is None
    form = canonical_query(query, verbatim=verbatim)
    if _nothing_to_match(query, form):
        return None
    params = {k: v for k, v in sorted(req.passthrough.items()) if _shaping(k, v)}
    greedy = req.temperature == 0
    params.update(
        {
            "stop": sorted(set(req.stop)),
            # greedy decoding takes the likeliest token whatever top_p keeps
            "top_p": 1.0 if greedy else req.top_p,
        }
    )
    if req.logprob_threshold is not None:
        # a rung of model "auto" keeps an answer only if its mean token log-probability
        # passes: a stored answer keeps none, so the rung reuses only what its own check
        # kept (a helper's audit: one stored by a request naming the model was served)
        params["logprob_threshold"] = req.logprob_threshold
    if req.seed is not None and not greedy:
        # a seed fixes the one answer each temperature samples: a greedy answer is not what
        # a seeded request at 0.3 gets (a trial's finding), so both are in the scope; greedy
        # decoding draws nothing for a seed to fix
        params["seed"] = req.seed
        params["temperature"] = req.temperature
    scope_doc: dict[str, Any] = {
        "model": req.model,
        "model_version": model_version,
        "endpoint": endpoint,
        "context_sha256": _sha(_canonical(context)),
        "params": params,
    }
    scope_doc = _jcs_safe(scope_doc)  # as documents will carry it (signed in JCS)
    old_params = {**params, "max_tokens_class": max_tokens_class(req.max_tokens)}
    old_doc = _jcs_safe({**scope_doc, "params": old_params})
    old_scope = scope_hash(tenant, old_doc)
    legacy = ReuseKey(
        old_scope,
        query,
        _exact_of(old_scope, form),
        form,
        old_doc,
        req.max_tokens,
        verbatim,
        greedy,
    )
    scope = scope_hash(tenant, scope_doc)
    exact = _exact_of(scope, form)
    return ReuseKey(
        scope, query, exact, form, scope_doc, req.max_tokens, verbatim, greedy=greedy, legacy=legacy
    )


def verbatim_scope(scope_doc: dict[str, Any]) -> bool:
    """Whether the questions of a scope (its ``scope_doc``, as stored or in a document) are
    text completions' prompts, matched exactly only (``ReuseKey.verbatim``)."""
    return scope_doc.get("endpoint") == "/v1/completions"


def scope_hash(tenant: str, scope_doc: dict[str, Any]) -> str:
    return _sha(_canonical({"tenant": tenant, **scope_doc}))


def exact_hash(scope: str, query: str, *, verbatim: bool = False) -> str:
    """The exact key: SHA-256 hex of the scope and the question's ``canonical_query``."""
    return _exact_of(scope, canonical_query(query, verbatim=verbatim))


def _exact_of(scope: str, form: str) -> str:
    return _sha(scope + "\n" + form)
