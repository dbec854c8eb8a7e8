"""A second view of a question pair: the pair model's score combined with a second sentence
embedder's cosine (all-mpnet-base-v2, ``training/view_model.py``) and MiniLM's, measured
offline on every labelled set (bench/RESULTS.md, thirty-sixth session). Not used by serving.

For each pair of ``quora_val.csv`` (with the reviewed labels), ``chat_heldout.csv``,
``chat_heldout2.csv`` and ``blind_trial.csv``: the shipped pair ensemble's mean probability
p (every member, both orders), the MiniLM cosine c1 (the shipped int8 embedder) and the
view's cosine c2. A logistic regression on (logit p, c2, c1), and on (logit p, c2) and
(logit p, c1), is fitted on quora_val's pairs at or above the 0.70 cosine floor (the
calibration set; three or four numbers). Each is read at the threshold where its precision
on quora_val equals the pair model's at 0.895 (the shipped prior's threshold at δ = 1 %),
and the pairs it passes are counted on every set: duplicates (reused) and non-duplicates
(wrong). Guards are not applied (the same for every scorer).

Usage::

    python training/view_model.py   # once: training/.cache/view_model (needs [train])
    PYTHONPATH=src:training python bench/second_view.py [--view training/.cache/view_model]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "training"))

FLOOR = 0.70  # the gateway's cosine floor for scoring a candidate
SERVED_FROM = 0.895  # the shipped prior's threshold on the pair score (calibration.json)


def view_embedder(view_dir: Path, threads: int = 2) -> Any:
    """A function from texts to the view's unit vectors (n, 768), one text per run."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(view_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(128)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(view_dir / "view.onnx"), opts, ["CPUExecutionProvider"])

    def embed(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 768), dtype=np.float32)
        for i, t in enumerate(texts):
            e = tok.encode(t)
            feeds = {
                "input_ids": np.asarray([e.ids], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask], dtype=np.int64),
            }
            out[i] = session.run(None, feeds)[0][0]
        return out

    return embed


def logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Weights (features…, intercept) of an L2-regularised logistic regression (Newton)."""
    x1 = np.c_[x, np.ones(len(x))]
    w = np.zeros(x1.shape[1])
    ridge = l2 * np.diag(np.r_[np.ones(x.shape[1]), 0.0])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-x1 @ w))
        grad = x1.T @ (p - y) + ridge @ w
        hess = (x1 * (p * (1 - p))[:, None]).T @ x1 + ridge
        w -= np.linalg.solve(hess, grad)
    return w


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def main() -> None:
    from pairdata import read_pairs, read_review

    from boundgate.reuse.embedder import OnnxEmbedder
    from boundgate.reuse.pair import OnnxPairScorer

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--view", type=Path, default=ROOT / "training/.cache/view_model")
    ap.add_argument("--val", type=Path, default=ROOT / "../shared/data/cache/quora_val.csv")
    args = ap.parse_args()

    reviewed = read_review(ROOT / "bench/data/quora_val_label_review.tsv")
    sets = {
        "quora_val": [(a, b, 1 if (a, b) in reviewed else y) for a, b, y in read_pairs(args.val)]
    }
    for name in ["chat_heldout", "chat_heldout2", "blind_trial"]:
        sets[name] = read_pairs(ROOT / f"bench/data/{name}.csv")
    texts = sorted({t for pairs in sets.values() for a, b, _ in pairs for t in (a, b)})
    at = {t: i for i, t in enumerate(texts)}

    t0 = time.perf_counter()
    minilm = OnnxEmbedder(threads=2)
    e1 = np.concatenate([minilm.embed(texts[i : i + 64]) for i in range(0, len(texts), 64)])
    t1 = time.perf_counter()
    e2 = view_embedder(args.view)(texts)
    t2 = time.perf_counter()
    scorer = OnnxPairScorer(threads=2)
    data: dict[str, dict[str, np.ndarray]] = {}
    for name, pairs in sets.items():
        a = np.asarray([at[p[0]] for p in pairs])
        b = np.asarray([at[p[1]] for p in pairs])
        data[name] = {
            "y": np.asarray([p[2] for p in pairs]),
            "p": np.asarray([scorer.readings(x, z).mean() for x, z, _ in pairs]),
            "c1": (e1[a] * e1[b]).sum(1),
            "c2": (e2[a] * e2[b]).sum(1),
        }
    t3 = time.perf_counter()
    print(
        f"{len(texts)} questions: MiniLM {1000 * (t1 - t0) / len(texts):.1f} ms, view "
        f"{1000 * (t2 - t1) / len(texts):.1f} ms each; pair model {t3 - t2:.0f} s"
    )

    def features(d: dict[str, np.ndarray], cols: list[int]) -> np.ndarray:
        return np.c_[logit(d["p"]), d["c2"], d["c1"]][:, cols]

    q = data["quora_val"]
    floor = q["c1"] >= FLOOR
    base = (q["p"] >= SERVED_FROM) & floor
    precision = q["y"][base].mean()
    held = [n for n in data if n != "quora_val"]
    rows = [("pair ≥ 0.895", lambda d: d["p"], SERVED_FROM)]
    for cols, label in [
        ([0, 1, 2], "pair + view + MiniLM"),
        ([0, 1], "pair + view"),
        ([0, 2], "pair + MiniLM"),
    ]:
        w = logistic(features(q, cols)[floor], q["y"][floor])

        def score(
            d: dict[str, np.ndarray], w: np.ndarray = w, cols: list[int] = cols
        ) -> np.ndarray:
            return np.asarray(features(d, cols) @ w[:-1] + w[-1])

        s = np.where(floor, score(q), -np.inf)
        order = np.argsort(-s)
        y = q["y"][order]
        prec = np.cumsum(y) / np.arange(1, len(y) + 1)
        i = int(np.nonzero(prec >= precision)[0][-1])
        rows.append((f"{label} {np.round(w, 2).tolist()}", score, float(s[order][i])))

    print(f"threshold: quora_val precision {precision:.4f} (the pair model at {SERVED_FROM})")
    print("| scorer | " + " | ".join(data) + " | held-out sets |")
    print("|---|" + "---:|" * (len(data) + 1))
    for label, score, threshold in rows:
        cells = []
        pooled = np.zeros(2, dtype=int)
        for name, d in data.items():
            served = (score(d) >= threshold) & (d["c1"] >= FLOOR)
            dups, wrong = int(served[d["y"] == 1].sum()), int(served[d["y"] == 0].sum())
            cells.append(f"{dups} / {wrong}")
            if name in held:
                pooled += (dups, wrong)
        print(f"| {label} | " + " | ".join(cells) + f" | {pooled[0]} / {pooled[1]} |")
    print(
        "cells: duplicates / non-duplicates passed (of "
        + ", ".join(f"{int(d['y'].sum())} / {int((d['y'] == 0).sum())}" for d in data.values())
        + ")"
    )


if __name__ == "__main__":
    main()
