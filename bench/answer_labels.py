"""How informative the verifier's labels are when the local model writes the answers.

Sampled verification labels a would-be hit by comparing the fresh answer with the stored one
(``Labelling.same_answer``: equal after normalisation, or answer embeddings at cosine ≥
``reuse.answer_similarity`` with none of ``ANSWER_CONFLICTS`` between them). Those labels are
what the verifier's own estimate rests on once the prior has faded. Here the packaged
SmolLM2-135M answers both questions of ``--pairs`` development paraphrases
(``tests/data/paraphrases_dev.tsv``: the answer should count as the same) and as many
look-alikes (``tests/data/different_dev.tsv``: it should not), greedily (temperature 0,
``--max-tokens``), and the gateway's own ``same_answer`` labels each pair, at its default
threshold and at others. A label source that calls as many look-alikes "same" as
paraphrases, or calls most paraphrases "different", tells the verifier nothing.

Reported: the share of each kind labelled "same" per threshold, with and without the
conflict check; the answer cosines' quartiles per kind; the share where the conflict check
fires. ``--answers FILE`` keeps the generated answers (JSON) and reuses them when present
(the generation is most of the run: about 12 minutes for 150 + 150 pairs on one thread).

``--write-data`` records the counts at each threshold for the packaged model's version in
the package data the gateway reads (``src/boundgate/reuse/data/answer_labels.json``): a model
whose answers label paraphrases "same" no more often than look-alikes has its answer labels
left out of the verifier (``models.<name>.answer_labels = "auto"``, docs/reuse.md).

    python bench/answer_labels.py [--pairs 150] [--max-tokens 64] [--answers /tmp/answers.json]
        [--write-data]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from boundgate.backends.llama_cpp import file_sha256, packaged_model_path
from boundgate.reuse import guards
from boundgate.reuse.embedder import OnnxEmbedder, Vectors
from boundgate.reuse.labels import ANSWER_CONFLICTS, Labelling

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src/boundgate/reuse/data/answer_labels.json"


def spread(path: Path, first: int, second: int, n: int) -> list[tuple[str, str]]:
    """``n`` pairs spread evenly over a tab-separated file (``#`` lines are comments)."""
    rows = [
        line.rstrip("\n").split("\t")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    step = max(1, len(rows) // n)
    return [(r[first], r[second]) for r in rows[::step][:n]]


def generate(pairs: list[tuple[str, str, bool]], max_tokens: int) -> dict[str, str]:
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(packaged_model_path()), n_ctx=512, n_threads=1, seed=0, verbose=False
    )
    answers: dict[str, str] = {}
    started = time.perf_counter()
    for q in dict.fromkeys(q for a, b, _ in pairs for q in (a, b)):
        out: Any = llm.create_chat_completion(
            messages=[{"role": "user", "content": q}], temperature=0, max_tokens=max_tokens
        )
        answers[q] = out["choices"][0]["message"]["content"]
    print(f"generated {len(answers)} answers in {time.perf_counter() - started:.0f} s")
    return answers


async def labels(
    pairs: list[tuple[str, str, bool]], answers: dict[str, str], threshold: float, conflicts: bool
) -> list[bool]:
    """The gateway's ``same_answer`` on each pair's two answers (``conflicts`` False: the
    cosine alone)."""
    embedder = OnnxEmbedder()

    async def embed(texts: list[str]) -> Vectors:
        return embedder.embed(texts)

    shim: Any = SimpleNamespace(embed=embed, settings=SimpleNamespace(answer_similarity=threshold))
    out = []
    for a, b, _ in pairs:
        x, y = answers[a], answers[b]
        if conflicts:
            out.append(await Labelling.same_answer(shim, x, y))
        else:
            va, vb = await embed([x, y])
            out.append(float(np.dot(va, vb)) >= threshold)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=150)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--answers", type=Path, default=None)
    ap.add_argument(
        "--write-data",
        action="store_true",
        help=f"record the counts for the packaged model in {DATA.relative_to(ROOT)}",
    )
    args = ap.parse_args()
    same = spread(ROOT / "tests/data/paraphrases_dev.tsv", 0, 1, args.pairs)
    diff = spread(ROOT / "tests/data/different_dev.tsv", 1, 2, args.pairs)
    pairs = [(a, b, True) for a, b in same] + [(a, b, False) for a, b in diff]
    if args.answers and args.answers.exists():
        answers = json.loads(args.answers.read_text(encoding="utf-8"))
    else:
        answers = generate(pairs, args.max_tokens)
        if args.answers:
            args.answers.write_text(json.dumps(answers), encoding="utf-8")
    is_same = np.array([s for *_, s in pairs])
    embedder = OnnxEmbedder()
    va = embedder.embed([answers[a] for a, _, _ in pairs])
    vb = embedder.embed([answers[b] for _, b, _ in pairs])
    cos = (va * vb).sum(axis=1)
    fired = np.array(
        [
            bool(ANSWER_CONFLICTS.intersection(guards.compare(answers[a], answers[b]).conflicts))
            for a, b, _ in pairs
        ]
    )
    print(f"\n{len(same)} paraphrase pairs, {len(diff)} look-alike pairs (SmolLM2-135M answers)\n")
    print("| answer cosine | paraphrases | look-alikes |")
    print("|---|---:|---:|")
    for q in (0.25, 0.5, 0.75):
        p, d = np.quantile(cos[is_same], q), np.quantile(cos[~is_same], q)
        print(f"| quartile {q} | {p:.3f} | {d:.3f} |")
    print(f"| conflict check fires | {fired[is_same].mean():.2f} | {fired[~is_same].mean():.2f} |")
    print("\n| threshold | labelled same: paraphrases / look-alikes | cosine alone |")
    print("|---:|---:|---:|")
    counts: dict[str, list[int]] = {}
    for t in (0.95, 0.9, 0.8, 0.7, 0.5):
        full = np.array(asyncio.run(labels(pairs, answers, t, True)))
        bare = np.array(asyncio.run(labels(pairs, answers, t, False)))
        counts[f"{t}"] = [int(full[is_same].sum()), int(full[~is_same].sum())]
        print(
            f"| {t} | {full[is_same].mean():.2f} / {full[~is_same].mean():.2f} "
            f"| {bare[is_same].mean():.2f} / {bare[~is_same].mean():.2f} |"
        )
    if args.write_data:
        path = packaged_model_path()
        version = f"{path.name}@sha256:{file_sha256(path)[:16]}"  # as LlamaCppBackend's
        data = json.loads(DATA.read_text(encoding="utf-8")) if DATA.exists() else {"models": {}}
        data["models"][version] = {
            "date": time.strftime("%Y-%m-%d"),
            "source": "bench/answer_labels.py: both questions of development paraphrases "
            "(tests/data/paraphrases_dev.tsv) and look-alikes (tests/data/different_dev.tsv), "
            "spread evenly over each file, answered by this model and labelled by "
            "Labelling.same_answer",
            "settings": f"chat template, temperature 0, max_tokens {args.max_tokens}",
            "pairs": {"paraphrases": len(same), "lookalikes": len(diff)},
            "labelled_same_by_answer_similarity": counts,
        }
        DATA.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwrote {version} to {DATA.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
