"""Write ``MODEL_CARD.md`` beside the pair model from ``training.json`` (what
``pair_model.py`` measured) and ``calibration.json`` (what ``pair_eval.py`` scored).

    python training/model_card.py [--model src/boundgate/reuse/pair_model]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from boundgate.reuse.pair import EXACT_FROM  # noqa: E402


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", type=Path, default=ROOT / "src/boundgate/reuse/pair_model")
    args = p.parse_args()
    t = json.loads((args.model / "training.json").read_text())
    cal = json.loads((args.model / "calibration.json").read_text())
    hp = t["hyper_parameters"]
    made = t["made_pairs"]
    chat = (
        ' Chat-style rewrites put a question as people type it to a chatbot ("How do\n'
        '  I X?" as "how to X", "What is X?" as "X?" or "define X", "How long does it take to'
        ' X?" as\n  "X how long", articles or the question mark dropped, a greeting or "thx"'
        " added, a letter\n  typed wrong), three ways so that the style says nothing about"
        " the label: a question\n  against its rewrite (chat_positive, label 1), a labelled"
        " pair with one side rewritten\n  (chat_restyled_0/1, its label kept), and a hard"
        " negative rewritten after its change\n  (chat_hard_negative, label 0, counted in its"
        " rule too)."
        if any(k.startswith(("chat_positive", "chat_restyled", "chat_hard_negative")) for k in made)
        else ""
    )
    siblings = (
        " Sibling swaps (`--siblings`) change one noun for another kind of the\n  same thing in"
        " WordNet 3.0 (flu / cold, car / truck, city / country), nouns being words\n  that"
        " follow a determiner in the training questions."
        if hp.get("siblings")
        else ""
    )
    synonyms = (
        " Synonym positives (`--synonyms`) swap one or two words for a WordNet 3.0\n  synonym"
        " sharing the word's most frequent sense, inflected alike (largest / biggest,\n  built /"
        " constructed; `training/data/synonyms_wordnet.tsv`), beside the sibling and antonym"
        "\n  swaps, so the model learns which one-word changes keep the meaning: a question"
        " against\n  its swap (synonym_positive) and a labelled pair with its second question"
        " swapped\n  (synonym_restyled_0/1, label kept)."
        if hp.get("synonyms")
        else ""
    )
    style = (
        f" Closing punctuation (`--style-noise {hp['style_noise']}`): in every step each"
        " side's ending\n  was flipped at that chance (a closing ?, . or ! stripped, else a ?"
        " added), so that whether\n  the two sides end alike tells nothing about the label"
        " (chatbot pairs set a question\n  against a bare fragment, and rule-made negatives"
        " copy their source's ending)."
        if hp.get("style_noise")
        else ""
    )
    chat_pairs = ""
    if hp.get("chat_pairs"):
        kept = t["chat_kept"]  # per file: pairs, kept, kept paraphrases
        para = kept["paraphrases_dev.tsv"][2]
        diff = kept["different_dev.tsv"][1]
        chat_pairs = (
            f"\n- The chatbot development sets, each pair {hp['chat_pairs']} times: "
            f"`tests/data/paraphrases_dev.tsv`\n  ({para:,} paraphrases, label 1) and "
            f"`tests/data/different_dev.tsv` ({diff:,} look-alikes\n  asking something else, "
            "label 0), written for boundgate by helper agents in chatbot style\n  (fragments, "
            "typos, imperatives; provenance in the files' headers). Since they are\n  training "
            "data, `bench/dev_pairs.py` on them no longer measures the model;\n  "
            "`bench/data/chat_heldout.csv` (another author) does. Pairs sharing a question\n  "
            "with any evaluation set (quora_val.csv, the contradictions, GPTCache's mock\n  "
            "data, chat_heldout.csv), or a near-copy of one (MiniLM cosine >= 0.9: the same\n  "
            "popular question reworded), are left out (`pairdata.training_chat_pairs`)."
        )
        if hp.get("chat_data"):
            files = [kept[name] for name in hp["chat_data"]]
            written, kept_written, same = (sum(f[i] for f in files) for i in range(3))
            chat_pairs += (
                f"\n  With them, each {hp['chat_pairs']} times too: "
                + ", ".join(f"`{_data_path(name)}`" for name in hp["chat_data"])
                + f"\n  ({written:,} hand-written chatbot pairs, {kept_written:,} "
                f"kept: {same:,} paraphrases in chat\n  style, {kept_written - same:,} "
                "look-alikes that change one thing the answer\n  depends on), written by helper "
                "agents that read none of boundgate."
            )
        if hp.get("chat_hard"):
            chat_pairs += (
                f"\n  Each of these pairs also gets up to {hp['chat_hard']} hard negatives by the"
                " rules above\n  (the counts named chat_*), so chat-style paraphrases meet"
                " near-copies with\n  another meaning."
            )
    i8 = t["int8_val"]
    if (args.model / "evaluation.json").exists():  # pair_eval.py run since (reviewed labels)
        i8 = json.loads((args.model / "evaluation.json").read_text())
    reviewed = ""
    if "reviewed_auc" in i8:
        reviewed = (
            f" With the reviewed labels (`bench/data/quora_val_label_review.tsv`): AUC "
            f"{i8['reviewed_auc']:.3f}, AP {i8['reviewed_ap']:.3f}, recall "
            f"{pct(i8['reviewed_recall_at_1pct_wrong'])}."
        )
    wall_note = f" ({t['train_wall_note']})" if t.get("train_wall_note") else ""
    ensemble = _ensemble(args.model, t)
    rows = "\n".join(
        f"| {h['epoch']} | {h['train_s'] / 60:.1f} | {h['auc']:.3f} | {h['ap']:.3f} | "
        f"{pct(h['recall_at_1pct_wrong'])} |"
        for h in t["history"]
    )
    card = f"""# boundgate pair model (duplicate-question cross-encoder)

Reads two questions together and gives the probability that they ask the same thing. Used by
the reuse verifier on candidates that survive retrieval and the guards (`boundgate/reuse/pair.py`).
Written by `training/model_card.py` from `training.json`; rebuild everything with
`make pair-model`.

## Model

- Base: {t["base"]}. Licence of the weights: Apache-2.0 (`LICENSE.base`, `NOTICE.base`).
- Architecture: BertForSequenceClassification (6 layers, 384 hidden), one logit; input
  `[CLS] a [SEP] b [SEP]`, trained on at most {hp["max_length"]} tokens (longest side
  truncated first).
- Export: ONNX opset 17, onnxruntime dynamic quantization (int8 weights, per channel):
  `model.int8.onnx`. Serving scores both orders and averages the two probabilities, reads
  short forms spelled out ("tbsp" as "tablespoons", `spelled_out` in
  `boundgate/reuse/guards/lexicon.py`), a "X here, …" lead-in as "as a X, …"
  (`self_described`), an acronym as the other question's words whose initials it is
  ("PMI" / "private mortgage insurance", `acronyms_spelled`) and a misspelt word as the
  other question's word one edit away ("dimonds" / "diamonds", `typos_matched` in
  `boundgate/reuse/pair.py`; the evaluation figures below are of the raw text), and
  reads each pair whole, up to 256 tokens (`SERVING_MAX_TOKENS` in `boundgate/reuse/pair.py`:
  any two questions the embedder reads whole). Cut to the training length, two long prompts
  differing only in their last words looked identical to the model. Pairs longer than the
  training length are rare in Quora (39 of quora_val's 12,129) and common in longer texts
  (123 of the 999 pairs of GPTCache's mock data); the calibration below was replayed at the
  serving length.

{ensemble}## Data

- `quora_train.csv`: {t["train_pairs"]:,} labelled pairs derived from Quora Question Pairs
  (via GPTCache's QQP sample and MeanCache's split; no question shared with the validation or
  held-out evaluation data). Quora's text is under Quora's terms (research and testing); the
  file is not shipped, only the weights trained on it.
- Rule-made pairs (`training/augment.py`, seeded, never from an evaluation list):
  {", ".join(f"{k} {v:,}" for k, v in made.items())}. Hard negatives change one thing the
  answer depends on (antonym from WordNet 3.0, negation, number/year/month/weekday, unit,
  name, swapped roles); light positives change case, punctuation, contractions or add a
  polite prefix.{siblings}{synonyms}{chat}{chat_pairs}{style}
- Selection and calibration: `quora_val.csv` (12,128 pairs), never trained on.

## Training

- Hyper-parameters: {json.dumps(hp)}.
- Each pair in a random order per step; batches of similar length (less padding);
  bfloat16 autocast with fp32 master weights; gradient clipping at 1.0.
- Wall time: {t["train_wall_s"] / 60:.0f} min on {t["threads"]} CPU threads ({t["host"]}),
  torch {t["torch"]}{wall_note}.

| epoch | train min | AUC (val) | AP (val) | recall at ≤ 1 % of pairs wrong (val, raw labels) |
|---:|---:|---:|---:|---:|
{rows}

Selected: epoch {t["selected_epoch"]}. The int8 export on the same file: AUC {i8["auc"]:.3f},
AP {i8["ap"]:.3f}, recall at ≤ 1 % of pairs wrong {pct(i8["recall_at_1pct_wrong"])}
(probability threshold {i8["threshold"]:.4f}).{reviewed} For scale, MiniLM cosine on the
same file with raw labels: AUC 0.863, AP 0.753, 16.8 % (issue #11).

## Calibration (the verifier's prior)

`calibration.json` holds the int8 model's best scores of {cal.get("lookups", 0):,} replayed
lookups ({len(cal["duplicate_scores"]):,} whose best candidate had the asked question's
meaning, {len(cal["non_duplicate_scores"]):,} whose best did not; the rest found no candidate):
{cal["source"]}. Of the lookups, {cal.get("novel_lookups", 0):,} were novel (no stored
question had the asked one's meaning: any answer served to them is wrong). The verifier
counts them as prior observations, down-weighted as its own labels arrive, takes the share of
lookups above a threshold as its prior for h(t), and bounds its wrong reuses per lookup by
the novel and the repeat lookups' rates, mixed at a lower bound of its traffic's share of
repeats (`boundgate/reuse/prior.py`, `verifier.py`).

## Limits

English questions only; Quora-style questions dominate the training data. Raw Quora labels
are noisy (about 4 % of "not duplicate" pairs are duplicates), so the figures above overstate
the wrong rate at high scores. The verifier's online labels, not this card, keep the error
bound on a deployment's own traffic.
"""
    (args.model / "MODEL_CARD.md").write_text(card, encoding="utf-8")
    print(f"wrote {args.model / 'MODEL_CARD.md'}")


_COUNT = {2: "Two", 3: "Three", 4: "Four"}


def _ensemble(model: Path, first: dict[str, Any]) -> str:
    """The card's section on the members of an ensemble (``config.json``'s ``members``, each
    further one's ``training_<letter>.json``); "" for one model. The sections after it
    describe the first member's training; the int8 and calibration figures are the
    ensemble's. A member trained on labelled sets the first was not lists them with the
    pairs kept (``chat_kept``)."""
    config = json.loads((model / "config.json").read_text())
    members = config.get("members", [])
    if len(members) < 2:
        return ""
    exact_from = config.get("exact_from", EXACT_FROM)
    first_data = set(first["hyper_parameters"].get("chat_data", []))
    lines = []
    for name in members:
        letter = name.removeprefix("model").removesuffix(".int8.onnx").lstrip("_")
        t = first if not letter else json.loads((model / f"training_{letter}.json").read_text())
        hp, last = t["hyper_parameters"], t["history"][-1]
        more = [f for f in hp.get("chat_data", []) if f not in first_data]
        with_data = "".join(
            f", with `{_data_path(f)}` ({t['chat_kept'][f][0]:,} pairs, "
            f"{t['chat_kept'][f][1]:,} kept)"
            for f in more
        )
        lines.append(
            f"- `{name}`: seed {hp['seed']}, keyword forms {hp.get('keyword_forms', 0.0)}, "
            f"{hp['epochs']} epoch{'s' if hp['epochs'] != 1 else ''}{with_data}, "
            f"{t['train_wall_s'] / 60:.0f} min on {t['threads']} "
            f"threads; alone on quora_val (fp32, raw labels): AUC {last['auc']:.3f}, AP "
            f"{last['ap']:.3f}, recall at ≤ 1 % of pairs wrong {pct(last['recall_at_1pct_wrong'])}"
        )
    return (
        f"## Ensemble\n\n{_COUNT.get(len(members), len(members))} members on the same base, "
        "rules and tokenizer (the\n"
        "differences below), each exported as below; serving averages every member's\n"
        "probability in both orders (`config.json`'s `members`; `training/ensemble.py` joins\n"
        "them), as a cascade: the next member is read only where its readings could bring\n"
        f"the mean to {exact_from} (`config.json`'s `exact_from`), so every score from "
        f"{exact_from} up is the\n"
        "whole ensemble's. The sections below describe the first member's training; the int8\n"
        "and calibration figures are the ensemble's, as served.\n\n" + "\n".join(lines) + "\n\n"
    )


def _data_path(name: str) -> str:
    """Where a labelled set named in ``training.json`` lives: the hand-written chatbot sets
    in ``training/data``, the blind trials' development pairs in ``bench/data``."""
    return f"bench/data/{name}" if name.endswith(".csv") else f"training/data/{name}"


if __name__ == "__main__":
    main()
