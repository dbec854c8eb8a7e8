"""Pair scoring: the probability that two questions ask the same thing.

The embedder retrieves candidates by cosine similarity of independently embedded questions;
a *cross-encoder* reads both questions together and sees what a vector average blurs: a
swapped antonym, a dropped "not", another number or name. boundgate ships one it trained
itself (``training/pair_model.py``; its card is ``pair_model/MODEL_CARD.md``): all-MiniLM-L6-v2
fine-tuned on Quora question pairs plus rule-made hard negatives, exported to ONNX and
quantized to int8 (onnxruntime dynamic quantization). Only candidates that survive retrieval
and the guards are scored, so only would-be hits pay for it.

``PairScorer`` is the seam; ``OnnxPairScorer`` is the real one, ``FakePairScorer`` a
deterministic stand-in for tests.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .embedder import MAX_TOKENS, cpu_session
from .guards.lexicon import (
    acronyms_spelled,
    lead_in_dropped,
    nouns,
    self_described,
    spelled_out,
)

if TYPE_CHECKING:
    from spellchecker import SpellChecker

Scores = npt.NDArray[np.float32]
Pair = tuple[str, str]


def packaged_model_dir() -> Path:
    """The directory of the shipped pair model (``boundgate/reuse/pair_model``).

    Raises ``FileNotFoundError`` when the model file is missing (a checkout without it)."""
    path = Path(str(resources.files("boundgate.reuse").joinpath("pair_model")))
    if not (path / "model.int8.onnx").is_file():
        raise FileNotFoundError(f"pair model not found in {path} (run `make pair-model`)")
    return path


class PairScorer(ABC):
    """(question a, question b) → probability in [0, 1] that they ask the same thing.

    ``name`` identifies the model (and its version) in stats and the ledger. The score must
    not depend on the order of the two questions more than the model's own noise."""

    name: str

    @abstractmethod
    def score_pairs(self, pairs: Sequence[Pair]) -> Scores:
        """One float32 per pair, each in [0, 1]."""

    def score(self, a: str, b: str) -> float:
        return float(self.score_pairs([(a, b)])[0])


# Every pair the gateway scores is read whole: the embedder reads at most MAX_TOKENS of each
# question (special tokens included) and a longer question is never a semantic candidate, so
# a pair is at most 2 · (MAX_TOKENS − 2) + 3 ≤ 2 · MAX_TOKENS tokens. The model was trained on
# pairs cut to ``config.json``'s max_length (96); cut the same way when serving, two long
# prompts that differ only after their first ~47 tokens each looked identical to it.
SERVING_MAX_TOKENS = 2 * MAX_TOKENS

# The ensemble's cascade (``OnnxPairScorer``): every score at or above ``exact_from`` is the
# mean of all the members' readings. The members are read in turn, and the next one is read
# unless the mean could not reach it even if every reading still unread said 1: with two
# members and 0.895, the second is read when the first scores ≥ 0.79 ((0.79 + 1) / 2). An
# ensemble's ``config.json`` sets its own ``exact_from``, at or below the threshold its prior
# starts a fresh verifier at (calibration.json, δ = 1 %), so what a fresh gateway serves is
# decided on the whole ensemble; a candidate further off costs one member. Lower scores are
# the mean of what was read. The shipped a, d read both from 0.75 (the prior starts at about
# 0.87); this default is the earlier a, b's (its prior started at 0.895).
EXACT_FROM = 0.895


def reads_further(read: Sequence[float], unread: int, exact_from: float = EXACT_FROM) -> bool:
    """Whether the cascade reads on after the probabilities ``read`` so far with ``unread``
    readings left: whether a mean of ``exact_from`` or more is still possible."""
    return bool((sum(read) + unread) / (len(read) + unread) >= exact_from)


def read_as(text: str) -> str:
    """A question as the pair model reads it: a lead-in that only announces the question
    dropped ("quick question, …": ``lead_in_dropped``), short forms written out
    (``spelled_out``) and a "X here, …" lead-in as "as a X, …" (``self_described``). All are
    meaning-preserving rewrites of forms the model scored apart from their usual wording."""
    return spelled_out(self_described(lead_in_dropped(text)))


# a word as the typo reader sees it: letters only, before a possessive "'s" too ("cheif's"
# is "cheif"); a contraction is none ("didn't" is three words, none mended)
_WORD = re.compile(r"(?<!['’])\b[A-Za-z]+\b(?=['’]s\b|(?!['’]))")


@functools.cache
def english() -> SpellChecker:
    """pyspellchecker's English word list (about 160,000 words with their inflections, built
    from OpenSubtitles 2018 word counts with its low-count misspellings cleaned out; MIT),
    read once (about 0.15 s, 37 MB resident)."""
    from spellchecker import SpellChecker

    return SpellChecker(language="en", distance=1)


def typos_matched(a: str, b: str, known: Callable[[str], bool]) -> tuple[str, str]:
    """``a`` and ``b`` with each side's misspelt words written as the other side's word they
    misspell: a word of four letters or more that ``known`` does not know, written one edit
    (a letter inserted, dropped, changed, or two neighbours swapped: Damerau's four errors)
    from exactly one known word of the other side with the same first letter ("are lab
    grown dimonds real" / "are lab-grown diamonds real?" reads "diamonds"; "a cheif's knife"
    reads "chef's"). A name (capitalised after the first word) and the words of a
    contraction ("didn't") are kept as typed.

    The duplicate-question model reads a misspelt word as word pieces it never learnt and
    scored such paraphrases 0.02-0.22 (a trial's "dimonds", "finsh", "perfum", "mountian");
    in a pair, a non-word one keystroke from a word of the other question is that word
    (Damerau 1964: most misspellings are one such error). Only the pair model reads the
    mended words; the guards and the exact form read the questions as typed."""

    def mended(text: str, other: str) -> str:
        words = {w.casefold() for w in _WORD.findall(other) if known(w)}

        def mend(m: re.Match[str]) -> str:
            word = m.group(0)
            if len(word) < 4 or known(word) or (m.start() > 0 and word[:1].isupper()):
                return word
            low = word.casefold()
            near = {w for w in words & english().edit_distance_1(low) if w[0] == low[0]}
            return near.pop() if len(near) == 1 else word

        return _WORD.sub(mend, text)

    return mended(a, b), mended(b, a)


_CLOSING = re.compile(r"[?.!\s]+$")


def read_alike(a: str, b: str) -> bool:
    """Whether two questions, as the pair model reads them (``OnnxPairScorer.read_pair``),
    are the same text: equal once case-folded, their spaces collapsed and their closing
    "?", "." or "!" aside (the model is trained to read no meaning in the closing mark,
    ``--style-noise``). Such a pair differed only where the reading spells out a short
    form or an acronym, drops a lead-in or mends a misspelling, and the model scored some
    as low as 0.03: of the 157 labelled pairs that read alike (bench/RESULTS.md, the
    forty-ninth session), 155 are paraphrases, the other two Quora pairs of a word and its
    misspelling labelled as different ("brust" / "burst"), and the model put 19 of the
    paraphrases below the fresh gateway's threshold; 15 of those read alike before any
    misspelling is mended, which is when ``OnnxPairScorer`` trusts the reading ("convert 5
    ft to cm" / "Convert 5 feet to centimeters" 0.06, "How many oz are in a lb?" / "How
    many ounces are in a pound?" 0.12, "…home's FMV…" / "…home's fair market value…"
    0.52)."""

    def plain(text: str) -> str:
        return " ".join(_CLOSING.sub("", text.casefold()).split())

    return plain(a) == plain(b)


class OnnxPairScorer(PairScorer):
    """The shipped int8 cross-encoder on onnxruntime (CPU), tokenized with the ``tokenizers``
    WordPiece tokenizer saved beside it. Thread-safe (one session, one lock).

    Pairs are read up to ``SERVING_MAX_TOKENS`` (the whole of any two questions the embedder
    reads whole; longer ones are cut longest side first). Each pair is scored in both orders
    and the two probabilities are averaged, so the score is symmetric (the model was trained
    on both orders; this removes the rest of the asymmetry). With several members
    (``config.json``'s ``members``, model files trained alike) the score is every member's
    probability in both orders averaged, read as a cascade: the members in turn, stopping
    once no readings of the others could bring the mean to ``exact_from`` (``config.json``'s,
    else ``EXACT_FROM``; then the mean of those read is the score; ``reads_further``). So every
    score of ``exact_from`` or more is the whole ensemble's, and a candidate further off costs
    one member. Each pair is scored on its own, so its score never depends on the other
    candidates of a lookup. A pair whose two sides read alike (``read_alike``) once short
    forms, lead-ins and acronyms are read scores 1.0 without a model run; one read alike only
    once a misspelling is mended is the model's to score (the mender reads an unknown real
    word as the other side's: "nuxt" / "next", "deno" / "demo", a re-check).
    Cost (bench/pair_model.py, 2 cores, the shipped a, d, an idle machine): p50 4.6 ms for a
    candidate one member reads, 7.9 ms for one both read (from 0.75: 34.7 % of the measured
    candidates), 5.6 ms as served, 1.34 times embedding one question; the process grows by
    63 MB (bench/RESULTS.md, fifty-fourth session)."""

    def __init__(self, model_dir: Path | None = None, threads: int = 1) -> None:
        from tokenizers import Tokenizer

        model_dir = model_dir or packaged_model_dir()
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self.trained_max_length = int(config["max_length"])
        self.max_length = max(self.trained_max_length, SERVING_MAX_TOKENS)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length, strategy="longest_first")
        self.tokenizer.no_padding()
        # an ensemble: several models trained alike (other seeds, other rewrites) on the same
        # tokenizer, each read as one is; one model unless config.json lists its members
        members = [str(m) for m in config.get("members", ["model.int8.onnx"])]
        self.sessions = [cpu_session(model_dir / m, threads) for m in members]
        # every score at or above this is the mean of all members' readings (the cascade)
        self.exact_from = float(config.get("exact_from", EXACT_FROM))
        digest = hashlib.sha256()
        for m in members:  # one member: its file's digest, as before ensembles
            digest.update((model_dir / m).read_bytes())
        self.name = f"boundgate-pair-minilm-int8@{digest.hexdigest()[:12]}"
        self._lock = threading.Lock()
        # the words this model has one token for (its WordPiece vocabulary's whole words)
        self._vocabulary = frozenset(
            w for w in self.tokenizer.get_vocab() if w.isalpha() and w.isascii()
        )
        english()  # the word list the typo reader knows words by: read with the model

    def score_pairs(self, pairs: Sequence[Pair]) -> Scores:
        # One run per pair, its two orders together (the same tokens: no padding). The int8
        # model quantizes its activations dynamically, one scale per input tensor
        # (DynamicQuantizeLinear), so a pair scored in one batch with others got a score that
        # depended on them: up to 0.26 apart on quora_val (p95 0.06), which moved pairs
        # across the serving threshold from one lookup to the next (a trial). Scored alone,
        # a pair's score is a function of the pair; the cost per candidate is unchanged
        # (bench/RESULTS.md).
        out = np.zeros(len(pairs), dtype=np.float32)
        for i, (a, b) in enumerate(pairs):
            alike, (a, b) = self._read_pair(a, b)
            if alike:
                out[i] = 1.0  # one question as the model reads it: no model to run
                continue
            probs: list[float] = []
            for m, session in enumerate(self.sessions):
                unread = 2 * (len(self.sessions) - m)
                if probs and not reads_further(probs, unread, self.exact_from):
                    break
                probs += self._read(session, a, b)
            out[i] = float(np.mean(probs))
        return out

    def readings(self, a: str, b: str) -> npt.NDArray[np.float64]:
        """Every member's probability that ``a`` and ``b`` ask the same thing, read (a, b) and
        (b, a), as ``score_pairs`` reads them but without its cascade: shape (members, 2).
        For benchmarks and calibration, which compare the ways of combining them."""
        alike, (a, b) = self._read_pair(a, b)
        if alike:
            return np.ones((len(self.sessions), 2))
        return np.asarray([self._read(session, a, b) for session in self.sessions])

    def read_pair(self, a: str, b: str) -> Pair:
        """The two questions as the model reads them: each ``read_as``, then each side's
        acronyms of the other's words spelled as them (``acronyms_spelled``) and its
        misspellings of the other's words mended (``typos_matched``; what counts as a word:
        ``known``)."""
        return self._read_pair(a, b)[1]

    def _read_pair(self, a: str, b: str) -> tuple[bool, Pair]:
        """(whether the two read alike before any misspelling is mended, ``read_pair``)."""
        a, b = acronyms_spelled(read_as(a), read_as(b))
        return read_alike(a, b), typos_matched(a, b, self.known)

    def known(self, word: str) -> bool:
        """Whether ``word`` is a word: in pyspellchecker's English list (``english``), one
        token of this model's vocabulary, or a WordNet 3.0 noun."""
        low = word.casefold()
        return low in english() or low in self._vocabulary or low in nouns().rows

    def _read(self, session: Any, a: str, b: str) -> list[float]:
        """One member's probabilities of (a, b) and (b, a): one run of the two orders (the
        same tokens, so no padding)."""
        encs = self.tokenizer.encode_batch([(a, b), (b, a)])
        feeds: dict[str, Any] = {
            "input_ids": np.asarray([e.ids for e in encs], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in encs], dtype=np.int64),
            "token_type_ids": np.asarray([e.type_ids for e in encs], dtype=np.int64),
        }
        with self._lock:
            logits = np.asarray(session.run(None, feeds)[0][:, 0], dtype=np.float64)
        return [float(x) for x in 1.0 / (1.0 + np.exp(-logits))]


class FakePairScorer(PairScorer):
    """A deterministic pair scorer for tests: ``rule(a, b)`` gives the score; by default the
    share of shared lower-case words (Jaccard), which is 1.0 for identical word sets."""

    name = "fake-pair"

    def __init__(self, rule: Callable[[str, str], float] | None = None) -> None:
        self.rule = rule or _jaccard
        self.calls = 0

    def score_pairs(self, pairs: Sequence[Pair]) -> Scores:
        self.calls += len(pairs)
        return np.array([self.rule(a, b) for a, b in pairs], dtype=np.float32)


def _jaccard(a: str, b: str) -> float:
    wa, wb = set(a.lower().split()), set(b.lower().split())
    return len(wa & wb) / max(1, len(wa | wb))
