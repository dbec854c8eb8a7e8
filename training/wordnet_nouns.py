"""Extract WordNet 3.0's single-word nouns with their senses and hypernyms into package data,
for the guards' sibling rule: two questions one noun apart whose nouns are siblings (kinds of
one thing: rat / mouse, apple / pear, hockey / cricket) ask about different things.

Source: Princeton WordNet 3.0 as installed by Debian's ``wordnet-base`` package
(``/usr/share/wordnet/index.noun`` for each lemma's senses in frequency order,
``data.noun`` for each synset's hypernym pointers ``@`` and ``@i``). Licence: the WordNet 3.0
licence (see NOTICE).

Writes ``src/boundgate/reuse/data/nouns_wordnet.tsv``: ``lemma<TAB>senses<TAB>hypernyms``,
where senses are all the lemma's synsets and hypernyms those of its first ``--senses`` (2)
senses, each a synset number in base 36, comma-separated. Only lower-case lemmas made of
letters are kept (multi-word lemmas are dropped).

Usage: ``python training/wordnet_nouns.py [--wordnet /usr/share/wordnet] [--senses 2]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _base36(n: int) -> str:
    return np.base_repr(n, 36).lower()


def _hypernyms(path: Path) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue  # licence header
        fields = line.split(" | ")[0].split()
        w_cnt = int(fields[3], 16)
        i = 4 + 2 * w_cnt
        p_cnt = int(fields[i])
        ptrs = [fields[i + 1 + 4 * j : i + 5 + 4 * j] for j in range(p_cnt)]
        out[int(fields[0])] = [int(off) for sym, off, _pos, _st in ptrs if sym in ("@", "@i")]
    return out


def extract(wordnet: Path, senses: int) -> list[tuple[str, list[int], list[int]]]:
    hypernyms = _hypernyms(wordnet / "data.noun")
    rows = []
    for line in (wordnet / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        fields = line.split()
        lemma = fields[0]
        if not (lemma.isalpha() and lemma.islower()):
            continue
        p_cnt = int(fields[3])
        offsets = [int(o) for o in fields[4 + p_cnt + 2 :]]
        above = sorted({h for o in offsets[:senses] for h in hypernyms.get(o, [])})
        rows.append((lemma, offsets, above))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--senses", type=int, default=2, help="senses whose hypernyms count")
    here = Path(__file__).resolve().parent.parent
    parser.add_argument(
        "--out", type=Path, default=here / "src/boundgate/reuse/data/nouns_wordnet.tsv"
    )
    args = parser.parse_args()
    rows = extract(args.wordnet, args.senses)
    lines = [
        "# nouns from Princeton WordNet 3.0 (WordNet licence, see NOTICE): lemma, its senses,"
        f" the hypernyms of its first {args.senses} senses (synset numbers in base 36)"
    ]
    lines += [
        f"{lemma}\t{','.join(map(_base36, senses))}\t{','.join(map(_base36, above))}"
        for lemma, senses, above in rows
    ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(rows)} nouns -> {args.out}")


if __name__ == "__main__":
    main()
