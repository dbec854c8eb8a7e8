"""Task classification for ``model: "auto"`` (issue #15): quality and cost of each method.

1. Quality, on the held-out part of ``routing/data/task_prompts.jsonl`` (138 prompts, never
   fitted or tuned on): accuracy, per-task precision and recall, and the confusion matrix of
   - ``shipped``: the package's ``EmbeddingTaskClassifier`` (the weights file as shipped);
   - ``logistic``, ``centroid``, ``knn``: refitted here by ``training/task_classifier.py``'s
     code (knobs by 5-fold cross-validation on the training part);
   - ``keyword``: the hand-written word rules, no vectors.
2. Long prompts (longer than the embedder's 128-token window): pasted texts (an article, a
   letter, a code file) with an instruction before or after them, read by plain truncation
   or by ``window_text``'s head and tail of 80, 120 or 200 characters.
3. Cost: the latency of classifying one prompt at a time, p50 and p90 over every prompt,
   the methods interleaved prompt by prompt: the whole ``classify(text)`` (embedding + layer),
   the embedding alone, and each method's own step on a vector already computed.

    python bench/task_classes.py [--threads 1] [--errors]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __name__ == "__main__":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training"))

from task_classifier import (
    TASKS,
    Scores,
    fitted,
    keyword_task,
    labels,
    measure,
)

from boundgate.reuse.embedder import OnnxEmbedder
from boundgate.routing.classifier import EmbeddingTaskClassifier, window_text
from boundgate.routing.prompts import task_prompts
from boundgate.routing.tasks import Task


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


ARTICLE = (
    "The old harbour of Kessel was built in the seventeenth century, when the town traded salt "
    "and timber with ports along the coast. Over the centuries the harbour silted up, and by "
    "the nineteenth century only small fishing boats could enter it. In 1952 the council "
    "decided to dredge the basin and build a new breakwater, which allowed ferries to call "
    "twice a day. Today the harbour draws tourists to its fish market, its museum in the old "
    "customs house and the view from the lighthouse, while residents complain that rents have "
    "doubled and that the narrow streets around the quay are crowded all summer. The council "
    "is now debating a cap on holiday rentals, and the fishermen ask for a share of the "
    "harbour fees to repair the net sheds that the storms of last winter damaged. "
)
LETTER = (
    "Dear neighbours, as most of you know, the community garden on Elm Street has been run by "
    "volunteers for eleven years. This spring the city told us that the lease on the land will "
    "not be renewed, because the plot has been sold to a developer who plans to build flats. "
    "We have until the end of October to clear the beds, the greenhouse and the tool shed. "
    "Many of you have asked what will happen to the fruit trees, the beehives and the bench "
    "in memory of Mrs Alvarez. We are talking to the school about moving some of it there. "
    "If you can lend a van, a trailer or simply a pair of hands on the last two Saturdays of "
    "October, please tell Sam at the gate or leave a note in the letterbox by the shed. "
)
CODE = (
    "import json\n\ndef load(path):\n    with open(path) as f:\n        data = json.load(f)\n"
    "    out = []\n    for row in data['rows']:\n        if row['active']:\n"
    "            out.append(transform(row))\n    return out\n\n"
    "def transform(row):\n    return {'id': row['id'], 'name': row['name'].strip(),\n"
    "            'total': sum(item['price'] * item['qty'] for item in row['items'])}\n\n"
)
LONG_PROMPTS: list[tuple[str, Task]] = [
    (f"Summarise this article in two sentences: {ARTICLE}", Task.REWRITE),
    (f"{ARTICLE}\n\nSummarise the text above in two sentences.", Task.REWRITE),
    (f"Translate this into German:\n{LETTER}", Task.REWRITE),
    (f"{LETTER}\n\nCan you translate this letter into Spanish?", Task.REWRITE),
    (f"{ARTICLE}\n\nWrite a poem inspired by this story.", Task.CREATIVE),
    (f"Write a short story set in this place: {ARTICLE}", Task.CREATIVE),
    (
        f"{LETTER}\n\nI wrote this letter and now I feel terrible. Was I too harsh?",
        Task.CONVERSATION,
    ),
    (f"{ARTICLE}\n\nWhat do you think, should I move there?", Task.CONVERSATION),
    (f"Why does this raise a KeyError on some files?\n{CODE}", Task.CODE),
    (f"{CODE}\nWhy does this raise a KeyError on some files?", Task.CODE),
    (f"{ARTICLE}\n\nIn what year was the new breakwater built, and why?", Task.LOOKUP),
    (f"{ARTICLE}\n\nIf rents doubled in ten years, what is the yearly growth rate?", Task.MATH),
]


def long_prompts(shipped: EmbeddingTaskClassifier, embedder: OnnxEmbedder) -> None:
    texts = [t for t, _ in LONG_PROMPTS]
    assert not any(embedder.fits(t) for t in texts)
    print(f"long prompts ({len(texts)}, all past the 128-token window):")
    print("| read as | right | misses |")
    print("|---|---:|---|")
    variants: list[tuple[str, Callable[[str], str]]] = [("truncation", lambda t: t)]
    for n in (80, 120, 200):
        variants.append((f"head + tail, {n} chars", lambda t, n=n: window_text(t, embedder, n)))
    for name, read in variants:
        vectors = embedder.embed([read(t) for t in texts])
        got = [shipped.classify_vector(v).task for v in vectors]
        misses = [
            f"{want.value}→{g.value}"
            for (_, want), g in zip(LONG_PROMPTS, got, strict=True)
            if g is not want
        ]
        print(f"| {name} | {len(texts) - len(misses)}/{len(texts)} | {', '.join(misses)} |")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    parser.add_argument("--errors", action="store_true", help="list the shipped model's misses")
    args = parser.parse_args()

    prompts = task_prompts()
    embedder = OnnxEmbedder(threads=args.threads)
    shipped = EmbeddingTaskClassifier(embedder)
    vectors = np.asarray(
        embedder.embed([window_text(p.text, embedder) for p in prompts]), dtype=np.float64
    )
    held = [p for p in prompts if p.held_out]
    print(
        f"{len(prompts)} prompts, {len(held)} held out; {shipped.name} "
        f"({shipped.model.meta['method']}) over {embedder.name}\n"
    )

    measured = measure(prompts, vectors, embedder.name)
    predictions = shipped.classify_many([p.text for p in held])
    results = {
        "shipped": Scores(
            labels(held),
            np.asarray([TASKS.index(p.task) for p in predictions], dtype=np.int64),
        ),
        **measured.held_out,
    }
    print("| method | knob (5-fold CV) | CV accuracy | held-out accuracy | held-out log-loss |")
    print("|---|---|---:|---:|---:|")
    for name, scores in results.items():
        choice = measured.choices.get(name)
        knob = f"{choice.knob} = {choice.value:g}" if choice else "—"
        cv = f"{choice.cv_accuracy:.3f}" if choice else "—"
        loss = measured.held_out_loss.get(name)
        print(
            f"| {name} | {knob} | {cv} | {scores.accuracy:.3f} | "
            f"{f'{loss:.3f}' if loss is not None else '—'} |"
        )
    print()
    for name, scores in results.items():
        print(scores.report(f"{name} (held out)"))
        print()

    if args.errors:
        print("shipped model's misses on the held-out part:")
        for p, pred in zip(held, predictions, strict=True):
            if pred.task is not p.task:
                print(
                    f"  {p.task.value:>12} → {pred.task.value:<12} {pred.probability:.2f}  "
                    f"{p.text[:90]!r}"
                )
        print()

    long_prompts(shipped, embedder)

    # cost: one prompt at a time, every method on the same prompt before the next
    train = [i for i, p in enumerate(prompts) if not p.held_out]
    y = labels(prompts)
    heads = {
        name: fitted(measured.choices[name], vectors[train], y[train])
        for name in ("logistic", "centroid", "knn")
    }
    steps: dict[str, Callable[[int], object]] = {
        "classify(text), shipped": lambda i: shipped.classify(prompts[i].text),
        "embedding alone": lambda i: embedder.embed([prompts[i].text]),
        "shipped layer on the vector": lambda i: shipped.classify_vector(vectors[i]),
        **{
            f"{name} on the vector": (lambda i, h=h: h.proba(vectors[i : i + 1]))
            for name, h in heads.items()
        },
        "keyword rules on the text": lambda i: keyword_task(prompts[i].text),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(len(prompts)):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step(i)
            times[name].append((time.perf_counter() - t0) * 1000)
    print(f"latency per prompt, one at a time ({len(prompts)} prompts, {args.threads} thread(s)):")
    print("| step | p50 ms | p90 ms |")
    print("|---|---:|---:|")
    for name, ts in times.items():
        print(f"| {name} | {percentile(ts, 50):.3f} | {percentile(ts, 90):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
