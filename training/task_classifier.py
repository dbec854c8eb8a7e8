"""Train the task classifier shipped in ``src/boundgate/routing/data/task_classifier.json``.

Every prompt of ``routing/data/task_prompts.jsonl`` is embedded with the gateway's own
embedder (``OnnxEmbedder``: all-MiniLM-L6-v2 int8, 384-d, unit vectors). Four methods are
measured side by side, each with its one knob chosen by stratified 5-fold cross-validation on
the training part only (folds seeded), then fitted on the whole training part and measured
once on the held-out part (a knob value is chosen by the one-standard-error rule, ``choose``:
of the values whose cross-validated accuracy is within one standard error of the best, the
one with the lowest cross-validated log-loss):

- ``logistic``: multinomial logistic regression, L2 penalty ``lam`` (mean cross-entropy +
  lam/2·‖W‖², bias unpenalised) on standardised features, full-batch accelerated gradient
  descent from zeros;
- ``centroid``: the nearest task centroid by cosine; probabilities softmax(τ·cos) (τ changes
  no decision, only the probabilities);
- ``knn``: the k nearest training prompts by cosine, votes weighted by similarity;
- ``keyword``: hand-written word rules in a fixed order, no vectors (written once, before any
  result was seen; the same person wrote the prompts, which flatters it).

The shipped model must be a softmax-linear layer (``LinearTaskModel``), which ``logistic``
and ``centroid`` are; of these the one with the higher held-out accuracy (then the lower
held-out log-loss) is written, trained on the training part only so that the held-out
numbers stay honest. Everything is deterministic: the same prompts, seed and embedder give
the same file, byte for byte.

    python training/task_classifier.py            # measure, print, write the weights
    python training/task_classifier.py --dry-run  # measure and print only

Needs only the serving package and numpy (one to two minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# one BLAS thread: faster for these small matrices on a busy machine, and the same summation
# order on every run
if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from boundgate.routing.classifier import FORMAT, WEIGHTS_FILE  # noqa: E402
from boundgate.routing.prompts import SPLIT_SEED, LabelledPrompt, prompts_bytes  # noqa: E402
from boundgate.routing.tasks import Task  # noqa: E402

TASKS: tuple[Task, ...] = tuple(Task)
OUT = ROOT / "src" / "boundgate" / "routing" / WEIGHTS_FILE
Floats = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]

LAMBDAS = (1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3)
TAUS = (5.0, 10.0, 20.0, 30.0, 50.0)
KS = (1, 3, 5, 9, 15, 21, 31)
FOLDS = 5


class Method(Protocol):
    name: str

    def fit(self, x: Floats, y: Labels) -> None: ...

    def proba(self, x: Floats) -> Floats: ...


def softmax(logits: Floats) -> Floats:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


@dataclass
class Logistic:
    """Multinomial logistic regression on standardised features (each dimension centred and
    scaled by its training mean and deviation, which conditions the problem: raw MiniLM
    coordinates are tiny and correlated), by Nesterov-accelerated full-batch gradient descent
    from zeros. The standardisation is folded into the weights afterwards, so the result is
    one linear layer over the raw vector."""

    lam: float
    steps: int = 500
    name: str = "logistic"
    weights: Floats = field(default_factory=lambda: np.zeros((0, 0)))
    bias: Floats = field(default_factory=lambda: np.zeros(0))

    def fit(self, x: Floats, y: Labels) -> None:
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-12
        z = (x - mean) / scale
        n, d = z.shape
        k = len(TASKS)
        onehot = np.eye(k)[y]
        # the loss's gradient is Lipschitz with constant ≤ (‖Z‖² / n + 1) / 2 + lam (the
        # bias is a column of ones)
        step = 1.0 / (0.5 * (np.linalg.norm(z, 2) ** 2 / n + 1.0) + self.lam)
        w, b = np.zeros((k, d)), np.zeros(k)
        w_prev, b_prev = w, b
        for t in range(1, self.steps + 1):
            momentum = (t - 1) / (t + 2)
            vw = w + momentum * (w - w_prev)
            vb = b + momentum * (b - b_prev)
            g = (softmax(z @ vw.T + vb) - onehot) / n
            w_prev, b_prev = w, b
            w = vw - step * (g.T @ z + self.lam * vw)
            b = vb - step * g.sum(axis=0)
        self.weights = w / scale
        self.bias = b - self.weights @ mean

    def proba(self, x: Floats) -> Floats:
        return softmax(x @ self.weights.T + self.bias)


@dataclass
class Centroid:
    """Nearest task centroid by cosine: a linear layer of unit centroids scaled by ``tau``."""

    tau: float
    name: str = "centroid"
    weights: Floats = field(default_factory=lambda: np.zeros((0, 0)))
    bias: Floats = field(default_factory=lambda: np.zeros(0))

    def fit(self, x: Floats, y: Labels) -> None:
        means = np.stack([x[y == i].mean(axis=0) for i in range(len(TASKS))])
        self.weights = self.tau * means / np.linalg.norm(means, axis=1, keepdims=True)
        self.bias = np.zeros(len(TASKS))

    def proba(self, x: Floats) -> Floats:
        return softmax(x @ self.weights.T + self.bias)


@dataclass
class Knn:
    """The ``k`` most similar training prompts vote, each with its cosine similarity."""

    k: int
    name: str = "knn"
    train_x: Floats = field(default_factory=lambda: np.zeros((0, 0)))
    train_y: Labels = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def fit(self, x: Floats, y: Labels) -> None:
        self.train_x, self.train_y = x, y

    def proba(self, x: Floats) -> Floats:
        sims = x @ self.train_x.T
        # a stable sort: ties go to the earlier training prompt, so the result is the same
        nearest = np.argsort(-sims, axis=1, kind="stable")[:, : self.k]
        votes = np.zeros((len(x), len(TASKS)))
        for i, row in enumerate(nearest):
            for j in row:
                votes[i, self.train_y[j]] += max(float(sims[i, j]), 1e-6)
        return np.asarray(votes / votes.sum(axis=1, keepdims=True))


# The keyword baseline: the first rule whose pattern occurs decides; none → conversation.
KEYWORD_RULES: tuple[tuple[Task, re.Pattern[str]], ...] = tuple(
    (task, re.compile(pattern, re.I))
    for task, pattern in (
        (
            Task.REWRITE,
            r"\b(translate|translation|summar(y|ise|ize)|tl;?dr|paraphrase|rephrase|reword|"
            r"rewrite|proofread|shorten|condense|simplify|fix the (grammar|spelling|typos|"
            r"punctuation)|correct (the|my|this)|make (this|it) (sound )?(more|less))\b",
        ),
        (
            Task.CODE,
            r"\b(python|javascript|typescript|java|sql|bash|shell|regex|function|code|bug|"
            r"error|git|docker|css|html|api|rust|golang|c\+\+|c#|script|compile|class|"
            r"pandas|react|node\.?js|linux|query|algorithm)\b|`|\bdef |[{};]\s*$",
        ),
        (
            Task.MATH,
            r"\d\s*[-+*/×^=]\s*\d|\b(solve|calculate|compute|convert|probability|prove|"
            r"derivative|integral|integrate|equation|percent|fraction|how many|average|"
            r"sum of|divisible|factor)\b|%",
        ),
        (
            Task.CREATIVE,
            r"\b(poem|story|haiku|limerick|sonnet|slogan|joke|song|lyrics|toast|tagline|"
            r"letter|speech|names for|fairy tale|fable|riddle|monologue|caption)\b",
        ),
        (
            Task.LOOKUP,
            r"^\s*(who|what|when|where|which|define|how (tall|far|old|long|many|much))\b|"
            r"\bwhat (does|is) .* mean\b",
        ),
    )
)


def keyword_task(text: str) -> Task:
    for task, pattern in KEYWORD_RULES:
        if pattern.search(text):
            return task
    return Task.CONVERSATION


def labels(prompts: Sequence[LabelledPrompt]) -> Labels:
    return np.asarray([TASKS.index(p.task) for p in prompts], dtype=np.int64)


def stratified_folds(y: Labels, folds: int, seed: int) -> list[Labels]:
    """Row indices of each fold: each task's rows shuffled (seeded) and dealt in turn."""
    rng = np.random.default_rng(seed)
    out: list[list[int]] = [[] for _ in range(folds)]
    for task in range(len(TASKS)):
        rows = rng.permutation(np.flatnonzero(y == task))
        for i, r in enumerate(rows):
            out[i % folds].append(int(r))
    return [np.asarray(sorted(f), dtype=np.int64) for f in out]


def log_loss(p: Floats, y: Labels) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))


def cross_validate(
    make: Callable[[], Method], x: Floats, y: Labels, seed: int
) -> tuple[float, float]:
    """Mean accuracy and log-loss of ``make()`` over stratified folds of the training part."""
    correct, losses = 0, 0.0
    for fold in stratified_folds(y, FOLDS, seed):
        rest = np.setdiff1d(np.arange(len(y)), fold)
        method = make()
        method.fit(x[rest], y[rest])
        p = method.proba(x[fold])
        correct += int((p.argmax(axis=1) == y[fold]).sum())
        losses += log_loss(p, y[fold]) * len(fold)
    return correct / len(y), losses / len(y)


@dataclass(frozen=True)
class Choice:
    method: str
    knob: str
    value: float
    cv_accuracy: float
    cv_log_loss: float


CANDIDATES: dict[str, tuple[str, Sequence[float], Callable[[float], Method]]] = {
    "logistic": ("lam", LAMBDAS, lambda v: Logistic(lam=v)),
    "centroid": ("tau", TAUS, lambda v: Centroid(tau=v)),
    "knn": ("k", KS, lambda v: Knn(k=int(v))),
}


def choose(name: str, x: Floats, y: Labels, seed: int) -> Choice:
    """The knob value by the one-standard-error rule: of the values whose cross-validated
    accuracy is within one standard error of the best one's (accuracies a few prompts apart
    are noise), the one with the lowest cross-validated log-loss, whose probabilities the
    router will threshold. (Centroid's τ changes no decision, so log-loss alone picks it.)"""
    knob, values, make = CANDIDATES[name]
    tried = [
        Choice(name, knob, v, *cross_validate(lambda v=v: make(v), x, y, seed))  # type: ignore[misc]
        for v in values
    ]
    top = max(c.cv_accuracy for c in tried)
    standard_error = (top * (1 - top) / len(y)) ** 0.5
    near = [c for c in tried if c.cv_accuracy >= top - standard_error - 1e-12]
    return min(near, key=lambda c: (c.cv_log_loss, -c.cv_accuracy))


def fitted(choice: Choice, x: Floats, y: Labels) -> Method:
    method = CANDIDATES[choice.method][2](choice.value)
    method.fit(x, y)
    return method


@dataclass(frozen=True)
class Scores:
    """One method's predictions on labelled prompts, and what follows from them."""

    truth: Labels
    predicted: Labels

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.truth == self.predicted))

    def confusion(self) -> npt.NDArray[np.int64]:
        """Rows: the true task; columns: the predicted one (``TASKS`` order)."""
        m = np.zeros((len(TASKS), len(TASKS)), dtype=np.int64)
        for t, p in zip(self.truth, self.predicted, strict=True):
            m[t, p] += 1
        return m

    def precision_recall(self) -> list[tuple[Task, float, float, int]]:
        m = self.confusion()
        out = []
        for i, task in enumerate(TASKS):
            predicted, actual = int(m[:, i].sum()), int(m[i, :].sum())
            precision = m[i, i] / predicted if predicted else 0.0
            recall = m[i, i] / actual if actual else 0.0
            out.append((task, float(precision), float(recall), actual))
        return out

    def report(self, title: str) -> str:
        right = int((self.truth == self.predicted).sum())
        lines = [f"{title}: accuracy {self.accuracy:.3f} ({right}/{len(self.truth)})"]
        lines.append(f"  {'task':<13} {'precision':>9} {'recall':>7} {'n':>4}")
        for task, p, r, n in self.precision_recall():
            lines.append(f"  {task.value:<13} {p:>9.3f} {r:>7.3f} {n:>4}")
        short = [t.value[:5] for t in TASKS]
        lines.append("  confusion (rows: true, columns: predicted)")
        lines.append("  " + " " * 13 + " ".join(f"{s:>5}" for s in short))
        for task, row in zip(TASKS, self.confusion(), strict=True):
            lines.append(f"  {task.value:<13}" + " ".join(f"{int(c):>5}" for c in row))
        return "\n".join(lines)


def keyword_scores(prompts: Sequence[LabelledPrompt]) -> Scores:
    predicted = np.asarray([TASKS.index(keyword_task(p.text)) for p in prompts], dtype=np.int64)
    return Scores(labels(prompts), predicted)


def model_document(
    method: Method,
    choice: Choice,
    embedder: str,
    held_out: Scores,
    held_out_loss: float,
    n_train: int,
    seed: int,
) -> dict[str, Any]:
    """The shipped file's content: rounded weights and how they were made (no timestamps, so
    the same inputs give the same bytes)."""
    assert isinstance(method, Logistic | Centroid)
    return {
        "format": FORMAT,
        "kind": "softmax-linear",
        "method": choice.method,
        choice.knob: choice.value,
        "embedder": embedder,
        "dim": int(method.weights.shape[1]),
        "tasks": [t.value for t in TASKS],
        "prompts_sha256": hashlib.sha256(prompts_bytes()).hexdigest(),
        "split_seed": seed,
        "n_train": n_train,
        "n_held_out": len(held_out.truth),
        "cv_accuracy": round(choice.cv_accuracy, 4),
        "held_out_accuracy": round(held_out.accuracy, 4),
        "held_out_log_loss": round(held_out_loss, 4),
        "written_by": "python training/task_classifier.py (make task-classifier)",
        "bias": [round(float(v), 6) for v in method.bias],
        "weights": [[round(float(v), 6) for v in row] for row in method.weights],
    }


def encode(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, separators=(",", ":")) + "\n").encode()


@dataclass
class Measured:
    """Every method's choice and held-out result, and the document of the one to ship."""

    choices: dict[str, Choice]
    held_out: dict[str, Scores]
    held_out_loss: dict[str, float]
    shipped: str
    document: dict[str, Any]


def measure(
    prompts: Sequence[LabelledPrompt], vectors: Floats, embedder: str, seed: int = SPLIT_SEED
) -> Measured:
    train = [i for i, p in enumerate(prompts) if not p.held_out]
    test = [i for i, p in enumerate(prompts) if p.held_out]
    y = labels(prompts)
    xt, yt, xh, yh = vectors[train], y[train], vectors[test], y[test]
    choices, held, losses, methods = {}, {}, {}, {}
    for name in CANDIDATES:
        choices[name] = choose(name, xt, yt, seed)
        methods[name] = fitted(choices[name], xt, yt)
        p = methods[name].proba(xh)
        held[name] = Scores(yh, p.argmax(axis=1))
        losses[name] = log_loss(p, yh)
    held["keyword"] = keyword_scores([prompts[i] for i in test])
    shipped = max(("logistic", "centroid"), key=lambda m: (held[m].accuracy, -losses[m]))
    doc = model_document(
        methods[shipped],
        choices[shipped],
        embedder,
        held[shipped],
        losses[shipped],
        len(train),
        seed,
    )
    return Measured(choices, held, losses, shipped, doc)


def embed(prompts: Sequence[LabelledPrompt]) -> tuple[Floats, str]:
    from boundgate.reuse.embedder import OnnxEmbedder
    from boundgate.routing.classifier import window_text

    embedder = OnnxEmbedder(threads=2)
    vectors = embedder.embed([window_text(p.text, embedder) for p in prompts])
    return np.asarray(vectors, dtype=np.float64), embedder.name


def main(argv: list[str] | None = None) -> int:
    from boundgate.routing.prompts import task_prompts

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=SPLIT_SEED)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--dry-run", action="store_true", help="measure only, write nothing")
    args = parser.parse_args(argv)

    prompts = task_prompts(args.seed)
    vectors, embedder = embed(prompts)
    m = measure(prompts, vectors, embedder, args.seed)
    n_held = sum(p.held_out for p in prompts)
    print(
        f"{len(prompts)} prompts: {len(prompts) - n_held} train, {n_held} held out "
        f"(seed {args.seed}); embedder {embedder}\n"
    )
    print(
        f"{'method':<9} {'knob':>10} {'cv acc':>7} {'cv loss':>8} {'held acc':>9} {'held loss':>10}"
    )
    for name in (*CANDIDATES, "keyword"):
        c = m.choices.get(name)
        knob = f"{c.knob}={c.value:g}" if c else "-"
        cv = f"{c.cv_accuracy:>7.3f} {c.cv_log_loss:>8.3f}" if c else f"{'-':>7} {'-':>8}"
        loss = f"{m.held_out_loss[name]:>10.3f}" if name in m.held_out_loss else f"{'-':>10}"
        print(f"{name:<9} {knob:>10} {cv} {m.held_out[name].accuracy:>9.3f} {loss}")
    print()
    for name, scores in m.held_out.items():
        print(scores.report(f"{name} (held out)"))
        print()
    print(f"shipped: {m.shipped}")
    if not args.dry_run:
        args.out.write_bytes(encode(m.document))
        digest = hashlib.sha256(args.out.read_bytes()).hexdigest()[:12]
        print(f"wrote {args.out} (task-linear@{digest})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
