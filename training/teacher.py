"""Soft labels from a second view for the pair model's training (an experiment; measured in
bench/RESULTS.md, thirty-seventh session).

The second view is all-mpnet-base-v2 (``training/view_model.py``), a bi-encoder trained on
about a billion sentence pairs: measured beside the pair model it passes more of Quora's
duplicates at equal precision (bench/RESULTS.md, thirty-sixth session). This script turns its
cosine into a teacher for the cross-encoder:

1. The teacher: a logistic regression on (view cosine, MiniLM cosine), fitted on training
   pairs only (``--fit``): quora_train.csv's, the labelled chatbot training pairs'
   (``pairdata.training_chat_pairs`` over the development sets and
   ``training/data/chat_pairs_*.tsv``), or both (the default). Fitted on the chatbot pairs
   alone (text the view never saw, unlike Quora's) it hardly separates: their look-alikes
   share the paraphrases' cosines (mean probability 0.57 on quora_train's duplicates, 0.40 on
   its non-duplicates). Its probability is the soft label.
2. Mined pairs: each training question (quora_train.csv's and the chatbot pairs') with its
   nearest other training questions by MiniLM (the gateway's retrieval), cosine in
   [``--low``, ``--high``), its labelled partners and same-text pairs left out, near-copies
   of any evaluation question left out (``pairdata.near_copies`` on the vectors already
   computed, the blind trial's questions added). Unlabelled: the teacher labels them.
3. Writes ``--targets`` (``training/data/teacher_targets.tsv.gz`` by default;
   ``pairdata.write_targets``): every quora_train pair's teacher probability by row and every
   mined pair kept (``--mined`` at most, drawn at random) by its questions' ids, no question
   text, for ``pair_model.py --teacher``. The file is committed, so training a taught member
   needs neither the view (~405 MB of wheels) nor this script's ~40 minutes here.

Nothing is fitted on or drawn from an evaluation set; quora_val.csv is not read except to
name the evaluation questions to leave out.

Usage::

    PYTHONPATH=src python training/teacher.py      # after training/view_model.py
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "bench"))

from pairdata import (  # noqa: E402
    _plain,
    chatbot_development_pairs,
    evaluation_questions,
    near_copies,
    read_pairs,
    training_chat_pairs,
    write_targets,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=Path, default=ROOT / "../shared/data/cache/quora_train.csv")
    ap.add_argument("--val", type=Path, default=ROOT / "../shared/data/cache/quora_val.csv")
    ap.add_argument("--view", type=Path, default=HERE / ".cache/view_model")
    ap.add_argument("--cache", type=Path, default=HERE / ".cache/teacher")
    ap.add_argument("--targets", type=Path, default=HERE / "data/teacher_targets.tsv.gz")
    ap.add_argument("--low", type=float, default=0.70)
    ap.add_argument("--high", type=float, default=0.97)
    ap.add_argument("--neighbours", type=int, default=2)
    ap.add_argument("--mined", type=int, default=25000)
    ap.add_argument("--fit", choices=["chat", "train", "both"], default="both")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()

    from boundgate.reuse.embedder import OnnxEmbedder
    from second_view import logistic, view_embedder

    train = read_pairs(args.train)
    chat = training_chat_pairs(chatbot_development_pairs(), args.val)
    print(f"quora_train {len(train)} pairs, chatbot training pairs {len(chat)}", flush=True)

    texts = sorted({q for pairs in (train, chat) for a, b, _ in pairs for q in (a, b)})
    at = {t: i for i, t in enumerate(texts)}
    args.cache.mkdir(parents=True, exist_ok=True)
    c1_path, c2_path = args.cache / "minilm.npy", args.cache / "view.npy"
    names = args.cache / "texts.txt"
    if not names.exists() or names.read_text(encoding="utf-8").split("\n") != texts:
        t0 = time.time()
        minilm = OnnxEmbedder(threads=2)
        e1 = np.concatenate(
            [
                np.asarray(minilm.embed(texts[i : i + 64]), np.float32)
                for i in range(0, len(texts), 64)
            ]
        )
        np.save(c1_path, e1)
        print(f"MiniLM {len(texts)} questions {time.time() - t0:.0f} s", flush=True)
        t0 = time.time()
        e2 = view_embedder(args.view)(texts)
        np.save(c2_path, e2)
        print(f"view {len(texts)} questions {time.time() - t0:.0f} s", flush=True)
        names.write_text("\n".join(texts), encoding="utf-8")
    e1, e2 = np.load(c1_path), np.load(c2_path)

    def cosines(pairs: list[tuple[str, str, int]]) -> np.ndarray:
        a = np.asarray([at[p[0]] for p in pairs])
        b = np.asarray([at[p[1]] for p in pairs])
        return np.c_[(e2[a] * e2[b]).sum(1), (e1[a] * e1[b]).sum(1)]

    fit = {"chat": chat, "train": train, "both": train + chat}[args.fit]
    w = logistic(cosines(fit), np.asarray([p[2] for p in fit], dtype=float))

    def teacher(pairs: list[tuple[str, str, int]]) -> np.ndarray:
        x = cosines(pairs)
        return 1.0 / (1.0 + np.exp(-(x @ w[:-1] + w[-1])))

    yt = np.asarray([p[2] for p in train], dtype=float)
    tt = teacher(train)
    print(
        f"teacher {np.round(w, 2).tolist()} (view cos, MiniLM cos, intercept); "
        f"on quora_train: mean {tt[yt == 1].mean():.3f} on duplicates, "
        f"{tt[yt == 0].mean():.3f} on non-duplicates",
        flush=True,
    )

    # mining: nearest other training questions by MiniLM
    partners = {(_plain(a), _plain(b)) for a, b, _ in train + chat}
    partners |= {(b, a) for a, b in partners}
    found: set[tuple[int, int]] = set()
    for i in range(0, len(texts), 2048):
        sims = e1[i : i + 2048] @ e1.T
        rows = np.arange(sims.shape[0])
        sims[rows, i + rows] = -1.0  # not itself
        top = np.argpartition(-sims, args.neighbours, axis=1)[:, : args.neighbours]
        for r, row in enumerate(top):
            for j in row:
                s = float(sims[r, j])
                a, b = i + r, int(j)
                if args.low <= s < args.high:
                    found.add((min(a, b), max(a, b)))
    mined = [
        (texts[a], texts[b], 0)
        for a, b in sorted(found)
        if _plain(texts[a]) != _plain(texts[b])
        and (_plain(texts[a]), _plain(texts[b])) not in partners
    ]
    print(f"mined {len(mined)} neighbour pairs in [{args.low}, {args.high})", flush=True)
    held = evaluation_questions(args.val)
    held |= {
        _plain(q) for a, b, _ in read_pairs(ROOT / "bench/data/blind_trial.csv") for q in (a, b)
    }
    near = near_copies(e1, held)
    rng = random.Random(args.seed)
    rng.shuffle(mined)
    mined = [p for p in mined if not (near[at[p[0]]] or near[at[p[1]]])][: args.mined]
    tm = teacher(mined)
    print(
        f"kept {len(mined)}; teacher on them: mean {tm.mean():.3f}, "
        f"share >= 0.5 {(tm >= 0.5).mean():.3f}",
        flush=True,
    )
    comments = [
        "Soft labels for the pair model's training: training/teacher.py (bench/RESULTS.md,",
        "thirty-seventh and thirty-eighth sessions). Teacher: a logistic regression on",
        "(all-mpnet-base-v2 cosine, all-MiniLM-L6-v2 cosine), fitted on the "
        f"{args.fit} training pairs: weights {np.round(w, 4).tolist()}",
        f"(view, MiniLM, intercept). Mined: {len(mined)} pairs of training questions, each with",
        f"its {args.neighbours} nearest by MiniLM in [{args.low}, {args.high}), seed {args.seed}.",
        "train rows: quora_train.csv's row number; mined rows: pairdata.question_id of each side.",
    ]
    write_targets(
        args.targets,
        train,
        tt.tolist(),
        [(a, b, float(t)) for (a, b, _), t in zip(mined, tm, strict=True)],
        comments,
    )
    print(f"wrote {args.targets}")


if __name__ == "__main__":
    main()
