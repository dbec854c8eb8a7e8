"""Which questions may be reused by meaning: the language test (``reuse/language.py``).

A question in another language than English is reused on an exact repeat only. This prints,
for the shipped rule and the variants it was chosen over, how many short requests in other
languages it flags (``bench/data/other_languages.tsv``: 83 requests in 15 languages, most
without a function word a list would know) and how many English texts it flags (the
questions of the pairs files, and the development sets' chatbot-style prompts), plus the cost
per question. A flagged English question loses reuse by meaning; an unflagged foreign one
meets guards and a pair model that cannot read it.

    python bench/language_id.py --pairs ../shared/data/cache/quora_train.csv \\
        --pairs ../shared/data/cache/quora_val.csv
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from pathlib import Path

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from boundgate.reuse import language

HERE = Path(__file__).resolve().parent
# the two development sets and the columns their texts are in (different_dev: kind first)
DEV_SETS = {
    HERE.parent / "tests/data/paraphrases_dev.tsv": slice(0, 2),
    HERE.parent / "tests/data/different_dev.tsv": slice(1, 3),
}


def dev_texts() -> list[str]:
    texts: set[str] = set()
    for path, columns in DEV_SETS.items():
        for row in csv.reader(path.open(encoding="utf-8"), delimiter="\t"):
            if len(row) >= 2 and not row[0].startswith("#"):
                texts.update(row[columns])
    return sorted(texts)


def pair_questions(paths: list[Path]) -> list[str]:
    texts: set[str] = set()
    for path in paths:
        for row in csv.DictReader(path.open(encoding="utf-8")):
            texts.update((row["question1"], row["question2"]))
    return sorted(texts)


def english_test(languages: list[str] | None, floor: float) -> Callable[[str], bool]:
    """The shipped letter test, then English's probability ≥ ``floor`` over ``languages``
    (None: all of py3langid's)."""
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if languages is not None:
        identifier.set_languages(languages)

    def reads(text: str) -> bool:
        letters = [c for c in text if c.isalpha()]
        if not letters:
            return True
        if sum(not c.isascii() for c in letters) > language.NON_ASCII_LETTER_SHARE * len(letters):
            return False
        if "¿" in text or "¡" in text:
            return False
        return dict(identifier.rank(text)).get("en", 0.0) >= floor

    return reads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=Path, action="append", required=True)
    args = ap.parse_args()
    foreign = [
        line.rstrip("\n").split("\t")[1]
        for line in (HERE / "data/other_languages.tsv").open(encoding="utf-8")
    ]
    english = {"pairs files": pair_questions(args.pairs), "development sets": dev_texts()}
    latin = ["en", *language.LATIN_SCRIPT_LANGUAGES]
    variants: list[tuple[str, Callable[[str], bool]]] = [("shipped", language.reads_english)]
    for floor in (0.1, 0.05, 0.02):
        variants.append((f"{len(latin)} languages, P(en) ≥ {floor}", english_test(latin, floor)))
    for floor in (0.2, 0.05):
        variants.append((f"all languages, P(en) ≥ {floor}", english_test(None, floor)))
    print(
        f"other languages: {len(foreign)} requests; English: "
        + ", ".join(f"{k} {len(v)}" for k, v in english.items())
    )
    print(
        "| rule | other languages flagged | "
        + " | ".join(f"{k} flagged" for k in english)
        + " | µs per question |"
    )
    print("|---|---:|" + "---:|" * len(english) + "---:|")
    for name, reads in variants:
        reads("warm up")
        caught = sum(not reads(t) for t in foreign)
        cells = []
        t0, n = time.perf_counter(), 0
        for texts in english.values():
            flagged = sum(not reads(t) for t in texts)
            n += len(texts)
            cells.append(f"{flagged} ({flagged / len(texts):.3%})")
        us = (time.perf_counter() - t0) / n * 1e6
        print(f"| {name} | {caught} / {len(foreign)} | " + " | ".join(cells) + f" | {us:.0f} |")
    missed = [t for t in foreign if language.reads_english(t)]
    print("shipped rule, other languages read as English:", missed)
    flagged_dev = [t for t in english["development sets"] if not language.reads_english(t)]
    print("shipped rule, development prompts flagged:", flagged_dev)


if __name__ == "__main__":
    main()
