"""Join pair models trained alike into one ensemble in the package.

The first member's directory is copied whole (its model, tokenizer, licence files, config,
``training.json``); each further member's int8 model is added as ``model_<letter>.int8.onnx``
and its ``training.json`` as ``training_<letter>.json``, the letter its directory's name
ends with (``pair_member_d``), else its place (b, c, …); ``config.json`` lists the members,
which ``boundgate.reuse.pair.OnnxPairScorer`` averages (each member's probability in both
orders). Members must share the tokenizer (the same base model).

    python training/ensemble.py --member DIR_A --member DIR_B [--exact-from 0.80] \
        [--out src/boundgate/reuse/pair_model]

``--exact-from`` is the score from which every member is read (``config.json``'s
``exact_from``, ``pair.reads_further``; ``pair.EXACT_FROM`` without it): at or below the
threshold the ensemble's prior starts a fresh verifier at, so that it is decided on every
member.

Then calibrate the ensemble as one model (``make pair-model`` does: ``pair_eval.py``,
``lookup_calibration.py``, ``blend_fit.py``, ``model_card.py``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import string
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ("model.int8.onnx", "tokenizer.json", "LICENSE.base", "NOTICE.base", "training.json")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--member", type=Path, action="append", required=True)
    p.add_argument("--out", type=Path, default=ROOT / "src/boundgate/reuse/pair_model")
    p.add_argument("--exact-from", type=float, default=None, help="config.json's exact_from")
    args = p.parse_args()
    first, *others = args.member
    config = json.loads((first / "config.json").read_text())
    tokenizer = (first / "tokenizer.json").read_bytes()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy(first / name, args.out / name)
    members = ["model.int8.onnx"]
    for place, member in zip(string.ascii_lowercase[1:], others, strict=False):
        named = member.name.removeprefix("pair_member_")
        letter = named if len(named) == 1 and named in string.ascii_lowercase[1:] else place
        if (member / "tokenizer.json").read_bytes() != tokenizer:
            raise SystemExit(f"{member}: another tokenizer than {first}'s")
        if json.loads((member / "config.json").read_text()) != config:
            raise SystemExit(f"{member}: another config.json than {first}'s")
        shutil.copy(member / "model.int8.onnx", args.out / f"model_{letter}.int8.onnx")
        shutil.copy(member / "training.json", args.out / f"training_{letter}.json")
        members.append(f"model_{letter}.int8.onnx")
    config["members"] = members
    if args.exact_from is not None:
        config["exact_from"] = args.exact_from
    (args.out / "config.json").write_text(json.dumps(config) + "\n")
    print(f"wrote {args.out}: members {', '.join(members)}")


if __name__ == "__main__":
    main()
