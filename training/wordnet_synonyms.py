"""Extract WordNet 3.0's common single-word synonyms into training data, for the pair model's
synonym positives (``training/augment.py``): a question with one word replaced by a synonym
("largest" → "biggest", "built" → "constructed") asks the same thing.

Source: Princeton WordNet 3.0 as installed by Debian's ``wordnet-base`` package
(``/usr/share/wordnet/index.{noun,verb,adj,adv}`` for each lemma's senses in frequency order
``data.*`` for each synset's words, ``cntlist.rev`` for each sense's count of tagged uses in
the Brown Corpus' semantic concordance).
Licence: the WordNet 3.0 licence (see NOTICE).

Two lemmas of one part of speech are kept as synonyms when each one's most frequent sense is
the same synset (so "sun" / "sunlight" is not: the sun's first sense is the star), both are
used at least ``--least`` times in the concordance (common words), and that first sense has at
least half of each one's uses (so the synonym is the word's usual meaning, not a rarer one as
"engagement" for a fight), and the part of speech has at least half of each one's uses over
all parts of speech ("use" is mostly a verb: its noun synonym "usage" is not kept). Adverbs
only when both end in "-ly" (the others are particles and degree words: "about" /
"approximately", "very" / "real"). Only lower-case lemmas of letters, 3 letters or more.

Writes ``training/data/synonyms_wordnet.tsv``: ``pos<TAB>lemma<TAB>synonyms`` (comma-separated)
and the irregular forms of ``*.exc`` the augmenter needs to inflect a synonym
(``exc<TAB>form<TAB>lemma``).

Usage: ``python training/wordnet_synonyms.py [--wordnet /usr/share/wordnet] [--least 5]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}


SS_TYPE = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}


def _index(path: Path) -> dict[str, list[int]]:
    """lemma → its synset offsets, most frequent sense first."""
    out = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        f = line.split()
        p_cnt = int(f[3])
        out[f[0]] = [int(o) for o in f[6 + p_cnt :]]
    return out


def _uses(path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """(part of speech, lemma) → (tagged uses of its first sense, of all its senses)."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        key, sense, count = line.split()
        lemma, rest = key.split("%")
        k = (SS_TYPE[rest[0]], lemma)
        first, total = out.get(k, (0, 0))
        out[k] = (first + int(count) * (sense == "1"), total + int(count))
    return out


def _synsets(path: Path) -> dict[int, list[str]]:
    out = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        f = line.split(" | ")[0].split()
        w_cnt = int(f[3], 16)
        words = [f[4 + 2 * j].split("(")[0].lower() for j in range(w_cnt)]
        out[int(f[0])] = words
    return out


def extract(wordnet: Path, least: int) -> list[tuple[str, str, list[str]]]:
    rows = []
    uses = _uses(wordnet / "cntlist.rev")
    all_pos: dict[str, int] = {}
    for (_pos, lemma), (_first, total) in uses.items():
        all_pos[lemma] = all_pos.get(lemma, 0) + total
    for name, pos in POS.items():
        index = _index(wordnet / f"index.{name}")
        synsets = _synsets(wordnet / f"data.{name}")

        def common(lemma: str, pos: str = pos) -> bool:
            first, total = uses.get((pos, lemma), (0, 0))
            return (
                lemma.isalpha()
                and len(lemma) >= 3
                and total >= least
                and 2 * first >= total
                and 2 * total >= all_pos[lemma]
                and (pos != "r" or lemma.endswith("ly"))
            )

        for lemma, senses in sorted(index.items()):
            if not common(lemma):
                continue
            first = senses[0]
            syns = [
                w
                for w in dict.fromkeys(synsets.get(first, []))
                if w != lemma and w in index and common(w) and index[w][0] == first
            ]
            if syns:
                rows.append((pos, lemma, syns))
    return rows


def irregular(wordnet: Path) -> list[tuple[str, str]]:
    out = []
    for name in POS:
        for line in (wordnet / f"{name}.exc").read_text(encoding="latin-1").splitlines():
            form, *lemmas = line.split()
            if form.isalpha() and lemmas and lemmas[0].isalpha():
                out.append((form, lemmas[0]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--least", type=int, default=5, help="tagged uses each lemma needs")
    here = Path(__file__).resolve().parent
    parser.add_argument("--out", type=Path, default=here / "data/synonyms_wordnet.tsv")
    args = parser.parse_args()
    rows = extract(args.wordnet, args.least)
    exc = irregular(args.wordnet)
    lines = [
        "# synonyms from Princeton WordNet 3.0 (WordNet licence, see NOTICE): part of speech,"
        f" lemma, lemmas sharing its most frequent sense (each used >= {args.least} times,"
        " mostly in it); exc rows: irregular form, lemma"
    ]
    lines += [f"{pos}\t{lemma}\t{','.join(syns)}" for pos, lemma, syns in rows]
    lines += [f"exc\t{form}\t{lemma}" for form, lemma in exc]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(rows)} lemmas with synonyms, {len(exc)} irregular forms -> {args.out}")


if __name__ == "__main__":
    main()
