"""Another label source for a small model, measured: the likelihood of the stored answer.

``bench/answer_labels.py`` found that comparing SmolLM2-135M's answers cannot tell a
paraphrase from a look-alike. A label that does not need the model to write alike twice:
how much less likely the stored answer A of question a becomes when the model reads the
asked question b instead (teacher forcing: mean log-probability per token of A after b's
chat prompt minus after a's), in both directions. If b asks what a asks, A should stay about
as likely; if b asks about another entity or number, A should become less likely.

Reported: the AUC of each direction, of their mean and of their minimum at separating the
development paraphrases from the look-alikes (pairs spread as in ``answer_labels.py``),
on the answers kept by ``answer_labels.py --answers FILE``. Slow (four teacher-forced passes
per pair with every position's logits, on one thread): about 18 minutes for 75 + 75 pairs.

    python bench/answer_likelihood.py --answers /tmp/answers.json [--pairs 75]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from answer_labels import ROOT, spread
from boundgate.backends.llama_cpp import packaged_model_path


def auc(scores: list[float], positive: list[bool]) -> float:
    """The probability that a positive scores above a negative (ties count half)."""
    pos = [s for s, y in zip(scores, positive, strict=True) if y]
    neg = [s for s, y in zip(scores, positive, strict=True) if not y]
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def main() -> None:
    from llama_cpp import Llama

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--answers", type=Path, required=True, help="from answer_labels.py")
    ap.add_argument("--pairs", type=int, default=75)
    args = ap.parse_args()
    answers: dict[str, str] = json.loads(args.answers.read_text(encoding="utf-8"))
    # the same spread as answer_labels.py's 150, every second pair
    step = max(1, 150 // args.pairs)
    same = spread(ROOT / "tests/data/paraphrases_dev.tsv", 0, 1, 150)[::step][: args.pairs]
    diff = spread(ROOT / "tests/data/different_dev.tsv", 1, 2, 150)[::step][: args.pairs]
    pairs = [(a, b, True) for a, b in same] + [(a, b, False) for a, b in diff]
    llm: Any = Llama(
        model_path=str(packaged_model_path()),
        n_ctx=1024,
        n_threads=1,
        logits_all=True,
        verbose=False,
    )

    def prompt(q: str) -> str:  # SmolLM2's chat template with its default system prompt
        return (
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
            f"Hugging Face<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
        )

    def mean_logprob(q: str, answer: str) -> float:
        head = llm.tokenize(prompt(q).encode(), add_bos=False, special=True)
        full = llm.tokenize((prompt(q) + answer).encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(full)
        logits = np.asarray(llm.scores[: len(full)], dtype=np.float64)
        total = 0.0
        for i in range(len(head), len(full)):
            row = logits[i - 1]
            top = row.max()
            total += row[full[i]] - (top + np.log(np.exp(row - top).sum()))
        return total / max(1, len(full) - len(head))

    forward, backward = [], []
    for a, b, _ in pairs:
        ans_a, ans_b = answers[a], answers[b]
        forward.append(mean_logprob(b, ans_a) - mean_logprob(a, ans_a))
        backward.append(mean_logprob(a, ans_b) - mean_logprob(b, ans_b))
    is_same = [s for *_, s in pairs]
    print(f"{len(same)} paraphrase pairs, {len(diff)} look-alike pairs\n")
    print("| score | AUC |\n|---|---:|")
    print(f"| stored answer under the asked question | {auc(forward, is_same):.3f} |")
    print(f"| the other way | {auc(backward, is_same):.3f} |")
    mean = [(x + y) / 2 for x, y in zip(forward, backward, strict=True)]
    low = [min(x, y) for x, y in zip(forward, backward, strict=True)]
    print(f"| mean of both | {auc(mean, is_same):.3f} |")
    print(f"| lower of both | {auc(low, is_same):.3f} |")


if __name__ == "__main__":
    main()
