"""Labelled question pairs and the figures reported on them, shared by the training scripts
and the benchmarks (``bench/pair_model.py``, ``bench/label_review.py``,
``bench/reuse_quality.py`` put this folder on their path).

Needs only numpy (``without_near_copies`` also boundgate's embedder); never imported by the
serving package.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def flipped(q: str) -> str:
    """``q`` with its closing punctuation flipped: a closing "?", "." or "!" stripped, else a
    "?" appended (the training's ``--style-noise``, ``bench/pair_endings.py``'s random endings
    and ``bench/reuse_quality.py --flip-endings``)."""
    s = q.rstrip()
    bare = s.rstrip("?.!").rstrip()
    return bare if bare != s else s + "?"


def read_pairs(path: Path, skip_trials: Iterable[str] = ()) -> list[tuple[str, str, int]]:
    """A CSV's ``(question1, question2, is_duplicate)``; rows whose ``trial`` is one of
    ``skip_trials`` left out (``bench/data/trials_dev.csv``'s blind trials held out of
    training)."""
    skip = set(skip_trials)
    with path.open(encoding="utf-8", newline="") as f:
        return [
            (r["question1"], r["question2"], int(r["is_duplicate"]))
            for r in csv.DictReader(f)
            if not skip or r.get("trial") not in skip
        ]


def read_dev_pairs(path: Path, label: int) -> list[tuple[str, str, int]]:
    """The pairs of a chatbot development set (``tests/data/paraphrases_dev.tsv``: question,
    paraphrase, optional mark; ``tests/data/different_dev.tsv``: kind, question, look-alike,
    optional mark), all labelled ``label``. Tab-separated, ``#`` comment lines."""
    cols = slice(0, 2) if label == 1 else slice(1, 3)
    with path.open(encoding="utf-8", newline="") as fh:
        rows = csv.reader((line for line in fh if not line.startswith("#")), delimiter="\t")
        return [(r[cols][0], r[cols][1], label) for r in rows if len(r) >= cols.stop]


def read_labelled_tsv(path: Path) -> list[tuple[str, str, int]]:
    """A tab-separated labelled set with a header ``question1, question2, label, kind``
    (``label`` ``same``/``opposite``/``different``): ``(question1, question2, 1 if same
    else 0)``; ``#`` comment lines skipped (``training/data/chat_pairs_*.tsv``,
    ``bench/data/opposites_heldout.tsv``)."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")
        return [(r["question1"], r["question2"], int(r["label"] == "same")) for r in rows]


ROOT = Path(__file__).resolve().parent.parent
DEV_SETS = ROOT / "tests" / "data"


def _plain(q: str) -> str:
    return " ".join(q.lower().strip(" ?.!").split())


def evaluation_questions(val: Path) -> set[str]:
    """Every question of the sets the project measures or calibrates on, read as
    ``dev_questions`` reads them: ``val`` (quora_val.csv), the hand-written contradictions
    (``tests/data/contradictions*.tsv``), GPTCache's mock data beside ``val`` if present, and
    ``bench/data/chat_heldout.csv``, ``chat_heldout2.csv`` and ``opposites_heldout.tsv``.
    Training data must share none of them."""
    out: set[str] = set()
    held = ROOT / "bench" / "data"
    for path in (val, held / "chat_heldout.csv", held / "chat_heldout2.csv"):
        out |= {_plain(q) for a, b, _ in read_pairs(path) for q in (a, b)}
    opposites = ROOT / "bench" / "data" / "opposites_heldout.tsv"
    out |= {_plain(q) for a, b, _ in read_labelled_tsv(opposites) for q in (a, b)}
    for path in sorted(DEV_SETS.glob("contradictions*.tsv")):
        with path.open(encoding="utf-8", newline="") as fh:
            rows = csv.reader((line for line in fh if not line.startswith("#")), delimiter="\t")
            out |= {_plain(q) for r in rows for q in r[:2]}
    mock = val.parent / "gptcache_mock_data.json"
    if mock.exists():
        items = json.loads(mock.read_text(encoding="utf-8"))
        out |= {_plain(i[k]) for i in items for k in ("origin", "similar")}
    return out


def without_questions(
    pairs: list[tuple[str, str, int]], questions: set[str]
) -> list[tuple[str, str, int]]:
    """``pairs`` without those with a question of ``questions`` (read as ``_plain`` reads)."""
    return [p for p in pairs if _plain(p[0]) not in questions and _plain(p[1]) not in questions]


NEAR_COPY_COSINE = 0.9


def without_near_copies(
    pairs: list[tuple[str, str, int]], questions: set[str], cosine: float = NEAR_COPY_COSINE
) -> list[tuple[str, str, int]]:
    """``pairs`` without those with a question whose MiniLM embedding (boundgate's shipped
    embedder) has cosine >= ``cosine`` with one of ``questions``: the same question reworded
    by a word, a typo or its order ("how many seconds in a day" / "number of seconds in one
    day"), which ``without_questions`` lets through. Helpers writing chatbot pairs pick the
    popular questions an evaluation set's author picks too; a model trained on their near-copies
    would be measured on its training data."""
    from boundgate.reuse.embedder import OnnxEmbedder

    if not pairs or not questions:
        return list(pairs)
    embedder = OnnxEmbedder(threads=2)
    mine = np.asarray(embedder.embed([q for a, b, _ in pairs for q in (a, b)]), np.float32)
    near = near_copies(mine, questions, cosine)
    return [p for p, a, b in zip(pairs, near[0::2], near[1::2], strict=True) if not (a or b)]


def near_copies(
    vectors: np.ndarray, questions: set[str], cosine: float = NEAR_COPY_COSINE
) -> np.ndarray:
    """For each row of ``vectors`` (MiniLM unit vectors, boundgate's shipped embedder: shape
    (n, 384)), whether its cosine with one of ``questions`` is >= ``cosine``: a bool array of
    shape (n,) (``without_near_copies``; ``training/teacher.py`` passes the vectors it
    holds)."""
    from boundgate.reuse.embedder import OnnxEmbedder

    held = np.asarray(OnnxEmbedder(threads=2).embed(sorted(questions)), np.float32)
    best = np.concatenate(
        [(vectors[i : i + 1024] @ held.T).max(axis=1) for i in range(0, len(vectors), 1024)]
    )
    return np.asarray(best >= cosine)


def training_chat_pairs(pairs: list[tuple[str, str, int]], val: Path) -> list[tuple[str, str, int]]:
    """``pairs`` (labelled chatbot pairs) fit to train on: none with a question of an
    evaluation set (``evaluation_questions``) or a near-copy of one (``without_near_copies``)."""
    held_out = evaluation_questions(val)
    return without_near_copies(without_questions(pairs, held_out), held_out)


def chatbot_development_pairs(names: Iterable[str] = "abcde") -> list[tuple[str, str, int]]:
    """Every labelled chatbot development pair, unfiltered: ``tests/data/paraphrases_dev.tsv``
    (same), ``different_dev.tsv`` (different) and ``training/data/chat_pairs_{name}.tsv`` for
    each of ``names`` (the shipped recipe's sets A–E by default). Filter with
    ``training_chat_pairs`` before training on them."""
    every = read_dev_pairs(DEV_SETS / "paraphrases_dev.tsv", 1)
    every += read_dev_pairs(DEV_SETS / "different_dev.tsv", 0)
    for name in names:
        every += read_labelled_tsv(ROOT / "training" / "data" / f"chat_pairs_{name}.tsv")
    return every


def question_id(q: str) -> str:
    """A question's id in ``training/data/teacher_targets.tsv.gz``: the first 12 hex digits of
    the SHA-1 of its UTF-8 text (the file names training questions without holding them)."""
    return hashlib.sha1(q.encode("utf-8")).hexdigest()[:12]


def pairs_digest(pairs: Iterable[tuple[str, str, int]]) -> str:
    """SHA-256 of labelled pairs as read (question1, question2, label per line): which
    quora_train.csv a teacher-targets file's row numbers refer to."""
    h = hashlib.sha256()
    for a, b, y in pairs:
        h.update(f"{a}\t{b}\t{y}\n".encode())
    return h.hexdigest()


def write_targets(
    path: Path,
    train: list[tuple[str, str, int]],
    train_probs: Iterable[float],
    mined: list[tuple[str, str, float]],
    comments: Iterable[str] = (),
) -> None:
    """Write a teacher's soft labels compactly (gzip, tab-separated; ``training/teacher.py``):
    ``#`` comment lines, ``# quora_train <pairs_digest>``, a header ``kind, a, b, teacher``,
    one ``train`` row per pair of ``train`` (``a`` its row number, probability in
    ``train_probs``' order) and one ``mined`` row per mined pair (``a``, ``b`` the questions'
    ``question_id``). No question text: the training sets hold it. Probabilities to 4
    decimals; no name or time in the gzip header, so the same targets give the same bytes."""
    with path.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        lines = [f"# {c}" for c in comments]
        lines += [f"# quora_train {pairs_digest(train)}", "kind\ta\tb\tteacher"]
        lines += [f"train\t{i}\t\t{p:.4f}" for i, p in enumerate(train_probs)]
        lines += [f"mined\t{question_id(a)}\t{question_id(b)}\t{p:.4f}" for a, b, p in mined]
        gz.write(("\n".join(lines) + "\n").encode("utf-8"))


def read_targets(
    path: Path, train: list[tuple[str, str, int]], questions: Iterable[str]
) -> tuple[list[float], list[tuple[str, str, float]]]:
    """A teacher-targets file (``write_targets``) read against the training data it was made
    from: (the teacher's probability for each pair of ``train``, in order; the mined pairs as
    (question1, question2, probability)). ``questions``: every text a mined pair may name
    (quora_train's and the chatbot sets'). Raises ``ValueError`` when ``train`` is not the
    quora_train.csv the file was written for, a train row is missing, or a mined pair names a
    question not in ``questions`` (or an id two of them share)."""
    by_id: dict[str, str | None] = {}
    for q in questions:
        qid = question_id(q)
        by_id[qid] = q if by_id.get(qid, q) == q else None
    probs: list[float | None] = [None] * len(train)
    mined: list[tuple[str, str, float]] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    digests = [line.split()[2] for line in lines if line.startswith("# quora_train ")]
    if digests != [pairs_digest(train)]:
        raise ValueError(f"{path}: written for another quora_train.csv")
    rows = csv.DictReader((line for line in lines if not line.startswith("#")), delimiter="\t")
    for r in rows:
        p = float(r["teacher"])
        if r["kind"] == "train":
            probs[int(r["a"])] = p
            continue
        a, b = by_id.get(r["a"]), by_id.get(r["b"])
        if a is None or b is None:
            raise ValueError(f"{path}: mined pair {r['a']}, {r['b']} names no known question")
        mined.append((a, b, p))
    if any(p is None for p in probs):
        raise ValueError(f"{path}: not every quora_train pair has a teacher probability")
    return [float(p) for p in probs if p is not None], mined


def figures(scores: np.ndarray, labels: np.ndarray, wrong_share: float = 0.01) -> dict[str, float]:
    """AUC, average precision, and the recall of duplicates at the lowest threshold where the
    non-duplicates at or above it are <= ``wrong_share`` of all pairs (chosen in hindsight),
    with that threshold."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    pos, neg = y.sum(), len(y) - y.sum()
    tp = np.cumsum(y)
    fp = np.cumsum(1 - y)
    # only cut between distinct scores
    last = np.r_[s[1:] != s[:-1], True]
    tp_c, fp_c = tp[last], fp[last]
    ok = fp_c <= wrong_share * len(y)
    recall = float(tp_c[ok].max() / pos) if ok.any() else 0.0
    thr = float(s[last][ok][np.argmax(tp_c[ok])]) if ok.any() else float("inf")
    # AUC by ranks (ties averaged)
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores, kind="stable")] = np.arange(1, len(scores) + 1)
    _, inv, counts = np.unique(scores, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    auc = float((ranks[labels == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))
    precision = tp / np.arange(1, len(y) + 1)
    ap = float((precision * y).sum() / pos)
    return {"auc": auc, "ap": ap, "recall_at_1pct_wrong": recall, "threshold": thr}


def read_review(path: Path) -> set[tuple[str, str]]:
    """The (question1, question2) pairs of a label review file (``bench/data/``): tab-separated,
    ``#`` comment lines, a header row."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = csv.DictReader((line for line in fh if not line.startswith("#")), delimiter="\t")
        return {(r["question1"], r["question2"]) for r in rows}


class Components:
    """Union-find over questions: duplicate pairs share a meaning, transitively."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str, int]]) -> Components:
        """Every question of ``pairs``, with each duplicate pair joined."""
        comp = cls()
        for q1, q2, dup in pairs:
            comp.find(q1)
            comp.find(q2)
            if dup:
                comp.union(q1, q2)
        return comp
