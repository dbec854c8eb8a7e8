"""The real ``TaskClassifier``: a softmax-linear layer over the gateway's own embedding.

A prompt's MiniLM vector (``reuse.embedder.OnnxEmbedder``, 384-d, unit length) goes through
one linear layer per task and a softmax: ``p = softmax(W·x + b)``. ``W`` and ``b`` are
package data (``data/task_classifier.json``), written by ``training/task_classifier.py``
(multinomial logistic regression on the training part of ``data/task_prompts.jsonl``; its
accuracy is recorded in that file, the methods it was measured against in bench/RESULTS.md).
Serving needs numpy only; the layer costs a tenth of a millisecond beside the embedding's
milliseconds, and a caller that already holds the prompt's vector can pass it to
``classify_vector`` and pay nothing more (the reuse lookup embeds the last message; for a
prompt that ``fits`` the embedder's window that vector is the one ``classify`` would make).

The weights only mean something in the vector space they were trained in: the file names its
embedder, and a classifier over another one is refused.

A prompt longer than the embedder's input window (128 WordPiece tokens) would be read by its
start only; an instruction put after a pasted text ("… summarise the above") would be lost.
Such a prompt is classified on its head and its tail joined, where an instruction stands.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from boundgate.reuse.embedder import Embedder, Vectors
from boundgate.routing.tasks import Task, TaskClassifier, TaskPrediction

WEIGHTS_FILE = "data/task_classifier.json"
FORMAT = 1
# a long prompt is read as its first and last this many characters: about a sentence each,
# where an instruction usually stands (bench/task_classes.py measured 80, 120 and 200 on long
# prompts: the shorter, the less the pasted text drowns the instruction)
HEAD_TAIL_CHARS = 80


@dataclass(frozen=True)
class LinearTaskModel:
    """Weights of ``p = softmax(weights @ x + bias)`` over ``tasks`` (rows in that order)."""

    tasks: tuple[Task, ...]
    weights: npt.NDArray[np.float64]  # (len(tasks), dim)
    bias: npt.NDArray[np.float64]  # (len(tasks),)
    embedder: str  # the embedder's name the weights were trained on
    version: str  # the first 12 hex digits of the file's SHA-256
    meta: dict[str, Any]

    @classmethod
    def from_bytes(cls, raw: bytes) -> LinearTaskModel:
        """Parse a weights file; ``ValueError`` if its format, shapes or tasks are wrong."""
        doc = json.loads(raw)
        if doc.get("format") != FORMAT:
            raise ValueError(f"task classifier file format {doc.get('format')!r}, want {FORMAT}")
        tasks = tuple(Task(t) for t in doc["tasks"])
        weights = np.asarray(doc["weights"], dtype=np.float64)
        bias = np.asarray(doc["bias"], dtype=np.float64)
        if weights.shape != (len(tasks), doc["dim"]) or bias.shape != (len(tasks),):
            raise ValueError(f"task classifier weights {weights.shape}, bias {bias.shape}")
        if set(tasks) != set(Task):
            raise ValueError(f"task classifier covers {sorted(tasks)}, not every Task")
        meta = {k: v for k, v in doc.items() if k not in ("weights", "bias")}
        version = hashlib.sha256(raw).hexdigest()[:12]
        return cls(tasks, weights, bias, str(doc["embedder"]), version, meta)

    @classmethod
    def load(cls, path: Path) -> LinearTaskModel:
        return cls.from_bytes(path.read_bytes())

    @classmethod
    def packaged(cls) -> LinearTaskModel:
        raw = resources.files("boundgate.routing").joinpath(WEIGHTS_FILE).read_bytes()
        return cls.from_bytes(raw)

    def probabilities(self, vectors: Vectors) -> npt.NDArray[np.float64]:
        """``vectors`` (n, dim) → task probabilities (n, len(tasks)), columns in ``tasks``
        order, each row summing to 1."""
        logits = np.asarray(vectors, dtype=np.float64) @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))


def window_text(text: str, embedder: Embedder, chars: int = HEAD_TAIL_CHARS) -> str:
    """``text`` itself when the embedder reads all of it, else its first and last ``chars``
    characters joined."""
    if embedder.fits(text):
        return text
    return f"{text[:chars]} … {text[-chars:]}"


class EmbeddingTaskClassifier(TaskClassifier):
    """The shipped linear model over ``embedder``'s vectors. Thread-safe as the embedder is.

    Raises ``ValueError`` when ``embedder.name`` is not the embedder the weights were trained
    on (their vectors would mean nothing to the layer)."""

    def __init__(self, embedder: Embedder, model: LinearTaskModel | None = None) -> None:
        model = model or LinearTaskModel.packaged()
        if embedder.name != model.embedder:
            raise ValueError(
                f"the task classifier was trained on {model.embedder} vectors, "
                f"not {embedder.name}'s"
            )
        self.embedder = embedder
        self.model = model
        self.name = f"task-linear@{model.version}"

    def classify(self, text: str) -> TaskPrediction:
        return self.classify_vector(self.embedder.embed([window_text(text, self.embedder)])[0])

    def classify_many(self, texts: Sequence[str]) -> list[TaskPrediction]:
        """One prediction per text, embedded in batches."""
        vectors = self.embedder.embed([window_text(t, self.embedder) for t in texts])
        return [self._prediction(row) for row in self.model.probabilities(vectors)]

    def classify_vector(self, vector: Vectors) -> TaskPrediction:
        """The task of a prompt whose vector (this embedder's) the caller already has."""
        return self._prediction(self.model.probabilities(np.atleast_2d(vector))[0])

    def _prediction(self, row: npt.NDArray[np.float64]) -> TaskPrediction:
        best = int(np.argmax(row))
        probabilities = {task: float(p) for task, p in zip(self.model.tasks, row, strict=True)}
        return TaskPrediction(self.model.tasks[best], float(row[best]), probabilities)


def load_task_classifier(embedder: Embedder | None = None) -> EmbeddingTaskClassifier:
    """The shipped classifier over ``embedder`` (default: a new ``OnnxEmbedder``; pass the
    gateway's own to share its session)."""
    if embedder is None:
        from boundgate.reuse.embedder import OnnxEmbedder

        embedder = OnnxEmbedder()
    return EmbeddingTaskClassifier(embedder)
